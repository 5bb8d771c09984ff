"""Imbalance strategies side by side, on the same folds and seeds, with uncertainty.

Works on finished runs that share a backbone and engine and differ in sampler. Runs are
paired on (fold, seed). Per figure, the differences enter the corrected resampled t-test
(``significance``) on the design's unit: the (fold, seed) run when every seed re-partitions
the data, the fold (its seeds averaged) when the seeds repeat training on the same folds.
Per test set, McNemar's test compares the two strategies image by image on the suite's
focus class (one against the rest), fold by fold. Every p-value of one comparison is
corrected as one family; a verdict is printed only where a test could reach α.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from harness.analysis.budget import summarise_exposure
from harness.analysis.intervals import paired_difference, summarise
from harness.analysis.loading import references_of
from harness.analysis.metrics import Predictions
from harness.analysis.significance import (
    CORRECTIONS,
    MIN_DF,
    correct,
    corrected_ttest,
    mcnemar_exact,
    min_discordant,
    verdict,
)

#: Whole-table figures of the comparison (per-class ones are added per class).
SUMMARY = (("macro_auroc", "macro AUROC"), ("balanced_accuracy", "balanced accuracy"),
           ("macro_f1", "macro F1"), ("mcc", "MCC"))
PER_CLASS = ("sensitivity", "specificity", "precision")


class RunLike(Protocol):
    """What a comparison needs of a finished run (``loading.RunResult`` has it)."""

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
    """The suite's ``report.references`` first, then the others in order of appearance."""
    seen = list(dict.fromkeys(r.sampler for r in runs))
    refs = references_of(runs)
    return [s for s in refs if s in seen] + [s for s in seen if s not in refs]


def focus_class(classes: Sequence[str], runs: Sequence[RunLike] = (),
                configured: str | None = None) -> str:
    """The class the comparison focuses on: the suite's ``report.focus_class``, else the
    class named like COVID-19, else the rarest class in the test sets."""
    if configured:
        return configured
    for c in classes:
        if "covid" in c.lower():
            return c
    support = {c: sum(r.metrics["per_class"][c]["support"] for r in runs) for c in classes}
    return min(classes, key=lambda c: support[c])


covid_class = focus_class  # the name the paper's discussion suggests


@dataclass
class Design:
    """How the runs were produced, as far as the tests need to know."""

    folds: int
    seeds: int
    #: True when every seed was tested on the same folds (the harness's fixed split seed).
    shared_partition: bool
    #: n_test / n_train of a fold (mean over runs), Nadeau & Bengio's correction term.
    ratio: float
    ratio_source: str

    @property
    def unit(self) -> str:
        return "fold" if self.shared_partition or self.seeds == 1 else "fold × seed"

    def describe(self) -> str:
        if self.seeds == 1:
            how = (f"Nadeau & Bengio's corrected resampled t-test over the {self.folds} folds "
                   f"(df = {self.folds - 1})")
        elif self.shared_partition:
            how = (f"the {self.seeds} seeds repeat training on the same {self.folds} folds, so "
                   "each fold's differences are averaged over its seeds and Nadeau & Bengio's "
                   f"corrected resampled t-test runs over the {self.folds} fold means "
                   f"(df = {self.folds - 1}); the seeds shrink each fold's training noise but "
                   "are not independent test sets")
        else:
            how = (f"Bouckaert & Frank's corrected repeated k-fold t-test over "
                   f"{self.folds} folds × {self.seeds} re-partitioned repetitions "
                   f"(df = {self.folds * self.seeds - 1})")
        return (f"{how}; variance corrected by n_test/n_train = {self.ratio:.3f} "
                f"({self.ratio_source})")


