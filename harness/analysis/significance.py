"""Significance tests of one strategy against another, and the verdicts they allow.

Which test, and why (Dietterich 1998; Nadeau & Bengio 2003; Bouckaert & Frank 2004;
Demšar 2006):

* **Figures per fold** (sensitivity, balanced accuracy, AUROC, …): the *corrected resampled
  t-test* of Nadeau & Bengio. Cross-validation folds share most of their training images, so
  fold-wise differences are correlated and the plain paired t-test is anti-conservative;
  the correction inflates the variance of the mean difference from ``σ²/J`` to
  ``(1/J + n_test/n_train) σ²``. Runs repeated over seeds on *re-partitioned* folds enter as
  repeated cross-validation (Bouckaert & Frank's corrected repeated k-fold t-test: the same
  formula over all ``k·r`` differences, ``k·r − 1`` degrees of freedom). When the seeds
  repeat training on the *same* folds, the seeds' differences are averaged per fold first
  and the test runs over the ``k`` fold means: the fold, not the seed, is then the unit that
  carries the test-set and training-set variation.
  Neither scipy nor statsmodels has this test (both offer only the uncorrected paired t),
  so it is written here, against a hand-computed example in the tests.
* **One test set** (per fold and seed): McNemar's exact test (statsmodels) on the images of
  that fold, each image once, for the one-vs-rest decision of the class the suite focuses on.
  It compares two *trained networks* on one test set, not two strategies: retraining the
  same strategy with another seed gives another network, and McNemar does not see that
  variation (Dietterich 1998). Its rows are therefore a family of their own, never a
  strategy verdict (``network_verdict``), and never coloured better or worse.
* **Many tests at once**: the p-values are corrected per family (``compare.families``: one
  per figure, or all t-tests of a comparison in one; the McNemar rows always apart), with
  Holm's step-down method (default; controls the family-wise error) or Benjamini-Hochberg
  (controls the false discovery rate), both from statsmodels.
* **No verdict where none is possible**: below the smallest sample at which a test can reach
  α, the effect and its interval are shown and the cell says so, never a colour.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

#: Corrections a suite may choose (``report.correction``), as statsmodels names them.
CORRECTIONS = {"holm": "Holm step-down (family-wise error)",
               "fdr_bh": "Benjamini-Hochberg (false discovery rate)"}
#: A t-test needs a variance estimate with at least this many degrees of freedom: with one,
#: the spread of the differences rests on a single contrast and the t quantile (12.7 at
#: 95 %) makes any verdict hinge on chance agreement of two folds.
MIN_DF = 2


def corrected_ttest(diffs: Sequence[float], test_train_ratio: float, repetitions: int = 1,
                    level: float = 0.95) -> dict[str, Any]:
    """Nadeau & Bengio's corrected resampled t-test (Bouckaert & Frank's repeated version).

    ``diffs`` are the ``k·r`` per-fold differences (strategy − reference) of ``repetitions``
    (r) runs of k-fold cross-validation; ``test_train_ratio`` is n_test / n_train of a fold.
    The statistic is ``mean / sqrt((1/(k·r) + n_test/n_train) · s²)`` with ``s²`` the sample
    variance of the differences, on ``k·r − 1`` degrees of freedom (Nadeau & Bengio 2003,
    Machine Learning 52:239-281, eq. for the corrected resampled t; Bouckaert & Frank 2004,
    PAKDD, LNCS 3056:3-12, "corrected repeated k-fold cv test"). ``repetitions`` only
    documents the design: the formula depends on the number of differences alone.

    Returns the mean difference, its interval from the same corrected variance, t, df and
    the two-sided p (None where the variance is zero or there are too few differences).
    """
    d = np.asarray([x for x in diffs if x is not None and not math.isnan(x)], dtype=float)
    n = int(d.size)
    out: dict[str, Any] = {"n": n, "repetitions": int(repetitions), "df": max(n - 1, 0),
                           "mean": float(d.mean()) if n else None, "ci": [None, None],
                           "t": None, "p": None, "se": None}
    if n < 2:
        return out
    var = float(d.var(ddof=1)) if np.ptp(d) > 1e-12 else 0.0  # equal values: no spread
    se = math.sqrt((1.0 / n + float(test_train_ratio)) * var)
    out["se"] = se
    half = float(stats.t.ppf((1 + level) / 2, n - 1)) * se
    out["ci"] = [out["mean"] - half, out["mean"] + half]
    if se > 0:
        t = out["mean"] / se
        out["t"] = float(t)
        out["p"] = float(2 * stats.t.sf(abs(t), n - 1))
    return out


def mcnemar_exact(a_right: np.ndarray, b_right: np.ndarray) -> dict[str, Any]:
    """McNemar's exact test (statsmodels) of two classifiers on the same images.

    Counts: ``only_strategy_right`` (b) and ``only_reference_right`` (c); the exact p is the
    two-sided binomial test of b against b + c. ``min_p`` is the smallest p this many
    discordant images could give (2 · 0.5^(b+c)); below α it is reachable, else not.
    """
    from statsmodels.stats.contingency_tables import mcnemar

    a_right, b_right = np.asarray(a_right, bool), np.asarray(b_right, bool)
    both = int(np.sum(a_right & b_right))
    only_a = int(np.sum(a_right & ~b_right))
    only_b = int(np.sum(~a_right & b_right))
    neither = int(np.sum(~a_right & ~b_right))
    discordant = only_a + only_b
    p = 1.0
    if discordant:
        p = float(mcnemar([[both, only_a], [only_b, neither]], exact=True).pvalue)
    return {"n": int(a_right.size), "both_right": both, "only_strategy_right": only_a,
            "only_reference_right": only_b, "both_wrong": neither, "p": min(p, 1.0),
            "min_p": min(1.0, 2 * 0.5 ** discordant) if discordant else 1.0}


def min_discordant(alpha: float) -> int:
    """The fewest discordant images at which McNemar's exact test can reach ``alpha``:
    the smallest n with ``2 · 0.5^n ≤ alpha`` (``mcnemar_exact``'s ``min_p``); with fewer, a
    row is not tested. 6 at α = 0.05, 8 at α = 0.01."""
    n = 1
    while 2 * 0.5 ** n > alpha:
        n += 1
    return n


def correct(pvalues: Sequence[float], method: str = "holm", alpha: float = 0.05) -> list[float]:
    """Adjusted p-values over one family (statsmodels ``multipletests``)."""
    from statsmodels.stats.multitest import multipletests

    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; expected one of {', '.join(CORRECTIONS)}")
    if not len(pvalues):
        return []
    return [float(p) for p in multipletests(list(pvalues), alpha=alpha, method=method)[1]]


def verdict(diff: float | None, p_adjusted: float | None, testable: bool, alpha: float,
            strategy: str, reference: str, what: str = "higher") -> tuple[str, str]:
    """(class, sentence): ``better``/``worse`` only for a tested, corrected p below α;
    ``none`` where the figure has no value at all (not the same as too few folds)."""
    if diff is None:
        return "none", "no data"
    if not testable:
        return "untested", "too few folds/seeds to test"
    if p_adjusted is None:
        return "flat", "no variation between folds: not testable"
    if p_adjusted >= alpha or diff == 0:
        return "flat", f"no significant difference (adjusted p ≥ {alpha:g})"
    return ("better" if diff > 0 else "worse",
            f"{what} with {strategy if diff > 0 else reference} (adjusted p < {alpha:g})")


def network_verdict(row: dict[str, Any], alpha: float, focus: str) -> tuple[str, str]:
    """(class, sentence) of one McNemar row: whether two trained networks differ on one test
    set. Never ``better``/``worse``: a network is one draw of its strategy's training."""
    if row.get("diff") is None:
        return "none", "no data"
    if not row["testable"]:
        return "untested", (f"too few discordant images to test ({row['only_strategy_right']}"
                            f" + {row['only_reference_right']}: p ≥ {row['min_p']:.3g})")
    p = row.get("p_adjusted")
    if p is None or p >= alpha or row["diff"] == 0:
        return "flat", f"the two networks do not differ detectably (adjusted p ≥ {alpha:g})"
    who = row["strategy"] if row["diff"] > 0 else row["reference"]
    return "networks-differ", (f"these two networks differ on this test set: more {focus} "
                               f"decisions right with {who}'s network (adjusted p < {alpha:g})")

