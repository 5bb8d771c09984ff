"""Does the comparison flag what it should, and only that? Simulated runs, no training.

The simulated suites are those of ``docs/simulations/comparison_error_rates.py`` (its model
and the measured rates: ``docs/statistics.md``): 5 folds × 3 seeds on the same folds (the
harness's design); per fold a test set of patients with two images each; per run,
predictions drawn from a noisy classifier whose skill differs from fold to fold (the fold
effect all runs share) and, with ``noise``, from network to network (seed-to-seed training
noise: a skill offset and a class bias fixed for the run).
"""

from __future__ import annotations

import gc
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.analysis.compare import compare_strategies

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "simulations" / "comparison_error_rates.py"
_spec = importlib.util.spec_from_file_location("comparison_error_rates", SCRIPT)
sim = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = sim      # dataclasses look their module up there
_spec.loader.exec_module(sim)
simulate, CLASSES, ALPHA = sim.simulate, sim.CLASSES, sim.ALPHA


@pytest.fixture(autouse=True)
def _cheap_gc():
    """statsmodels' multipletests calls gc.collect(); frozen objects make that cheap."""
    gc.freeze()
    yield
    gc.unfreeze()


def flagged(result: dict) -> list[dict]:
    """Strategy verdicts (the McNemar rows are never one: ``network_flags``)."""
    return [r for r in result["paired"] if not r["mirror"] and r["verdict"] in ("better", "worse")]


def network_flags(result: dict) -> list[dict]:
    return [m for m in result["mcnemar"] if m["verdict"] == "networks-differ"]


def test_identical_strategies_are_flagged_in_at_most_about_alpha_of_suites():
    """Per figure (the default) and for the comparison as a whole (``family: all``), with
    and without seed-to-seed training noise; McNemar, which sees two networks and not two
    strategies, flags identical strategies far more often once networks differ."""
    rates = {noise: sim.null_suite_rates(40, noise, seed=7) for noise in (0.0, 0.3)}
    for r in rates.values():
        # Holm keeps the chance of any false flag per family at most alpha; 40 suites at
        # 5 % exceed 6 flagged suites with probability < 2 %.
        assert r["figure"] <= 6 / 40 and r["all"] <= 6 / 40, r
        # A null difference lies within twice its seed noise about 95 % of the time.
        assert 0.88 <= r["within_noise"] <= 0.99, r
    # Per figure, α does not hold for the page: 12 families flag some identical pair in
    # more suites than one family does.
    assert rates[0.0]["page"] > rates[0.0]["all"], rates[0.0]
    # Without training noise McNemar holds its α; with it (seed sd of balanced accuracy
    # about 9 points) most null suites get a McNemar row that says the networks differ.
    assert rates[0.0]["mcnemar"] <= 6 / 40, rates[0.0]
    assert rates[0.3]["mcnemar"] >= 0.5 and rates[0.3]["mcnemar_rows"] >= 0.1, rates[0.3]
    assert rates[0.3]["seed_sd_points"] > rates[0.0]["seed_sd_points"] + 2


def test_a_much_better_strategy_is_flagged_with_5_folds_and_3_seeds():
    rng = np.random.default_rng(7)
    result = compare_strategies(simulate(rng, {"none": 0.3, "phased": 2.5}), CLASSES,
                                alpha=ALPHA, bootstrap=0)
    assert result["design"]["shared_partition"] and result["design"]["unit"] == "fold"
    rows = {r["metric"]: r for r in result["paired"] if r["strategy"] == "phased"}
    for key in ("balanced_accuracy", "macro_f1", "mcc", "sensitivity:covid19"):
        assert rows[key]["verdict"] == "better", rows[key]
        assert rows[key]["ci"][0] > 0
    assert not [r for r in flagged(result) if r["verdict"] == "worse"]
    assert network_flags(result)
    assert {m["verdict"] for m in result["mcnemar"]}.isdisjoint({"better", "worse"})


