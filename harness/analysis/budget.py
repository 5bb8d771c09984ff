"""What a run was exposed to in training, beyond images seen.

Images seen alone does not make a comparison fair: a strategy that trains on 366 images for
331 epochs, with a selection checkpoint after each, is exposed differently from one that
sees 11 epochs of all images. The report's budget table states, per run, images seen,
epochs, distinct training images and the number of selection checkpoints scored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from harness.config.suite import Training


def images_seen(plan: dict[str, Any], training: Training) -> int | None:
    """Images seen in training: plan.json's ``budget``, else counted from its phases."""
    if plan.get("budget") is not None:
        return int(plan["budget"])
    phases = plan.get("plan", {}).get("phases")
    if not phases:
        return None
    epochs = training.epochs_per_phase
    total = 0
    for p in phases:
        per_epoch = len(p.get("indices", []))
        if p.get("sample_weights") is not None and p.get("draws") is not None:
            per_epoch = int(p["draws"])
        total += per_epoch * int(p.get("epochs") or epochs)
    return total


def _distinct(phases: list[dict[str, Any]]) -> int:
    """Training images that can be seen at all: in a phase, with a non-zero weight if drawn."""
    seen: set[int] = set()
    for p in phases:
        weights = p.get("sample_weights")
        indices = p.get("indices", [])
        if weights is None:
            seen.update(int(i) for i in indices)
        else:
            seen.update(int(i) for i, w in zip(indices, weights) if w and w > 0)
    return len(seen)


def selection_checkpoints(history: Sequence[Mapping[str, Any]] | None) -> int | None:
    """Epochs at which the selection split was scored (each a chance to be picked).

    Counted from the run's history rows: rows marked ``selected_evaluation`` when the column
    exists (the fixed selection schedule), else rows with a ``select_score``. None without a
    history.
    """
    if history is None:
        return None
    rows = list(history)
    if rows and "selected_evaluation" in rows[0]:
        return sum(str(r.get("selected_evaluation", "")).strip().lower() in ("true", "1")
                   for r in rows)
    return sum(bool(str(r.get("select_score") or "").strip()) for r in rows)


def exposure(history: Sequence[Mapping[str, Any]] | None, plan: dict[str, Any],
             training: Training, seen: int | None) -> dict[str, Any]:
    """Images seen, epochs, distinct images and selection checkpoints of one run."""
    phases = (plan.get("plan") or {}).get("phases") or []
    default = training.epochs_per_phase
    epochs = sum(int(p.get("epochs") or default) for p in phases) if phases else None
    return {"images_seen": seen, "epochs": epochs,
            "distinct_images": _distinct(phases) if phases else None,
            "selection_checkpoints": selection_checkpoints(history)}


def summarise_exposure(runs: list[Any]) -> dict[str, Any]:
    """Mean of each exposure figure over a strategy's runs (None where no run has it)."""
    out: dict[str, Any] = {}
    for key in ("images_seen", "epochs", "distinct_images", "selection_checkpoints"):
        values = [r.exposure.get(key) for r in runs if r.exposure.get(key) is not None]
        if not values:
            out[key] = None
        else:
            mean = sum(values) / len(values)
            out[key] = int(mean) if all(v == values[0] for v in values) else round(mean, 1)
            if isinstance(out[key], float) and math.isnan(out[key]):
                out[key] = None
    return out
