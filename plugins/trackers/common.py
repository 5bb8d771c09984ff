"""Helpers both built-in trackers share: which history values are numbers, metric names."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

#: Whole-table figures of ``metrics.json`` and the per-class figures of the paper's Table 4
#: (+ F1 and AUROC), as in ``harness.analysis.metrics``; listed here so that a tracker does
#: not import scikit-learn.
SUMMARY = ("accuracy", "balanced_accuracy", "macro_f1", "mcc", "macro_auroc")
PER_CLASS = ("sensitivity", "specificity", "accuracy", "precision", "f1", "auroc")


def number(value: Any) -> float | None:
    """A history cell as a float (booleans as 0/1), or None when it is not a number."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) or hasattr(value, "item"):
        try:
            out = float(value)
        except (TypeError, ValueError):
            return None
        return out
    if isinstance(value, str):
        if value.strip().lower() in ("true", "false"):
            return float(value.strip().lower() == "true")
        try:
            return float(value)
        except ValueError:
            return None
    return None


def numbers(row: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in row.items():
        v = number(value)
        if v is not None and not math.isnan(v):
            out[str(key)] = v
    return out


def safe_name(name: str) -> str:
    """A metric name both MLflow and TensorBoard accept."""
    return re.sub(r"[^\w\-. /]", "_", str(name))


def final_metrics(metrics: Mapping[str, Any], sep: str = "/") -> Iterator[tuple[str, float]]:
    """``(name, value)`` of a run's final test figures: ``test/accuracy``,
    ``test/covid19/sensitivity`` … (fractions; figures that are n/a left out). Every tracker
    uses these names (MLflow, TensorBoard and W&B all accept ``/``)."""
    for key in SUMMARY:
        v = metrics.get(key)
        if v is not None:
            yield f"test{sep}{key}", float(v)
    for cls, figures in (metrics.get("per_class") or {}).items():
        for key in PER_CLASS:
            v = figures.get(key)
            if v is not None:
                yield safe_name(f"test{sep}{cls}{sep}{key}"), float(v)


def flatten(data: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Nested settings as ``(dotted.key, text)`` pairs (lists as JSON)."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            yield from flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, (list, tuple)):
        yield prefix, json.dumps(data, default=str)
    else:
        yield prefix, "" if data is None else str(data)