def design_of(runs: Sequence[RunLike]) -> Design:
    """Folds, seeds, whether seeds share the partition, and the test/train size ratio."""
    folds = sorted({r.fold for r in runs})
    seeds = sorted({r.seed for r in runs})
    shared = True
    for f in folds:
        tests = {frozenset(r.predictions.uids) for r in runs
                 if r.fold == f and r.predictions is not None}
        if len(tests) > 1:
            shared = False
    ratios = [r.n_test / r.n_train for r in runs
              if getattr(r, "n_test", None) and getattr(r, "n_train", None)]
    if ratios:
        ratio, source = float(np.mean(ratios)), "from the runs' training and test parts"
    else:
        k = max(len(folds), 2)
        ratio, source = 1.0 / (k - 1), f"assumed 1/(k − 1) for {k} folds: no part sizes recorded"
    return Design(len(folds), len(seeds), shared, ratio, source)


def _units(pairs: list[tuple[RunLike, RunLike | None]], key: str, design: Design) -> list[float]:
    """Per-unit values: ``a − b`` (or ``a`` alone), averaged over seeds per fold when shared."""
    rows = [(a.fold, value(a.metrics, key) - (value(b.metrics, key) if b is not None else 0.0))
            for a, b in pairs]
    if design.seeds > 1 and design.shared_partition:
        out = []
        for f in dict.fromkeys(f for f, _ in rows):
            vals = [v for g, v in rows if g == f and not math.isnan(v)]
            out.append(float(np.mean(vals)) if vals else math.nan)
        return out
    return [v for _, v in rows]


def _pairs(runs: Sequence[RunLike], strategy: str, reference: str) -> list[tuple[Any, Any]]:
    by_key = {(r.fold, r.seed): r for r in runs if r.sampler == reference}
    return sorted(((r, by_key[(r.fold, r.seed)]) for r in runs
                   if r.sampler == strategy and (r.fold, r.seed) in by_key),
                  key=lambda ab: (ab[0].fold, ab[0].seed))


def focus_correct(run: RunLike, uids: list[str], k: int) -> np.ndarray:
    """Per image of ``uids``: is the run's one-vs-rest decision for class ``k`` right?"""
    p = run.predictions
    where = {u: i for i, u in enumerate(p.uids)}
    idx = np.array([where[u] for u in uids], dtype=int)
    return (p.pred[idx] == k) == (p.true[idx] == k)


def _mcnemar_row(a: RunLike, b: RunLike, k: int, bootstrap: int, level: float) -> dict[str, Any]:
    """McNemar on the distinct images both runs predicted, for class ``k`` against the rest."""
    if a.predictions is None or b.predictions is None:
        return {}
    shared = set(b.predictions.uids)
    uids = [u for u in dict.fromkeys(a.predictions.uids) if u in shared]
    ra, rb = focus_correct(a, uids, k), focus_correct(b, uids, k)
    m = mcnemar_exact(ra, rb)
    patients = getattr(a, "patients", {}) or {}
    clusters = [patients.get(u, f"image:{u}") for u in uids]
    effect = paired_difference(ra, rb, clusters, n=bootstrap, seed=a.fold * 1009 + a.seed,
                               level=level)
    return {**m, "fold": a.fold, "seed": a.seed, "diff": effect["diff"], "ci": effect["ci"]}


