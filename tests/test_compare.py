"""The strategy comparison, checked against values computed by hand on a small fixture."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from scipy import stats

from harness.analysis.compare import compare_strategies
from harness.analysis.figures import comparison_figures
from harness.analysis.intervals import summarise
from harness.analysis.significance import direction, mcnemar, paired_test
from harness.analysis.metrics import Predictions, compute_metrics

CLASSES = ["normal", "pneumonia", "covid19"]


@dataclass
class Run:
    sampler: str
    fold: int
    seed: int
    metrics: dict
    predictions: Predictions
    budget: int | None = None


def make_run(sampler, fold, true, pred, uids=None, budget=None):
    true, pred = np.asarray(true), np.asarray(pred)
    uids = uids or [f"f{fold}-{i}" for i in range(len(true))]
    preds = Predictions(CLASSES, uids, true, pred, np.eye(3)[pred] * 0.8 + 0.1 / 1.5)
    return Run(sampler, fold, 0, compute_metrics(preds, bootstrap=0), preds, budget)


#           images:   0  1  2  3  4  5  6  7  8  9
TRUE = {1: [0, 0, 0, 0, 1, 1, 1, 2, 2, 2],
        2: [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]}
NONE = {1: [0, 0, 0, 1, 1, 0, 0, 0, 2, 0],      # covid19 found 1 of 3 in fold 1
        2: [0, 0, 1, 1, 1, 0, 0, 2, 0, 0]}      # 1 of 3 in fold 2
PHASED = {1: [0, 0, 2, 1, 1, 1, 0, 2, 2, 2],    # 3 of 3, one false covid19
          2: [0, 0, 0, 1, 1, 1, 1, 2, 2, 0]}    # 2 of 3


@pytest.fixture
def runs():
    out = [make_run("none", f, TRUE[f], NONE[f], budget=200) for f in (1, 2)]
    # phased predictions listed in reverse: McNemar must match images by uid, not position
    for f in (1, 2):
        uids = [f"f{f}-{i}" for i in range(10)][::-1]
        out.append(make_run("phased", f, TRUE[f][::-1], PHASED[f][::-1], uids, budget=200))
    return out


def test_table_is_mean_sd_and_t_interval_over_folds(runs):
    result = compare_strategies(runs, CLASSES)
    assert result["strategies"] == ["none", "phased"]
    cell = result["table"]["phased"]["sensitivity:covid19"]
    assert cell["n"] == 2
    assert cell["mean"] == pytest.approx((3 / 3 + 2 / 3) / 2)
    assert cell["sd"] == pytest.approx(np.std([1, 2 / 3], ddof=1))
    lo, hi = stats.t.interval(0.95, 1, loc=5 / 6, scale=cell["sd"] / math.sqrt(2))
    assert cell["ci"] == [pytest.approx(max(lo, 0)), pytest.approx(min(hi, 1))]
    assert result["table"]["none"]["sensitivity:covid19"]["mean"] == pytest.approx(1 / 3)
    assert result["table"]["none"]["sensitivity:covid19"]["sd"] == 0
    # precision of phased's covid19 in fold 1: 3 right of 4 called covid19
    assert result["table"]["phased"]["precision:covid19"]["mean"] == pytest.approx((3 / 4 + 1) / 2)
    assert result["budget"] == {"none": 200, "phased": 200}
    assert result["covid_class"] == "covid19"
    assert result["tradeoff"]["phased"][0] == {"fold": 1, "seed": 0, "sensitivity": 1.0,
                                               "false_positives": 1}


def test_paired_rows_match_scipy(runs):
    result = compare_strategies(runs, CLASSES)
    row = next(p for p in result["paired"] if p["strategy"] == "phased"
               and p["reference"] == "none" and p["metric"] == "balanced_accuracy")
    a = [r.metrics["balanced_accuracy"] for r in runs if r.sampler == "phased"]
    b = [r.metrics["balanced_accuracy"] for r in runs if r.sampler == "none"]
    assert row["n_pairs"] == 2
    assert row["mean_diff"] == pytest.approx(np.mean(np.subtract(a, b)))
    assert row["t_p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert row["wilcoxon_p"] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert row["direction"].startswith("higher with phased")
    # "none" against "phased" is the mirror image
    mirror = next(p for p in result["paired"] if p["strategy"] == "none"
                  and p["reference"] == "phased" and p["metric"] == "balanced_accuracy")
    assert mirror["mean_diff"] == pytest.approx(-row["mean_diff"])


def test_mcnemar_counts_on_pooled_predictions(runs):
    result = compare_strategies(runs, CLASSES)
    assert len(result["mcnemar"]) == 1       # phased vs none, not again the other way round
    m = result["mcnemar"][0]
    # by hand, image by image. fold 1: both right 0, 1, 4, 8; only phased 5, 7, 9; only
    # none 2; both wrong 3, 6. fold 2: both right 0, 1, 3, 4, 7; only phased 2, 5, 6, 8;
    # only none -; both wrong 9.
    assert (m["strategy"], m["reference"], m["folds"], m["n"]) == ("phased", "none", 2, 20)
    assert m["only_strategy_right"] == 7 and m["only_reference_right"] == 1
    assert m["both_right"] == 9 and m["both_wrong"] == 3
    assert m["p_exact"] == pytest.approx(stats.binomtest(7, 8, 0.5).pvalue)
    assert m["chi2"] == pytest.approx((abs(7 - 1) - 1) ** 2 / 8)
    assert m["p_chi2"] == pytest.approx(stats.chi2.sf(25 / 8, 1))
    assert m["direction"] == "more images right with phased (not significant at 0.05)"


def test_mcnemar_and_paired_edge_cases():
    same = np.array([True, False, True])
    m = mcnemar(same, same)
    assert m["only_strategy_right"] == m["only_reference_right"] == 0 and m["p_exact"] == 1.0
    m = mcnemar(np.ones(30, bool), np.zeros(30, bool))
    assert m["p_exact"] == pytest.approx(2 * 0.5 ** 30)
    t = paired_test([0.5, 0.6], [0.5, 0.6])
    assert t["mean_diff"] == 0 and t["t_p"] is None and t["wilcoxon_p"] is None
    assert paired_test([0.7], [0.5])["t_p"] is None       # one pair: no t-test
    assert summarise([0.4])["sd"] is None and summarise([])["mean"] is None
    assert summarise([0.9, 1.0, 1.0])["ci"][1] == 1.0     # clipped to the figure's range


def test_direction_is_plain():
    assert direction(0.05, 0.01, "phased", "none") == "higher with phased (significant at 0.05)"
    assert direction(-0.05, 0.2, "phased", "none") == "higher with none (not significant at 0.05)"
    assert direction(0.0, None, "phased", "none") == "no difference"


def test_figures_have_curves_per_class_and_tradeoff(runs):
    figs = comparison_figures(runs, CLASSES)
    assert set(figs) == {"curves_normal", "curves_pneumonia", "curves_covid19", "tradeoff"}
    roc, pr = figs["curves_covid19"].axes
    assert len(roc.get_lines()) == 3    # two strategies and the chance diagonal
    assert [t.get_text() for t in pr.get_legend().get_texts()] == ["none", "phased"]
    legend = [t.get_text() for t in figs["tradeoff"].axes[0].get_legend().get_texts()]
    assert legend == ["none: 33.3% at 0.0 FP", "phased: 83.3% at 0.5 FP"]
