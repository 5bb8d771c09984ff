"""Intervals: how far a figure could plausibly be from the one measured."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats


def summarise(values: Sequence[float], level: float = 0.95,
              bounds: tuple[float, float] = (0.0, 1.0)) -> dict[str, Any]:
    """Mean ± sd over folds and the t-interval of the mean (None where it cannot exist).

    The interval is clipped to the figure's range: with few folds a t-interval can reach
    past 100 %, which no figure can.
    """
    a = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    out: dict[str, Any] = {"n": int(a.size), "mean": None, "sd": None, "ci": [None, None]}
    if a.size:
        out["mean"] = float(a.mean())
    if a.size >= 2:
        sd = float(a.std(ddof=1))
        out["sd"] = sd
        if sd > 0:
            lo, hi = stats.t.interval(level, a.size - 1, loc=a.mean(), scale=sd / math.sqrt(a.size))
            out["ci"] = [float(max(lo, bounds[0])), float(min(hi, bounds[1]))]
        else:
            out["ci"] = [float(a.mean()), float(a.mean())]
    return out
