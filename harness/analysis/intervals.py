"""Intervals: how far a figure could plausibly be from the one measured, and why.

Two kinds, each captioned in the report with what it resamples:

* **Over folds** (a strategy's mean figure, a difference between strategies): the t interval
  with Nadeau & Bengio's corrected variance ``(1/J + n_test/n_train) s²``, the same variance
  as the corrected resampled t-test (``significance.corrected_ttest``), so an interval that
  excludes zero and a test at the same level agree.
* **Over test images** (figures of pooled predictions, differences on one test set): a
  percentile bootstrap that resamples *patients*, not images: images of one patient are
  alike, and on splits whose test sets overlap (the paper's folds) one image recurs in
  several folds; every prediction of a patient's images, in every fold, travels with the
  patient, so neither kind of repetition passes for independent evidence.

A t interval knows nothing of a figure's range: with few folds it can reach past 100 % or
below −100 points. Intervals over folds are therefore clipped to what the figure can take
(``clip``: a fraction in [0, 1], its difference in [−1, 1]; MCC in [−1, 1], its difference
in [−2, 2]) and say so (``clipped``), so the page never shows an impossible value. The
percentile bootstrap needs no clipping: it resamples values that lie in the range.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.analysis.significance import corrected_ttest
from harness.config.suite import ReportConfig


def value_range(key: str) -> tuple[float, float]:
    """The range of a compared figure: MCC from −1 to 1, every other one a fraction."""
    return (-1.0, 1.0) if key == "mcc" else (0.0, 1.0)


def difference_range(key: str) -> tuple[float, float]:
    """The range of a difference of two values of the figure (e.g. [−2, 2] for MCC)."""
    lo, hi = value_range(key)
    return lo - hi, hi - lo


def clip(ci: Sequence[float | None], bounds: tuple[float, float]
         ) -> tuple[list[float | None], list[bool]]:
    """(interval, [low end cut, high end cut]): the interval cut to ``bounds``."""
    lo, hi = ci
    if lo is None or hi is None:
        return [lo, hi], [False, False]
    return ([float(max(lo, bounds[0])), float(min(hi, bounds[1]))],
            [bool(lo < bounds[0]), bool(hi > bounds[1])])


def summarise(values: Sequence[float], level: float = 0.95,
              bounds: tuple[float, float] = (0.0, 1.0),
              test_train_ratio: float = 0.0) -> dict[str, Any]:
    """Mean ± sd over folds and the (corrected) t interval of that mean.

    ``test_train_ratio`` = n_test / n_train of the folds: 0 gives the plain t interval, the
    fold design's ratio gives Nadeau & Bengio's corrected one. The interval is clipped to
    the figure's range (``clipped`` says which end): with few folds a t interval can reach past
    100 %, which no figure can.
    """
    a = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    out: dict[str, Any] = {"n": int(a.size), "mean": None, "sd": None, "ci": [None, None],
                           "clipped": [False, False]}
    if a.size:
        out["mean"] = float(a.mean())
    if a.size >= 2:
        out["sd"] = float(a.std(ddof=1))
        out["ci"], out["clipped"] = clip(corrected_ttest(a, test_train_ratio, level=level)["ci"],
                                         bounds)
    return out


def _cluster_weights(rng: np.random.Generator, n_clusters: int, b: int) -> np.ndarray:
    """(b, n_clusters) counts: how often each cluster is drawn in each of b resamples."""
    idx = rng.integers(0, n_clusters, size=(b, n_clusters))
    flat = idx + (np.arange(b) * n_clusters)[:, None]
    return np.bincount(flat.ravel(), minlength=b * n_clusters).reshape(b, n_clusters)


def cluster_sums(values: np.ndarray, clusters: Sequence[Any]) -> tuple[np.ndarray, int]:
    """Per-cluster sums of ``values`` (rows), the clusters in order of first appearance."""
    _, inverse = np.unique(np.asarray(clusters, dtype=object).astype(str), return_inverse=True)
    n_clusters = int(inverse.max()) + 1 if len(inverse) else 0
    values = np.asarray(values, dtype=np.float64)
    sums = np.zeros((n_clusters,) + values.shape[1:])
    np.add.at(sums, inverse, values)
    return sums, n_clusters


def bootstrap_cluster_totals(values: np.ndarray, clusters: Sequence[Any], n: int = ReportConfig.bootstrap,
                             seed: int = 0, chunk: int = 200) -> np.ndarray:
    """Totals of ``values`` (rows of any shape) over ``n`` cluster-bootstrap resamples.

    Written here rather than with ``scipy.stats.bootstrap``: scipy resamples observations,
    not clusters, and recomputes each statistic per resample; here one matrix product per
    chunk yields every count of every resample at once (e.g. all confusion matrices).
    """
    sums, n_clusters = cluster_sums(values, clusters)
    flat = sums.reshape(n_clusters, -1)
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, n, chunk):
        b = min(chunk, n - start)
        out.append(_cluster_weights(rng, n_clusters, b) @ flat)
    return np.concatenate(out).reshape((n,) + sums.shape[1:]) if out else \
        np.zeros((0,) + sums.shape[1:])


def percentile(samples: np.ndarray, level: float = 0.95) -> np.ndarray:
    """Percentile interval along axis 0, skipping NaN resamples (a rare class left out)."""
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        return np.nanpercentile(samples, q, axis=0)


def paired_difference(a_right: np.ndarray, b_right: np.ndarray, clusters: Sequence[Any],
                      n: int = ReportConfig.bootstrap, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Difference in the share of images right (a − b) with a patient-cluster interval."""
    a_right = np.asarray(a_right, float)
    b_right = np.asarray(b_right, float)
    out: dict[str, Any] = {"diff": None, "ci": [None, None]}
    if not a_right.size:
        return out
    out["diff"] = float(a_right.mean() - b_right.mean())
    if n > 0:
        totals = bootstrap_cluster_totals(np.stack([a_right - b_right, np.ones_like(a_right)],
                                                   axis=1), clusters, n, seed)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = totals[:, 0] / totals[:, 1]
        lo, hi = percentile(share, level)
        out["ci"] = [float(lo), float(hi)]
    return out
