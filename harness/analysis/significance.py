"""Significance tests of one strategy against another, and the verdicts they allow."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats


def paired_test(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Paired t-test and Wilcoxon signed-rank test of per-fold figures ``a`` vs ``b``."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    d = x - y
    out: dict[str, Any] = {"n_pairs": int(d.size), "mean_diff": float(d.mean()) if d.size else None,
                           "t_p": None, "wilcoxon_p": None}
    if d.size >= 2 and np.any(d != d[0]):
        out["t_p"] = float(stats.ttest_rel(x, y).pvalue)
    if d.size >= 1 and np.any(d != 0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # small-sample notes from scipy
            out["wilcoxon_p"] = float(stats.wilcoxon(x, y).pvalue)
    return out


def mcnemar(a_right: np.ndarray, b_right: np.ndarray) -> dict[str, Any]:
    """McNemar's test of two classifiers on the same images.

    Written with scipy rather than taken from statsmodels, which the harness does not
    depend on: the exact test is a two-sided binomial test of the discordant pairs, the
    chi-squared one uses Edwards' continuity correction.
    """
    a_right, b_right = np.asarray(a_right, bool), np.asarray(b_right, bool)
    only_a = int(np.sum(a_right & ~b_right))
    only_b = int(np.sum(~a_right & b_right))
    discordant = only_a + only_b
    out = {"n": int(a_right.size), "both_right": int(np.sum(a_right & b_right)),
           "only_strategy_right": only_a, "only_reference_right": only_b,
           "both_wrong": int(np.sum(~a_right & ~b_right)), "p_exact": 1.0, "chi2": 0.0,
           "p_chi2": 1.0}
    if discordant:
        out["p_exact"] = float(stats.binomtest(only_a, discordant, 0.5).pvalue)
        chi2 = (abs(only_a - only_b) - 1) ** 2 / discordant
        out["chi2"] = float(chi2)
        out["p_chi2"] = float(stats.chi2.sf(chi2, 1))
    return out


def direction(diff: float | None, p: float | None, strategy: str, reference: str,
              alpha: float = 0.05) -> str:
    """A plain sentence: which side is higher and whether the test says it is real."""
    if diff is None or diff == 0:
        return "no difference"
    higher = strategy if diff > 0 else reference
    if p is None:
        return f"higher with {higher} (untested: too few pairs)"
    verdict = "significant" if p < alpha else "not significant"
    return f"higher with {higher} ({verdict} at {alpha:g})"
