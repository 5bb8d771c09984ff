"""Imbalance strategies side by side, on the same folds and seeds, with uncertainty.

Works on finished runs that share a backbone and engine and differ in sampler. Runs are
paired on (fold, seed). Per figure, the differences enter the corrected resampled t-test
(``significance``) on the design's unit: the (fold, seed) run when every seed re-partitions
the data, the fold (its seeds averaged) when the seeds repeat training on the same folds.
The p-values are corrected per family (``report.family``): by default one family per figure
(all strategy-against-reference tests of that figure), as in comparisons of several
classifiers against a control (Demšar 2006; García & Herrera 2008), or all of them as one
family. A verdict is printed only where a test could reach α.

Apart from the strategy verdicts, McNemar's test compares, per fold and seed, the two
*networks* trained there, image by image on the focus class: a check of two trained
networks on one test set, a family of its own, never a strategy verdict (Dietterich 1998).
Next to the differences stands each strategy's seed spread (``seed_spread``): how far the
same strategy moves when only the seed changes, so a difference within that noise is seen
as such.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from harness.analysis.budget import summarise_exposure
from harness.analysis.intervals import (
    clip,
    difference_range,
    paired_difference,
    summarise,
    value_range,
)
from harness.analysis.loading import references_of
from harness.analysis.metrics import Predictions
from harness.analysis.significance import (
    CORRECTIONS,
    MIN_DF,
    correct,
    corrected_ttest,
    mcnemar_exact,
    min_discordant,
    network_verdict,
    verdict,
)
from harness.config.suite import ReportConfig

#: Whole-table figures of the comparison (per-class ones are added per class).
SUMMARY = (("macro_auroc", "macro AUROC"), ("balanced_accuracy", "balanced accuracy"),
           ("macro_f1", "macro F1"), ("mcc", "MCC"))
PER_CLASS = ("sensitivity", "specificity", "precision")
#: How the strategy tests of one comparison are grouped for correction (``report.family``);
#: the McNemar rows are always a family of their own.
FAMILIES = {"figure": "one family per figure",
            "all": "every strategy test of the comparison in one family"}
#: Figures whose seed spread the report shows (besides the focus class's sensitivity).
SPREAD_FIGURES = ("balanced_accuracy", "macro_f1", "mcc", "macro_auroc")


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


def seed_spread(runs: Sequence[RunLike], strategy: str, key: str) -> dict[str, Any]:
    """How much one strategy's figure moves when only the seed changes.

    Runs of one fold and strategy differ only in their seed (and, where seeds re-partition
    the data, in their folds), so the spread within a fold is training noise. ``sd``: the
    within-fold standard deviation over seeds, pooled over folds (root of the mean of the
    per-fold variances); ``seed_diff``: the mean absolute difference between two seeds of one
    fold, what swapping one seed for another typically changes. None with one seed per fold.
    """
    by_fold: dict[int, list[float]] = {}
    for r in runs:
        if r.sampler == strategy:
            v = value(r.metrics, key)
            if not math.isnan(v):
                by_fold.setdefault(r.fold, []).append(v)
    groups = [np.asarray(v) for v in by_fold.values() if len(v) >= 2]
    out: dict[str, Any] = {"folds": len(groups), "runs": sum(len(v) for v in by_fold.values()),
                           "sd": None, "seed_diff": None}
    if groups:
        out["sd"] = float(math.sqrt(np.mean([g.var(ddof=1) for g in groups])))
        out["seed_diff"] = float(np.mean([np.mean(np.abs(g[:, None] - g[None, :])[
            np.triu_indices(g.size, 1)]) for g in groups]))
    return out


def seed_noise(spread: dict[str, dict[str, Any]], strategy: str, reference: str, key: str,
               n_pairs: int) -> float | None:
    """Standard deviation that seed noise alone gives a mean difference over ``n_pairs``
    paired runs: sqrt((sd_strategy² + sd_reference²) / n_pairs). The same whether seeds are
    averaged per fold first (r seeds × J folds) or every run is a unit."""
    a, b = spread[strategy][key]["sd"], spread[reference][key]["sd"]
    if a is None or b is None or not n_pairs:
        return None
    return float(math.sqrt((a * a + b * b) / n_pairs))


def compare_strategies(runs: Sequence[RunLike], classes: Sequence[str], level: float = 0.95,
                       alpha: float = ReportConfig.alpha, correction: str = ReportConfig.correction,
                       focus: str | None = None, bootstrap: int = ReportConfig.bootstrap,
                       family: str = ReportConfig.family) -> dict[str, Any]:
    """The comparison section as JSON-ready data (fractions; see module docstring); the
    defaults are the suite's (``report:``)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    strategies = ordered_strategies(runs)
    keys = metric_keys(classes)
    design = design_of(runs)
    table = {s: {k: summarise(_units([(r, None) for r in runs if r.sampler == s], k, design),
                              level, value_range(k), design.ratio)
                 for k, _ in keys} for s in strategies}
    spread = {s: {k: seed_spread(runs, s, k) for k, _ in keys} for s in strategies}
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
                                  None if ci[0] is None else -ci[0]],
                           "clipped": base["clipped"][::-1]}
                else:
                    res = corrected_ttest(_units(pairs, key, design), design.ratio,
                                          repetitions, level)
                    ci, clipped = clip(res["ci"], difference_range(key))
                    noise = seed_noise(spread, s, ref, key, len(pairs))
                    row = {"strategy": s, "reference": ref, "metric": key, "label": label,
                           "n_units": res["n"], "unit": design.unit, "df": res["df"],
                           "mean_diff": res["mean"], "ci": ci, "clipped": clipped,
                           "t": res["t"], "p": res["p"], "mirror": False,
                           "seed_noise": noise,
                           "within_seed_noise": (None if noise is None or res["mean"] is None
                                                 else abs(res["mean"]) <= 2 * noise),
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

    groups = adjust(paired, mcn, family, correction, alpha)
    for row in paired:
        if row["mirror"]:
            base = canonical[(row["reference"], row["strategy"], row["metric"])]
            row["p_adjusted"] = base.get("p_adjusted")
            row["family"], row["family_size"] = base.get("family"), base.get("family_size")
        row.setdefault("p_adjusted", None)
        row.setdefault("family", None)
        row.setdefault("family_size", None)
        row["verdict"], row["sentence"] = verdict(row["mean_diff"], row["p_adjusted"],
                                                  row["testable"], alpha, row["strategy"],
                                                  row["reference"])
    for m in mcn:
        m.setdefault("p_adjusted", None)
        m.setdefault("family", None)
        m.setdefault("family_size", None)
        m["verdict"], m["sentence"] = network_verdict(m, alpha, focus)

    tradeoff = {s: [{"fold": r.fold, "seed": r.seed,
                     "sensitivity": r.metrics["per_class"][focus]["sensitivity"],
                     "false_positives": r.metrics["per_class"][focus]["wrong_detected"]}
                    for r in runs if r.sampler == s] for s in strategies}
    sizes = [{"name": name, "label": _family_label(name, keys, focus), "size": len(rows),
              "paired": len(rows)} for name, rows in groups.items() if name != "mcnemar"]
    n_mcnemar = len(groups.get("mcnemar", []))
    references = [r for r in references_of(runs) if r in strategies]
    canonical_rows = [r for r in paired if not r["mirror"]]
    spread_keys = [k for k in SPREAD_FIGURES if k in dict(keys)] + [f"sensitivity:{focus}"]
    return {"strategies": strategies, "classes": list(classes), "metrics": keys,
            "references": references,
            "table": table, "budget": budget, "paired": paired, "mcnemar": mcn,
            "focus_class": focus, "tradeoff": tradeoff,
            "level": level, "alpha": alpha, "design": {**asdict(design), "unit": design.unit,
                                                       "text": design.describe()},
            "seed_spread": {"figures": [(k, dict(keys)[k]) for k in spread_keys],
                            "by_strategy": spread,
                            "seeds": design.seeds, "shared_partition": design.shared_partition},
            "family": {"size": sum(f["size"] for f in sizes),
                       "paired": sum(f["size"] for f in sizes),
                       "mode": family, "families": sizes,
                       "text": describe_families(family, sizes, correction, alpha, references),
                       "untested": sum(1 for r in canonical_rows
                                       if not r["testable"] and r["mean_diff"] is not None),
                       "no_data": sum(1 for r in canonical_rows if r["mean_diff"] is None),
                       "correction": correction, "correction_text": CORRECTIONS[correction],
                       "min_df": MIN_DF},
            "mcnemar_family": {"size": n_mcnemar, "rows": len(mcn),
                               "untested": sum(1 for m in mcn if not m["testable"]),
                               "text": describe_mcnemar_family(n_mcnemar, correction, alpha),
                               "min_discordant": min_discordant(alpha)}}


def families(paired: list[dict[str, Any]], mcnemar: list[dict[str, Any]],
             mode: str = "figure") -> dict[str, list[dict[str, Any]]]:
    """The testable rows, grouped into the families that are corrected together.

    ``figure``: per figure, every strategy-against-reference t-test of it (the comparisons
    of several classifiers against a control, per performance measure: Demšar 2006, JMLR
    7:1-30; García & Herrera 2008, JMLR 9:2677-2694). ``all``: every t-test in one family.
    The McNemar rows are always a family of their own (``mcnemar``): they test two trained
    networks, not two strategies, and never enter a strategy family. Mirror rows (the same
    test read the other way round) and rows that cannot reach α belong to no family.
    """
    tests = [r for r in paired if not r["mirror"] and r["testable"] and r["p"] is not None]
    rows = [m for m in mcnemar if m["testable"]]
    out: dict[str, list[dict[str, Any]]] = {}
    if mode == "all":
        if tests:
            out["all"] = tests
    else:
        for r in tests:
            out.setdefault(r["metric"], []).append(r)
    if rows:
        out["mcnemar"] = rows
    return out


def adjust(paired: list[dict[str, Any]], mcnemar: list[dict[str, Any]], mode: str,
           correction: str, alpha: float) -> dict[str, list[dict[str, Any]]]:
    """Correct each family on its own: sets ``p_adjusted``, ``family`` and ``family_size``
    on its rows; returns the families."""
    groups = families(paired, mcnemar, mode)
    for name, rows in groups.items():
        for row, p_adj in zip(rows, correct([r["p"] for r in rows], correction, alpha)):
            row["p_adjusted"] = p_adj
            row["family"], row["family_size"] = name, len(rows)
    return groups


def _family_label(name: str, keys: Sequence[tuple[str, str]], focus: str) -> str:
    if name == "all":
        return "all strategy tests"
    if name == "mcnemar":
        return f"McNemar, {focus} against the rest"
    return dict(keys).get(name, name)


#: What each correction guarantees within one family (Holm 1979; Benjamini & Hochberg 1995).
GUARANTEE = {
    "holm": "the chance of any false flag is at most α",
    "fdr_bh": ("the expected share of false flags among the flags is at most α (for "
               "independent or positively dependent tests; where no difference is real, "
               "this bounds the chance of any false flag)"),
}
#: What choosing ``report.family: all`` instead does to the flags, per correction.
ALL_INSTEAD = {
    "holm": ("With report.family: all, every strategy test forms one family, which holds α "
             "for the whole comparison; Holm's adjusted p-values in the larger family are "
             "never smaller, so it flags no more and often less."),
    "fdr_bh": ("With report.family: all, every strategy test forms one family and the false "
               "discovery rate is held for the comparison as a whole; Benjamini-Hochberg's "
               "adjusted p-values in the larger family can be smaller or larger than per "
               "figure (small p-values of other figures lower them), so it may flag more or "
               "fewer."),
}


def describe_families(mode: str, sizes: list[dict[str, Any]], correction: str, alpha: float,
                      references: Sequence[str] = ()) -> str:
    """What was corrected together, how large each family is, and what that guarantees
    under the chosen correction (the McNemar family: ``describe_mcnemar_family``)."""
    how = f"{CORRECTIONS[correction]} at α = {alpha:g}"
    per = GUARANTEE[correction]
    if not sizes:
        return (f"No strategy test can reach α with this design, so nothing is corrected "
                f"({how}, {FAMILIES[mode]}).")
    if mode == "all":
        f = sizes[0]
        return (f"One family: all {f['size']} strategy tests corrected together with {how}; "
                f"{per} for the comparison as a whole. The larger the family, the larger a "
                "difference must be to be flagged.")
    counts = {f["size"]: sum(g["size"] == f["size"] for g in sizes) for f in sizes}
    common = max(counts, key=lambda k: (counts[k], k))
    same = [f for f in sizes if f["size"] == common]
    refs = (", ".join(references[:-1]) + " and " + references[-1] if len(references) > 1
            else references[0] if references else "the references")
    each = f"{common} test{'s' if common != 1 else ''} each"
    n = len(sizes)
    if len(same) == n:
        text = f"one per figure for {n} figure{'s' if n != 1 else ''} ({each}, every strategy against {refs})"
    else:
        text = (f"one per figure for {n} figures ({each} for {len(same)} of them, every "
                f"strategy against {refs}; "
                + ", ".join(f"{f['label']}: {f['size']}" for f in sizes if f["size"] != common)
                + ")")
    total = sum(f["size"] for f in sizes)
    text = (f"{n} famil{'ies' if n != 1 else 'y'}: {text}; {total} strategy tests in all. ")
    if n == 1:
        return text + f"Corrected with {how}: {per} for the comparison as a whole."
    text += (f"Each family is corrected on its own with {how}: {per} for each figure "
             "separately, not for the page as a whole")
    if correction == "holm":
        text += (f"; over all {n} families the chance of some false flag is only bounded by "
                 f"{n} × α = {n * alpha:.2g}" if n * alpha < 1 else
                 f"; over all {n} families the correction bounds the chance of some false "
                 "flag no lower than 1")
    else:
        text += ("; over all families together neither the false discovery rate nor the "
                 "chance of some false flag is held at α")
    return text + ". " + ALL_INSTEAD[correction]


def describe_mcnemar_family(size: int, correction: str, alpha: float) -> str:
    """The McNemar rows' own family: what it is corrected with and what it guarantees."""
    if not size:
        return ("No McNemar row can reach α (too few discordant images), so none is "
                "corrected or tested.")
    return (f"The {size} testable McNemar rows form one family of their own, corrected with "
            f"{CORRECTIONS[correction]} at α = {alpha:g}: {GUARANTEE[correction]} among them. "
            "They are never counted with the strategy tests.")
