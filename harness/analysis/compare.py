"""Imbalance strategies side by side, on the same folds and seeds, with uncertainty.

Works on finished runs that share a backbone and engine and differ in sampler. Per-fold
figures come from each run's metrics; paired tests match runs on (fold, seed); McNemar's
test matches pooled predictions on (fold, seed, uid).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from harness.analysis.intervals import summarise
from harness.analysis.loading import REFERENCES
from harness.analysis.metrics import Predictions
from harness.analysis.significance import direction, mcnemar, paired_test

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
