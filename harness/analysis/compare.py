"""Imbalance strategies side by side, on the same folds and seeds, with uncertainty.

Works on finished runs that share a backbone and engine and differ in sampler. Per-fold
figures come from each run's metrics; paired tests match runs on (fold, seed); McNemar's
test matches pooled predictions on (fold, seed, uid).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from scipy import stats

from harness.analysis.metrics import Predictions

#: Strategies every other one is compared against, when present.
REFERENCES = ("none", "phased")
#: Whole-table figures of the comparison (per-class ones are added per class).
SUMMARY = (("macro_auroc", "macro AUROC"), ("balanced_accuracy", "balanced accuracy"),
           ("macro_f1", "macro F1"), ("mcc", "MCC"))
PER_CLASS = ("sensitivity", "specificity", "precision")


class RunLike(Protocol):
    """What a comparison needs of a finished run (``report.RunResult`` has it)."""

    sampler: str
    fold: int
    seed: int
    metrics: dict[str, Any]
    predictions: Predictions | None
    budget: int | None


def metric_keys(classes: Sequence[str]) -> list[tuple[str, str]]:
    """(key, label) of every compared figure; per-class keys read ``figure:class``."""
    keys = [(f"{fig}:{c}", f"{c} {fig}") for c in classes for fig in PER_CLASS]
    return keys + list(SUMMARY)


def value(metrics: dict[str, Any], key: str) -> float:
    """One figure of a metrics dict as a float (NaN where undefined)."""
    if ":" in key:
        fig, cls = key.split(":", 1)
        v = metrics["per_class"][cls].get(fig)
    else:
        v = metrics.get(key)
    return math.nan if v is None else float(v)


def ordered_strategies(runs: Sequence[RunLike]) -> list[str]:
    """References first (``none``, ``phased``), then the others in order of appearance."""
    seen = list(dict.fromkeys(r.sampler for r in runs))
    return [s for s in REFERENCES if s in seen] + [s for s in seen if s not in REFERENCES]


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


def _pairs(runs: Sequence[RunLike], strategy: str, reference: str) -> list[tuple[Any, Any]]:
    by_key = {(r.fold, r.seed): r for r in runs if r.sampler == reference}
    return [(r, by_key[(r.fold, r.seed)]) for r in runs
            if r.sampler == strategy and (r.fold, r.seed) in by_key]


def _correct_matched(a: RunLike, b: RunLike) -> tuple[np.ndarray, np.ndarray]:
    """Per-image correctness of two runs on the images both predicted (matched by uid)."""
    pa, pb = a.predictions, b.predictions
    if pa is None or pb is None:
        return np.zeros(0, bool), np.zeros(0, bool)
    where = {u: i for i, u in enumerate(pb.uids)}
    ia = np.array([i for i, u in enumerate(pa.uids) if u in where], dtype=int)
    ib = np.array([where[pa.uids[i]] for i in ia], dtype=int)
    return pa.true[ia] == pa.pred[ia], pb.true[ib] == pb.pred[ib]


def covid_class(classes: Sequence[str], runs: Sequence[RunLike] = ()) -> str:
    """The class whose trade-off the paper discusses: COVID-19, else the rarest class."""
    for c in classes:
        if "covid" in c.lower():
            return c
    support = {c: sum(r.metrics["per_class"][c]["support"] for r in runs) for c in classes}
    return min(classes, key=lambda c: support[c])


def compare_strategies(runs: Sequence[RunLike], classes: Sequence[str],
                       level: float = 0.95, alpha: float = 0.05) -> dict[str, Any]:
    """The comparison section as JSON-ready data (fractions; see module docstring)."""
    strategies = ordered_strategies(runs)
    keys = metric_keys(classes)
    table = {s: {k: summarise([value(r.metrics, k) for r in runs if r.sampler == s], level,
                              (-1.0, 1.0) if k == "mcc" else (0.0, 1.0))
                 for k, _ in keys} for s in strategies}
    budgets = {}
    for s in strategies:
        b = [r.budget for r in runs if r.sampler == s and r.budget is not None]
        budgets[s] = None if not b else (b[0] if len(set(b)) == 1 else float(np.mean(b)))
    paired, mcn = [], []
    for ref in (r for r in REFERENCES if r in strategies):
        for s in strategies:
            if s == ref:
                continue
            pairs = _pairs(runs, s, ref)
            if not pairs:
                continue
            for k, label in keys:
                test = paired_test([value(a.metrics, k) for a, _ in pairs],
                                   [value(b.metrics, k) for _, b in pairs])
                test.update(strategy=s, reference=ref, metric=k, label=label,
                            direction=direction(test["mean_diff"], test["t_p"], s, ref, alpha))
                paired.append(test)
            if any(m["strategy"] == ref and m["reference"] == s for m in mcn):
                continue  # the same test as an earlier row, read the other way round
            right = [_correct_matched(a, b) for a, b in pairs]
            m = mcnemar(np.concatenate([x for x, _ in right]), np.concatenate([y for _, y in right]))
            diff = m["only_strategy_right"] - m["only_reference_right"]
            m.update(strategy=s, reference=ref, folds=len(pairs),
                     direction=direction(diff, m["p_exact"], s, ref, alpha).replace(
                         "higher", "more images right"))
            mcn.append(m)
    covid = covid_class(classes, runs)
    tradeoff = {s: [{"fold": r.fold, "seed": r.seed,
                     "sensitivity": r.metrics["per_class"][covid]["sensitivity"],
                     "false_positives": r.metrics["per_class"][covid]["wrong_detected"]}
                    for r in runs if r.sampler == s] for s in strategies}
    return {"strategies": strategies, "classes": list(classes), "metrics": keys,
            "table": table, "budget": budgets, "paired": paired, "mcnemar": mcn,
            "covid_class": covid, "tradeoff": tradeoff, "level": level, "alpha": alpha}


def _pooled(runs: Sequence[RunLike], strategy: str) -> tuple[np.ndarray, np.ndarray, int]:
    parts = [r.predictions for r in runs if r.sampler == strategy
             and r.predictions is not None and r.predictions.proba is not None]
    if not parts:
        return np.zeros(0, int), np.zeros((0, 0)), 0
    return (np.concatenate([p.true for p in parts]), np.concatenate([p.proba for p in parts]),
            len(parts))


def comparison_figures(runs: Sequence[RunLike], classes: Sequence[str]) -> dict[str, Any]:
    """Matplotlib figures: ROC and PR per class, and the COVID-19 trade-off."""
    from matplotlib.figure import Figure
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    strategies = ordered_strategies(runs)
    colors = {s: f"C{i % 10}" for i, s in enumerate(strategies)}
    pooled = {s: _pooled(runs, s) for s in strategies}
    figs: dict[str, Any] = {}
    for k, cls in enumerate(classes):
        fig = Figure(figsize=(8.5, 3.4), layout="constrained")
        roc_ax, pr_ax = fig.subplots(1, 2)
        for s in strategies:
            true, proba, _ = pooled[s]
            positive = true == k
            if proba.size == 0 or positive.all() or not positive.any():
                continue
            fpr, tpr, _ = roc_curve(positive, proba[:, k])
            roc_ax.plot(fpr, tpr, color=colors[s], label=f"{s} (AUC {auc(fpr, tpr):.3f})")
            prec, rec, _ = precision_recall_curve(positive, proba[:, k])
            pr_ax.plot(rec, prec, color=colors[s], label=s, drawstyle="steps-post")
        roc_ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--")
        roc_ax.set(title=f"ROC: {cls}", xlabel="false positive rate",
                   ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1.01))
        pr_ax.set(title=f"precision-recall: {cls}", xlabel="sensitivity (recall)",
                  ylabel="precision", xlim=(0, 1), ylim=(0, 1.01))
        for ax in (roc_ax, pr_ax):
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8, loc="lower right" if ax is roc_ax else "lower left")
        figs[f"curves_{cls}"] = fig

    covid = covid_class(classes, runs)
    k = list(classes).index(covid)
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    for s in strategies:
        true, proba, n_runs = pooled[s]
        positive = true == k
        if proba.size and positive.any() and not positive.all():
            fpr, tpr, _ = roc_curve(positive, proba[:, k])
            ax.plot(fpr * (~positive).sum() / n_runs, tpr, color=colors[s], alpha=0.45, lw=1)
        pts = [(r.metrics["per_class"][covid]["wrong_detected"],
                r.metrics["per_class"][covid]["sensitivity"]) for r in runs if r.sampler == s]
        pts = [(x, y) for x, y in pts if y is not None]
        if pts:
            xs, ys = np.array(pts, float).T
            ax.scatter(xs, ys, color=colors[s], s=18, alpha=0.6)
            ax.scatter([xs.mean()], [ys.mean()], color=colors[s], s=90, marker="D",
                       edgecolor="black", label=f"{s}: {ys.mean() * 100:.1f}% at {xs.mean():.1f} FP")
    ax.set(title=f"{covid}: sensitivity vs false positives per test fold",
           xlabel=f"images wrongly called {covid} (per fold)", ylabel=f"{covid} sensitivity",
           ylim=(0, 1.02))
    # Zoom on the operating points; the threshold curves run far to the right otherwise.
    xs_all = [r.metrics["per_class"][covid]["wrong_detected"] for r in runs]
    ax.set_xlim(0, max(10, 3 * max(xs_all, default=0)))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="lower right")
    figs["tradeoff"] = fig
    return figs