def test_without_correction_identical_strategies_would_be_flagged_far_more_often():
    """The same simulation, read without correction: the family is what keeps flags rare."""
    rng = np.random.default_rng(11)
    raw = 0
    for _ in range(20):
        result = compare_strategies(simulate(rng, {"none": 1.2, "phased": 1.2}), CLASSES,
                                    alpha=ALPHA, bootstrap=0)
        raw += any(r["p"] is not None and r["p"] < ALPHA and r["testable"]
                   for r in result["paired"])
    assert raw >= 4, raw


def test_a_much_better_strategy_is_still_flagged_among_twelve():
    """The sampling suite's design: 12 strategies, 5 folds × 3 seeds on the same folds, two
    references. One strategy is much better (skill 2.5 against 1.2: about +27 points of
    balanced accuracy); the other ten equal ``none``. Per figure, each family holds the 21
    t-tests of that figure (11 strategies against ``none``, 10 more against ``phased``);
    ``family: all`` puts all 252 t-tests in one. The 315 McNemar rows are a family of their
    own either way."""
    skills = {"none": 1.2, "phased": 2.5} | {f"same{i}": 1.2 for i in range(10)}
    runs = simulate(np.random.default_rng(5), skills)
    by_figure = compare_strategies(runs, CLASSES, alpha=ALPHA, bootstrap=0)
    together = compare_strategies(runs, CLASSES, alpha=ALPHA, bootstrap=0, family="all")

    fam = by_figure["family"]
    assert fam["mode"] == "figure" and fam["size"] == 252
    sizes = {f["name"]: f["size"] for f in fam["families"]}
    assert len(sizes) == 12 and set(sizes.values()) == {21}   # no AUROC without scores
    assert by_figure["mcnemar_family"]["rows"] == 315          # 21 pairs × 15 runs
    assert [(f["name"], f["size"]) for f in together["family"]["families"]] == [("all", 252)]
    assert together["mcnemar_family"] == by_figure["mcnemar_family"]
    assert "12 families" in fam["text"] and "21 tests each" in fam["text"]

    def against_none(result, strategy):
        return {r["metric"]: r for r in result["paired"]
                if r["strategy"] == strategy and r["reference"] == "none"}

    better, better_all = against_none(by_figure, "phased"), against_none(together, "phased")
    for key in ("balanced_accuracy", "macro_f1", "mcc"):
        assert better[key]["verdict"] == "better", better[key]
        assert better[key]["ci"][0] > 0 and better[key]["family_size"] == 21
        assert better[key]["within_seed_noise"] is False
    assert better["balanced_accuracy"]["mean_diff"] == pytest.approx(0.267, abs=0.005)
    assert better["balanced_accuracy"]["p"] < 5e-4
    # The same data in one family of 252: balanced accuracy is no longer flagged (adjusted
    # p 0.065); macro F1 and MCC still are.
    assert better_all["balanced_accuracy"]["verdict"] == "flat"
    assert better_all["balanced_accuracy"]["p_adjusted"] == pytest.approx(0.065, abs=0.001)
    assert better_all["macro_f1"]["verdict"] == better_all["mcc"]["verdict"] == "better"
    n_figure = sum(r["verdict"] == "better" for r in better.values())
    n_all = sum(r["verdict"] == "better" for r in better_all.values())
    assert (n_figure, n_all) == (9, 6)
    # A test's adjusted p in the larger family is never smaller (Holm is monotone).
    for a, b in zip(by_figure["paired"], together["paired"]):
        if a["p_adjusted"] is not None:
            assert b["p_adjusted"] >= a["p_adjusted"] - 1e-12
    assert len(flagged(together)) < len(flagged(by_figure))
    # No strategy identical to none is flagged against it on any figure.
    for i in range(10):
        rows = against_none(by_figure, f"same{i}")
        assert rows and not [r for r in rows.values() if r["verdict"] in ("better", "worse")]