def compare_strategies(runs: Sequence[RunLike], classes: Sequence[str], level: float = 0.95,
                       alpha: float = 0.05, correction: str = "holm",
                       focus: str | None = None, bootstrap: int = 1000) -> dict[str, Any]:
    """The comparison section as JSON-ready data (fractions; see module docstring)."""
    strategies = ordered_strategies(runs)
    keys = metric_keys(classes)
    design = design_of(runs)
    table = {s: {k: summarise(_units([(r, None) for r in runs if r.sampler == s], k, design),
                              level, (-1.0, 1.0) if k == "mcc" else (0.0, 1.0), design.ratio)
                 for k, _ in keys} for s in strategies}
    budget = {s: summarise_exposure([r for r in runs if r.sampler == s]) for s in strategies}
    focus = focus_class(classes, runs, focus)
    k_focus = list(classes).index(focus)
    repetitions = 1 if design.shared_partition else design.seeds

    paired: list[dict[str, Any]] = []
    mcn: list[dict[str, Any]] = []
    canonical: dict[tuple[str, str, str], dict[str, Any]] = {}
    for ref in (r for r in references_of(runs) if r in strategies):
        for s in strategies:
            pairs = _pairs(runs, s, ref) if s != ref else []
            if not pairs:
                continue
            mirror_of = (ref, s) if (ref, s, keys[0][0]) in canonical else None
            for key, label in keys:
                if mirror_of:
                    base = canonical[(ref, s, key)]
                    ci = base["ci"]
                    row = {**base, "strategy": s, "reference": ref, "mirror": True,
                           "mean_diff": None if base["mean_diff"] is None else -base["mean_diff"],
                           "t": None if base["t"] is None else -base["t"],
                           "ci": [None if ci[1] is None else -ci[1],
                                  None if ci[0] is None else -ci[0]]}
                else:
                    res = corrected_ttest(_units(pairs, key, design), design.ratio,
                                          repetitions, level)
                    row = {"strategy": s, "reference": ref, "metric": key, "label": label,
                           "n_units": res["n"], "unit": design.unit, "df": res["df"],
                           "mean_diff": res["mean"], "ci": res["ci"], "t": res["t"],
                           "p": res["p"], "mirror": False,
                           "testable": res["df"] >= MIN_DF and res["mean"] is not None}
                    canonical[(s, ref, key)] = row
                paired.append(row)
            if mirror_of:
                continue  # McNemar: the same test as an earlier pair, read the other way round
            for a, b in pairs:
                m = _mcnemar_row(a, b, k_focus, bootstrap, level)
                if m:
                    m.update(strategy=s, reference=ref, focus=focus,
                             testable=m["min_p"] <= alpha)
                    mcn.append(m)

    family = [r for r in paired if not r["mirror"] and r["testable"] and r["p"] is not None]
    family += [m for m in mcn if m["testable"]]
    for row, p_adj in zip(family, correct([r["p"] for r in family], correction, alpha)):
        row["p_adjusted"] = p_adj
    for row in paired:
        if row["mirror"]:
            row["p_adjusted"] = canonical[(row["reference"], row["strategy"],
                                           row["metric"])].get("p_adjusted")
        row.setdefault("p_adjusted", None)
        row["verdict"], row["sentence"] = verdict(row["mean_diff"], row["p_adjusted"],
                                                  row["testable"], alpha, row["strategy"],
                                                  row["reference"])
    for m in mcn:
        m.setdefault("p_adjusted", None)
        m["verdict"], m["sentence"] = verdict(m["diff"], m["p_adjusted"], True, alpha,
                                              m["strategy"], m["reference"],
                                              f"more {focus} decisions right")
        if not m["testable"]:
            m["verdict"] = "untested"
            m["sentence"] = (f"too few discordant images to test ({m['only_strategy_right']} + "
                             f"{m['only_reference_right']}: p ≥ {m['min_p']:.3g})")

    tradeoff = {s: [{"fold": r.fold, "seed": r.seed,
                     "sensitivity": r.metrics["per_class"][focus]["sensitivity"],
                     "false_positives": r.metrics["per_class"][focus]["wrong_detected"]}
                    for r in runs if r.sampler == s] for s in strategies}
    n_paired = sum(1 for r in paired if not r["mirror"] and r["testable"] and r["p"] is not None)
    return {"strategies": strategies, "classes": list(classes), "metrics": keys,
            "references": [r for r in references_of(runs) if r in strategies],
            "table": table, "budget": budget, "paired": paired, "mcnemar": mcn,
            "focus_class": focus, "covid_class": focus, "tradeoff": tradeoff,
            "level": level, "alpha": alpha, "design": {**asdict(design), "unit": design.unit,
                                                       "text": design.describe()},
            "family": {"size": len(family), "paired": n_paired, "mcnemar": len(family) - n_paired,
                       "untested": sum(1 for r in paired if not r["mirror"] and not r["testable"])
                       + sum(1 for m in mcn if not m["testable"]),
                       "correction": correction, "correction_text": CORRECTIONS[correction],
                       "min_df": MIN_DF, "mcnemar_min_discordant": min_discordant(alpha)}}
