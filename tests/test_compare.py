"""The strategy comparison, checked against values computed by hand on a small fixture."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest
from scipy import stats

from harness.analysis.compare import (
    adjust,
    compare_strategies,
    describe_families,
    describe_mcnemar_family,
    design_of,
)
from harness.analysis.figures import comparison_figures
from harness.analysis.intervals import paired_difference, summarise
from harness.analysis.metrics import Predictions, compute_metrics
from harness.analysis.significance import correct, corrected_ttest, mcnemar_exact, verdict

CLASSES = ["normal", "pneumonia", "covid19"]


@dataclass
class Run:
    sampler: str
    fold: int
    seed: int
    metrics: dict
    predictions: Predictions
    budget: int | None = None
    n_train: int | None = None
    n_test: int | None = None
    patients: dict = field(default_factory=dict)
    exposure: dict = field(default_factory=dict)


def make_run(sampler, fold, true, pred, uids=None, budget=None, seed=0, **kw):
    true, pred = np.asarray(true), np.asarray(pred)
    uids = uids or [f"f{fold}-{i}" for i in range(len(true))]
    preds = Predictions(CLASSES, uids, true, pred, np.eye(3)[pred] * 0.8 + 0.1 / 1.5)
    return Run(sampler, fold, seed, compute_metrics(preds, bootstrap=0), preds, budget, **kw)


#           images:   0  1  2  3  4  5  6  7  8  9
TRUE = {1: [0, 0, 0, 0, 1, 1, 1, 2, 2, 2],
        2: [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]}
NONE = {1: [0, 0, 0, 1, 1, 0, 0, 0, 2, 0],      # covid19 found 1 of 3 in fold 1
        2: [0, 0, 1, 1, 1, 0, 0, 2, 0, 0]}      # 1 of 3 in fold 2
PHASED = {1: [0, 0, 2, 1, 1, 1, 0, 2, 2, 2],    # 3 of 3, one false covid19
          2: [0, 0, 0, 1, 1, 1, 1, 2, 2, 0]}    # 2 of 3


@pytest.fixture
def runs():
    exposure = {"images_seen": 200, "epochs": 4, "distinct_images": 50,
                "selection_checkpoints": 4}
    out = [make_run("none", f, TRUE[f], NONE[f], budget=200, exposure=dict(exposure))
           for f in (1, 2)]
    # phased predictions listed in reverse: McNemar must match images by uid, not position
    for f in (1, 2):
        uids = [f"f{f}-{i}" for i in range(10)][::-1]
        out.append(make_run("phased", f, TRUE[f][::-1], PHASED[f][::-1], uids, budget=200,
                            exposure={**exposure, "epochs": 8 + f}))
    return out


def test_corrected_resampled_ttest_hand_computed():
    # Nadeau & Bengio: d = (.02, .03, .01, .04, 0), n_test/n_train = 1/4. By hand: mean .02,
    # s² = (0 + 1 + 1 + 4 + 4)e-4 / 4 = 2.5e-4, var of the mean (1/5 + 1/4) s² = 1.125e-4,
    # t = .02 / sqrt(1.125e-4) = 4·sqrt(2)/3 = 1.8856, df 4, two-sided p 0.1324 (t table);
    # 95 % interval .02 ± 2.7764 · 0.010607 = [-0.00945, 0.04945].
    res = corrected_ttest([0.02, 0.03, 0.01, 0.04, 0.00], 0.25)
    assert res["t"] == pytest.approx(4 * math.sqrt(2) / 3)
    assert res["df"] == 4 and res["p"] == pytest.approx(0.13242, abs=1e-5)
    assert res["ci"] == [pytest.approx(-0.009449, abs=1e-6), pytest.approx(0.049449, abs=1e-6)]
    # The uncorrected paired t-test would call the same differences significant.
    assert stats.ttest_1samp([0.02, 0.03, 0.01, 0.04, 0.00], 0).pvalue < 0.05
    # Bouckaert & Frank, 2 folds x 3 repetitions (n_test/n_train = 1): d = (1..6)/100,
    # mean .035, s² = 3.5e-4, t² = .035² / ((1/6 + 1) 3.5e-4) = 3 exactly, df 5, p 0.1438.
    res = corrected_ttest(np.arange(1, 7) / 100, 1.0, repetitions=3)
    assert res["t"] == pytest.approx(math.sqrt(3)) and res["df"] == 5
    assert res["p"] == pytest.approx(0.14381, abs=1e-5)
    # With ratio 0 it is the ordinary one-sample t-test.
    d = [0.3, -0.1, 0.2, 0.25]
    assert corrected_ttest(d, 0.0)["p"] == pytest.approx(stats.ttest_1samp(d, 0).pvalue)
    assert corrected_ttest([0.1], 0.25)["p"] is None
    assert corrected_ttest([0.1, 0.1, 0.1], 0.25)["p"] is None   # no variance, no test


def test_holm_and_bh_match_statsmodels():
    from statsmodels.stats.multitest import multipletests

    p = [0.01, 0.04, 0.03, 0.2, 0.001]
    assert correct(p, "holm") == pytest.approx(list(multipletests(p, method="holm")[1]))
    assert correct(p, "fdr_bh") == pytest.approx(list(multipletests(p, method="fdr_bh")[1]))
    # Holm by hand on three: sorted .01·3 = .03, .03·2 = .06, .04·1 -> max(.04, .06) = .06.
    assert correct([0.01, 0.04, 0.03], "holm") == pytest.approx([0.03, 0.06, 0.06])
    with pytest.raises(ValueError, match="unknown correction"):
        correct(p, "bonferonni")


def _row(p, metric=None, mirror=False, testable=True):
    row = {"p": p, "mirror": mirror, "testable": testable}
    return {**row, "metric": metric} if metric else row


def test_holm_within_each_family_matches_statsmodels_on_that_family():
    from statsmodels.stats.multitest import multipletests

    def build():
        paired = [_row(0.01, "a"), _row(0.04, "a"), _row(0.03, "a"), _row(0.02, "b"),
                  _row(0.001, "a", mirror=True),         # the same test read the other way
                  _row(0.001, "b", testable=False)]      # too few folds: in no family
        return paired, [_row(0.04), _row(0.01), _row(0.0001, testable=False)]

    paired, mcn = build()
    groups = adjust(paired, mcn, "figure", "holm", 0.05)
    assert {k: len(v) for k, v in groups.items()} == {"a": 3, "b": 1, "mcnemar": 2}
    # By hand: a: .01·3 = .03, .03·2 = .06, .04·1 -> .06; b alone: .02; McNemar: .01·2 = .02,
    # .04·1 -> .04.
    assert [r["p_adjusted"] for r in paired[:4]] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [r["p_adjusted"] for r in mcn[:2]] == pytest.approx([0.04, 0.02])
    for name, rows in groups.items():
        p = [r["p"] for r in rows]
        assert [r["p_adjusted"] for r in rows] == pytest.approx(
            list(multipletests(p, method="holm")[1]))
        assert {r["family"] for r in rows} == {name} and {r["family_size"] for r in rows} == {len(p)}
    assert "p_adjusted" not in paired[4] and "p_adjusted" not in paired[5]
    assert "p_adjusted" not in mcn[2]

    # One family of the four t-tests: .01·4 = .04, .02·3 = .06, .03·2, .04 -> .06. The
    # McNemar rows stay a family of their own (two networks, not two strategies).
    paired, mcn = build()
    groups = adjust(paired, mcn, "all", "holm", 0.05)
    assert list(groups) == ["all", "mcnemar"] and len(groups["all"]) == 4
    assert [r["p_adjusted"] for r in paired[:4]] == pytest.approx([0.04, 0.06, 0.06, 0.06])
    assert [r["p_adjusted"] for r in mcn[:2]] == pytest.approx([0.04, 0.02])
    assert {r["family"] for r in mcn[:2]} == {"mcnemar"}
    paired, mcn = build()
    adjust(paired, mcn, "figure", "fdr_bh", 0.05)
    assert [r["p_adjusted"] for r in paired[:3]] == pytest.approx(
        list(multipletests([0.01, 0.04, 0.03], method="fdr_bh")[1]))


def test_the_family_text_names_each_family_and_its_guarantee():
    sizes = [{"name": "balanced_accuracy", "label": "balanced accuracy", "size": 21, "paired": 21},
             {"name": "mcc", "label": "MCC", "size": 21, "paired": 21},
             {"name": "macro_auroc", "label": "macro AUROC", "size": 11, "paired": 11}]
    text = describe_families("figure", sizes, "holm", 0.05, ["none", "phased"])
    assert text.startswith("3 families: one per figure for 3 figures (21 tests each for 2 of "
                           "them, every strategy against none and phased; macro AUROC: 11); "
                           "53 strategy tests in all.")
    assert "at most α for each figure separately, not for the page as a whole" in text
    assert "bounded by 3 × α = 0.15" in text
    assert "McNemar" not in text
    assert text.endswith("never smaller, so it flags no more and often less.")
    one = describe_families("all", [{"name": "all", "size": 30, "paired": 30}], "holm", 0.05)
    assert one.startswith("One family: all 30 strategy tests corrected together")
    assert "at most α for the comparison as a whole" in one
    # Two folds (the demo): no strategy test can reach α; McNemar is described on its own.
    assert describe_families("figure", [], "holm", 0.05).startswith("No strategy test can")
    assert describe_mcnemar_family(10, "holm", 0.05) == (
        "The 10 testable McNemar rows form one family of their own, corrected with Holm "
        "step-down (family-wise error) at α = 0.05: the chance of any false flag is at most α "
        "among them. They are never counted with the strategy tests.")


def test_bh_wording_claims_only_what_bh_guarantees():
    """With fdr_bh, "flags no more" under ``family: all`` is false: the issue's example, a
    p of 0.03 among three tests of one figure (BH 0.09) and ten p of 0.001 of other figures
    (0.03 · 13 / 11 = 0.035 in one family of 13)."""
    from statsmodels.stats.multitest import multipletests

    paired = [_row(0.03, "a"), _row(0.5, "a"), _row(0.6, "a")] + [
        _row(0.001, f"m{i}") for i in range(10)]
    adjust(paired, [], "figure", "fdr_bh", 0.05)
    per_figure = paired[0]["p_adjusted"]
    for r in paired:
        r.pop("p_adjusted")
    adjust(paired, [], "all", "fdr_bh", 0.05)
    together = paired[0]["p_adjusted"]
    assert per_figure == pytest.approx(0.09) and together == pytest.approx(0.03 * 13 / 11)
    assert together == pytest.approx(multipletests([r["p"] for r in paired], method="fdr_bh")[1][0])
    assert together < 0.05 < per_figure          # family: all flags it, per figure does not
    sizes = [{"name": "a", "label": "a", "size": 3, "paired": 3}] + [
        {"name": f"m{i}", "label": f"m{i}", "size": 1, "paired": 1} for i in range(10)]
    text = describe_families("figure", sizes, "fdr_bh", 0.05, ["none"])
    assert "flags no more" not in text and "bounded by" not in text
    assert "may flag more or fewer" in text
    assert "expected share of false flags among the flags is at most α" in text
    holm = describe_families("figure", sizes, "holm", 0.05, ["none"])
    assert "flags no more" in holm and "chance of any false flag is at most α" in holm


def test_mcnemar_exact_is_the_binomial_test():
    a = np.array([True] * 9 + [False] * 3 + [True] * 5 + [False] * 2)
    b = np.array([True] * 9 + [True] * 3 + [False] * 5 + [False] * 2)
    m = mcnemar_exact(a, b)
    assert (m["only_strategy_right"], m["only_reference_right"]) == (5, 3)
    assert (m["both_right"], m["both_wrong"], m["n"]) == (9, 2, 19)
    assert m["p"] == pytest.approx(stats.binomtest(5, 8, 0.5).pvalue)
    assert m["min_p"] == pytest.approx(2 * 0.5 ** 8)
    same = mcnemar_exact(a, a)
    assert same["p"] == 1.0 and same["min_p"] == 1.0


def test_table_is_mean_sd_and_corrected_interval(runs):
    result = compare_strategies(runs, CLASSES, bootstrap=0)
    assert result["strategies"] == ["none", "phased"]
    # no part sizes in these runs: n_test/n_train assumed 1/(k-1) = 1 for 2 folds
    assert result["design"]["ratio"] == 1.0 and "assumed" in result["design"]["ratio_source"]
    cell = result["table"]["phased"]["sensitivity:covid19"]
    assert cell["n"] == 2
    assert cell["mean"] == pytest.approx((3 / 3 + 2 / 3) / 2)
    assert cell["sd"] == pytest.approx(np.std([1, 2 / 3], ddof=1))
    half = stats.t.ppf(0.975, 1) * math.sqrt((1 / 2 + 1) * cell["sd"] ** 2)
    assert cell["ci"] == [pytest.approx(max(5 / 6 - half, 0)), pytest.approx(min(5 / 6 + half, 1))]
    assert result["table"]["none"]["sensitivity:covid19"]["mean"] == pytest.approx(1 / 3)
    assert result["table"]["phased"]["precision:covid19"]["mean"] == pytest.approx((3 / 4 + 1) / 2)
    assert result["budget"]["none"] == {"images_seen": 200, "epochs": 4, "distinct_images": 50,
                                        "selection_checkpoints": 4}
    assert result["budget"]["phased"]["epochs"] == 9.5
    assert result["focus_class"] == "covid19"
    assert result["tradeoff"]["phased"][0] == {"fold": 1, "seed": 0, "sensitivity": 1.0,
                                               "false_positives": 1}


def test_two_folds_give_effects_and_intervals_but_no_verdict(runs):
    result = compare_strategies(runs, CLASSES, bootstrap=0)
    row = next(p for p in result["paired"] if p["strategy"] == "phased"
               and p["reference"] == "none" and p["metric"] == "balanced_accuracy")
    a = [r.metrics["balanced_accuracy"] for r in runs if r.sampler == "phased"]
    b = [r.metrics["balanced_accuracy"] for r in runs if r.sampler == "none"]
    assert row["n_units"] == 2 and row["df"] == 1
    assert row["mean_diff"] == pytest.approx(np.mean(np.subtract(a, b)))
    assert row["ci"][0] < row["mean_diff"] < row["ci"][1]
    assert not row["testable"] and row["verdict"] == "untested"
    assert row["sentence"] == "too few folds/seeds to test"
    assert {p["verdict"] for p in result["paired"]} <= {"untested", "none"}
    assert result["family"]["size"] == 0 and result["family"]["untested"] > 0
    # "none" against "phased" is the mirror image, not a second member of the family
    mirror = next(p for p in result["paired"] if p["strategy"] == "none"
                  and p["reference"] == "phased" and p["metric"] == "balanced_accuracy")
    assert mirror["mirror"] and mirror["mean_diff"] == pytest.approx(-row["mean_diff"])
    assert mirror["ci"] == [pytest.approx(-row["ci"][1]), pytest.approx(-row["ci"][0])]


def test_mcnemar_per_fold_on_the_focus_class(runs):
    result = compare_strategies(runs, CLASSES, bootstrap=200)
    rows = {m["fold"]: m for m in result["mcnemar"]}
    assert len(result["mcnemar"]) == 2       # phased vs none per fold, not again reversed
    # By hand, covid19 against the rest. Fold 1: none is right on 0-6 and 8; phased on all
    # but 2 (a false covid19): only phased right 7, 9; only none right 2. Fold 2: none right
    # on 0-7, phased on 0-8: only phased right 8.
    f1, f2 = rows[1], rows[2]
    assert (f1["strategy"], f1["reference"], f1["n"]) == ("phased", "none", 10)
    assert (f1["only_strategy_right"], f1["only_reference_right"], f1["both_right"],
            f1["both_wrong"]) == (2, 1, 7, 0)
    assert (f2["only_strategy_right"], f2["only_reference_right"], f2["both_right"],
            f2["both_wrong"]) == (1, 0, 8, 1)
    assert f1["p"] == pytest.approx(stats.binomtest(2, 3, 0.5).pvalue)
    assert f1["diff"] == pytest.approx(0.1) and f2["diff"] == pytest.approx(0.1)
    assert f1["ci"][0] <= 0.1 <= f1["ci"][1]
    # 3 and 1 discordant images: no p below 0.05 is possible, so no verdict
    assert f1["verdict"] == f2["verdict"] == "untested"
    assert "too few discordant images" in f1["sentence"]


def test_focus_class_from_the_suite(runs):
    result = compare_strategies(runs, CLASSES, focus="pneumonia", bootstrap=0)
    assert result["focus_class"] == "pneumonia"
    assert {m["focus"] for m in result["mcnemar"]} == {"pneumonia"}


def test_design_seeds_on_shared_folds_are_averaged_per_fold():
    rng = np.random.default_rng(0)
    runs = []
    for fold in (1, 2, 3):
        true = rng.choice(3, size=30)
        for seed in (0, 1):
            for sampler in ("none", "phased"):
                pred = np.where(rng.random(30) < 0.7, true, rng.choice(3, size=30))
                runs.append(make_run(sampler, fold, true, pred, seed=seed, n_train=90,
                                     n_test=30))
    design = design_of(runs)
    assert design.shared_partition and design.seeds == 2 and design.ratio == pytest.approx(1 / 3)
    row = next(p for p in compare_strategies(runs, CLASSES, bootstrap=0)["paired"]
               if p["metric"] == "macro_f1" and not p["mirror"])
    per_fold = [np.mean([a.metrics["macro_f1"] - b.metrics["macro_f1"]
                         for a in runs for b in runs
                         if a.sampler == "phased" and b.sampler == "none"
                         and a.fold == b.fold == f and a.seed == b.seed]) for f in (1, 2, 3)]
    expected = corrected_ttest(per_fold, 1 / 3)
    assert row["n_units"] == 3 and row["unit"] == "fold"
    assert row["p"] == pytest.approx(expected["p"]) and row["testable"]
    # Seeds tested on other images (re-partitioned) enter as repeated CV: 6 units, df 5.
    for r in runs:
        if r.seed == 1:
            r.predictions.uids = [u + "-s1" for u in r.predictions.uids]
    assert not design_of(runs).shared_partition
    row = next(p for p in compare_strategies(runs, CLASSES, bootstrap=0)["paired"]
               if p["metric"] == "macro_f1" and not p["mirror"])
    assert (row["n_units"], row["df"], row["unit"]) == (6, 5, "fold × seed")


def test_verdicts_are_plain():
    assert verdict(0.05, 0.01, True, 0.05, "phased", "none") == (
        "better", "higher with phased (adjusted p < 0.05)")
    assert verdict(-0.05, 0.01, True, 0.05, "phased", "none")[0] == "worse"
    assert verdict(-0.05, 0.2, True, 0.05, "phased", "none")[0] == "flat"
    assert verdict(0.3, None, False, 0.05, "phased", "none") == (
        "untested", "too few folds/seeds to test")


def test_summarise_and_paired_difference_edges():
    assert summarise([0.4])["sd"] is None and summarise([])["mean"] is None
    assert summarise([0.9, 1.0, 1.0])["ci"][1] == 1.0     # clipped to the figure's range
    wide = summarise([0.5, 0.6, 0.7], test_train_ratio=0.25)["ci"]
    narrow = summarise([0.5, 0.6, 0.7])["ci"]
    assert wide[0] < narrow[0] and wide[1] > narrow[1]
    # Two images of one patient always travel together: with every patient's pair agreeing,
    # the interval is that of 3 draws, wider than 6 independent images would give.
    a = np.array([1, 1, 0, 0, 1, 1], bool)
    b = np.zeros(6, bool)
    clustered = paired_difference(a, b, ["p1", "p1", "p2", "p2", "p3", "p3"], n=2000)
    single = paired_difference(a, b, [f"i{i}" for i in range(6)], n=2000)
    assert clustered["diff"] == pytest.approx(4 / 6)
    assert set(np.round(clustered["ci"], 6)) <= {0.0, 1 / 3, 2 / 3, 1.0}
    assert clustered["ci"][1] - clustered["ci"][0] >= single["ci"][1] - single["ci"][0]


def test_figures_have_curves_per_class_and_tradeoff(runs):
    figs = comparison_figures(runs, CLASSES)
    assert set(figs) == {"curves_normal", "curves_pneumonia", "curves_covid19", "tradeoff"}
    roc, pr = figs["curves_covid19"].axes
    assert len(roc.get_lines()) == 3    # two strategies and the chance diagonal
    assert [t.get_text() for t in pr.get_legend().get_texts()] == ["none", "phased"]
    legend = [t.get_text() for t in figs["tradeoff"].axes[0].get_legend().get_texts()]
    assert legend == ["none: 33.3% at 0.0 FP", "phased: 83.3% at 0.5 FP"]


def hand_run(sampler, fold, seed=0, **figures):
    """A run whose metrics are set by hand (no predictions): ``figures`` maps a compared
    key (``mcc``, ``sensitivity:covid19``, …) to its value; every other figure is 0.5."""
    per_class = {c: {"sensitivity": 0.5, "specificity": 0.5, "precision": 0.5, "support": 10,
                     "wrong_detected": 1} for c in CLASSES}
    metrics = {"macro_auroc": 0.5, "balanced_accuracy": 0.5, "macro_f1": 0.5, "mcc": 0.0,
               "per_class": per_class}
    for key, v in figures.items():
        if ":" in key:
            fig, cls = key.split(":")
            per_class[cls][fig] = v
        else:
            metrics[key] = v
    return Run(sampler, fold, seed, metrics, None, n_train=100, n_test=100)


def row_of(result, key, strategy="a", reference="none"):
    return next(r for r in result["paired"] if r["metric"] == key
                and r["strategy"] == strategy and r["reference"] == reference)


def test_difference_intervals_are_cut_at_the_figures_range():
    """The issue's examples: "−24.11 [−584.99, +536.78]" points (a per-class figure, two
    folds) and MCC [−1.105, +0.539], which a difference of MCC (range −2 to 2) may be."""
    sens = "sensitivity:covid19"
    runs = [hand_run("none", 1, **{sens: 0.5, "mcc": 0.3}),
            hand_run("none", 2, **{sens: 0.5, "mcc": 0.3}),
            hand_run("phased", 1, **{sens: 0.004, "mcc": 0.3 - 0.3204}),
            hand_run("phased", 2, **{sens: 0.5137, "mcc": 0.3 - 0.2457})]
    result = compare_strategies(runs, CLASSES, bootstrap=0)
    row = row_of(result, sens, "phased")
    raw = corrected_ttest([0.004 - 0.5, 0.5137 - 0.5], 1.0)
    assert row["mean_diff"] == pytest.approx(-0.24115)
    assert raw["ci"][0] < -5 and raw["ci"][1] > 5          # the t interval, uncut
    assert row["ci"] == [-1.0, 1.0] and row["clipped"] == [True, True]
    mirror = row_of(result, sens, "none", "phased")
    assert mirror["ci"] == [-1.0, 1.0] and mirror["clipped"] == [True, True]
    mcc = row_of(result, "mcc", "phased")
    assert mcc["ci"] == [pytest.approx(-1.105, abs=2e-3), pytest.approx(0.539, abs=2e-3)]
    assert mcc["clipped"] == [False, False]                 # inside [−2, 2]: left as it is
    # Wider still: an MCC difference interval is cut at −2 and 2, a mean MCC at −1 and 1.
    runs[2].metrics["mcc"], runs[3].metrics["mcc"] = -0.9, 0.9
    result = compare_strategies(runs, CLASSES, bootstrap=0)
    assert row_of(result, "mcc", "phased")["ci"] == [-2.0, 2.0]
    assert result["table"]["phased"]["mcc"]["ci"] == [-1.0, 1.0]
    assert result["table"]["phased"]["mcc"]["clipped"] == [True, True]
    assert result["table"]["none"]["mcc"]["clipped"] == [False, False]   # no spread at all


def test_no_data_is_counted_apart_from_too_few_folds():
    runs = [hand_run(s, f) for s in ("none", "a") for f in (1, 2, 3)]
    for r in runs:
        r.metrics["macro_auroc"] = None        # never defined: no data
    for r in runs[3:5]:
        r.metrics["mcc"] = None                # defined in one fold only: too few folds
    runs[5].metrics["mcc"] = 0.2
    result = compare_strategies(runs, CLASSES, bootstrap=0)
    auroc, mcc = row_of(result, "macro_auroc"), row_of(result, "mcc")
    assert (auroc["verdict"], auroc["sentence"]) == ("none", "no data")
    assert (mcc["verdict"], mcc["sentence"]) == ("untested", "too few folds/seeds to test")
    assert result["family"]["no_data"] == 1
    assert result["family"]["untested"] == 1


def test_signed_numbers_never_show_minus_zero():
    from harness.analysis.metrics import fmt, pct, signed

    assert signed(-1e-9, 100, 2) == "0.00" and signed(1e-9, 100, 2) == "0.00"
    assert signed(-0.0004) == "0.000" and signed(-0.0006) == "-0.001"
    assert signed(-0.24115, 100, 2) == "-24.12" and signed(0.5) == "+0.500"
    assert pct(-1e-9) == "0.00" and fmt(-0.0001) == "0.000" and fmt(-0.002) == "-0.002"
    assert signed(None) == pct(None) == fmt(float("nan")) == "n/a"


def test_seed_spread_and_the_noise_of_a_difference_by_hand():
    # Strategy a, three seeds per fold. Fold 1: .6 .7 .8 (variance .01, seed-to-seed |d|:
    # .1 .2 .1, mean 2/15); fold 2: .5 .5 .8 (variance .03, |d|: 0 .3 .3, mean .2). Pooled
    # sd sqrt(.02); mean |d| (2/15 + .2) / 2 = 1/6. The reference has no seed spread.
    values = {1: (0.6, 0.7, 0.8), 2: (0.5, 0.5, 0.8), 3: (0.6, 0.6, 0.6)}
    runs = []
    for fold in (1, 2):
        for seed, v in enumerate(values[fold]):
            runs += [hand_run("a", fold, seed, balanced_accuracy=v),
                     hand_run("none", fold, seed, balanced_accuracy=0.6)]
    result = compare_strategies(runs, CLASSES, bootstrap=0)
    spread = result["seed_spread"]["by_strategy"]
    assert spread["a"]["balanced_accuracy"]["sd"] == pytest.approx(math.sqrt(0.02))
    assert spread["a"]["balanced_accuracy"]["seed_diff"] == pytest.approx(1 / 6)
    assert spread["none"]["balanced_accuracy"]["sd"] == 0.0
    assert (spread["a"]["balanced_accuracy"]["folds"], spread["a"]["balanced_accuracy"]["runs"]
            ) == (2, 6)
    row = row_of(result, "balanced_accuracy")
    # 6 paired runs: sqrt((.02 + 0) / 6); mean difference (.1 + .0) / 2 = .05 < 2 × .0577.
    assert row["seed_noise"] == pytest.approx(math.sqrt(0.02 / 6))
    assert row["mean_diff"] == pytest.approx(0.05) and row["within_seed_noise"] is True
    assert ("balanced_accuracy", "balanced accuracy") in result["seed_spread"]["figures"]
    assert result["seed_spread"]["figures"][-1] == ("sensitivity:covid19",
                                                    "covid19 sensitivity")
    # One seed per fold: no spread, nothing to set a difference against.
    one = compare_strategies([r for r in runs if r.seed == 0], CLASSES, bootstrap=0)
    assert one["seed_spread"]["by_strategy"]["a"]["balanced_accuracy"]["sd"] is None
    assert row_of(one, "balanced_accuracy")["within_seed_noise"] is None


def test_mcnemar_rows_are_never_a_strategy_verdict(runs):
    from harness.analysis.significance import network_verdict

    row = {"diff": 0.1, "testable": True, "p_adjusted": 0.01, "strategy": "phased",
           "reference": "none", "only_strategy_right": 9, "only_reference_right": 0,
           "min_p": 0.004}
    kind, sentence = network_verdict(row, 0.05, "covid19")
    assert kind == "networks-differ" and kind not in ("better", "worse")
    assert sentence.startswith("these two networks differ on this test set: more covid19 "
                               "decisions right with phased's network")
    assert network_verdict({**row, "p_adjusted": 0.2}, 0.05, "covid19")[0] == "flat"
    assert network_verdict({**row, "testable": False}, 0.05, "covid19")[0] == "untested"
    result = compare_strategies(runs, CLASSES, bootstrap=0)
    assert {m["verdict"] for m in result["mcnemar"]}.isdisjoint({"better", "worse"})
    assert result["family"]["size"] == 0 and result["mcnemar_family"]["rows"] == 2
