"""What a suite's runs cost: device-hours summed from their run folders.

A comparison of 180 runs is only as useful as it is affordable, so the report states the
hours next to the results, in honest units: GPU-hours for runs that trained on a GPU,
CPU-hours for runs on the CPU (wall-clock hours of one run at a time, not core-hours), and
device-hours where a run folder does not say which. Per run, ``status.json`` has the
worker's wall seconds (loading, training, selection, test predictions, scoring) and its
device; ``history.csv`` the seconds in training steps and selection scoring, per epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def device_kind(device: str) -> str:
    """``CPU``, ``GPU`` or ``device`` (not recorded) from a run's device in words."""
    name = (device or "").strip().lower()
    if not name:
        return "device"
    return "CPU" if name.startswith("cpu") else "GPU"


def training_seconds(history: Sequence[dict[str, Any]] | None) -> float | None:
    """Seconds in training steps and selection scoring, summed over the history's epochs."""
    if history is None:
        return None
    total = 0.0
    for row in history:
        for key in ("seconds", "select_seconds"):
            try:
                total += float(row.get(key) or 0.0)
            except (TypeError, ValueError):
                continue
    return total


def suite_cost(runs: Sequence[Any]) -> dict[str, Any]:
    """Per kind of device: finished runs, their hours (``status.json``) and training hours
    (``history.csv``); ``text``: one sentence for the page."""
    kinds: dict[str, dict[str, Any]] = {}
    for r in runs:
        if r.state != "done" or r.seconds is None:
            continue
        k = kinds.setdefault(device_kind(r.device), {"runs": 0, "hours": 0.0,
                                                     "training_hours": 0.0, "devices": set()})
        k["runs"] += 1
        k["hours"] += r.seconds / 3600
        k["training_hours"] += (r.train_seconds or 0.0) / 3600
        if r.device:
            k["devices"].add(r.device)
    rows = [{"kind": kind, "unit": f"{kind}-hours", "runs": v["runs"],
             "hours": v["hours"], "training_hours": v["training_hours"],
             "devices": sorted(v["devices"])}
            for kind, v in sorted(kinds.items())]
    parts = [f"{row['hours']:.3g} {row['unit']} for {row['runs']} run"
             f"{'s' if row['runs'] != 1 else ''}"
             + (f" on {', '.join(row['devices'])}" if row["devices"] and row["kind"] == "GPU"
                else "")
             + f" ({row['training_hours']:.3g} h of it in training steps and selection)"
             for row in rows]
    notes = ["wall-clock time of each run"]
    if any(row["kind"] == "CPU" for row in rows):
        notes.append("CPU-hours are hours of a run on the CPU, not core-hours")
    if any(row["kind"] == "device" for row in rows):
        notes.append("device-hours: the run folder does not record the device")
    text = ("This study cost " + "; ".join(parts) + ", summed from the run folders ("
            + "; ".join(notes) + ")." if rows else "")
    return {"kinds": rows, "hours": sum(r["hours"] for r in rows), "text": text}
