"""What the runs of a report cost, from their folders: hours of the runs' workers (wall
time from ``status.json``) and, within them, hours in training steps and in scoring the
selection split (``history.csv``'s ``seconds`` and ``select_seconds``), per device when
``config.json`` records one. Shown next to the results so a reader can weigh a difference
against what it took to measure it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def _number(text: Any) -> float:
    try:
        v = float(text)
    except (TypeError, ValueError):
        return 0.0
    return v if math.isfinite(v) and v > 0 else 0.0


def history_seconds(history: Sequence[Mapping[str, Any]] | None) -> tuple[float, float]:
    """(training seconds, selection-scoring seconds) summed over a run's history rows."""
    rows = list(history or [])
    return (sum(_number(r.get("seconds")) for r in rows),
            sum(_number(r.get("select_seconds")) for r in rows))


def device_of(run: Any) -> str:
    """The device a run trained on, as its ``config.json`` records it ("" when it does not)."""
    config = getattr(run, "config", None) or {}
    for where in (config.get("run") or {}, config):
        device = where.get("device")
        if device:
            return str(device)
    return ""


def run_costs(runs: Sequence[Any]) -> dict[str, Any]:
    """Hours of the finished runs, in all and per device."""
    done = [r for r in runs if r.state == "done"]
    per_device: dict[str, dict[str, float]] = {}
    for r in done:
        d = per_device.setdefault(device_of(r) or "not recorded",
                                  {"runs": 0, "hours": 0.0, "train_hours": 0.0,
                                   "select_hours": 0.0})
        d["runs"] += 1
        d["hours"] += getattr(r, "seconds", 0.0) / 3600
        d["train_hours"] += getattr(r, "train_seconds", 0.0) / 3600
        d["select_hours"] += getattr(r, "select_seconds", 0.0) / 3600
    total = {k: sum(d[k] for d in per_device.values())
             for k in ("runs", "hours", "train_hours", "select_hours")}
    return {**total, "devices": per_device,
            "per_run_minutes": 60 * total["hours"] / total["runs"] if total["runs"] else None}
