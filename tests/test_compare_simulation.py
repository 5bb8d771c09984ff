"""Does the comparison flag what it should, and only that? Simulated runs, no training.

Each simulated suite has 5 folds × 3 seeds on the same folds (the harness's design): per
fold a test set of patients with two images each; per run, predictions drawn from a noisy
classifier whose skill differs from fold to fold (the fold effect both strategies share).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field

import numpy as np
import pytest

from harness.analysis.compare import compare_strategies
from harness.analysis.metrics import Predictions, compute_metrics

CLASSES = ["normal", "pneumonia", "covid19"]
ALPHA = 0.05


@dataclass
class Run:
    sampler: str
    fold: int
    seed: int
    metrics: dict
    predictions: Predictions
    budget: int | None = None
    n_train: int = 800
    n_test: int = 200
    patients: dict = field(default_factory=dict)
    exposure: dict = field(default_factory=dict)


def simulate(rng: np.random.Generator, skills: dict[str, float], folds: int = 5,
             seeds: int = 3, patients: int = 100) -> list[Run]:
    runs = []
    for fold in range(1, folds + 1):
        true = np.repeat(rng.choice(3, size=patients, p=[0.6, 0.3, 0.1]), 2)
        uids = [f"f{fold}-{i}" for i in range(true.size)]
        owner = {u: f"p{fold}-{i // 2}" for i, u in enumerate(uids)}
        fold_effect = rng.normal(0, 0.3)
        for seed in range(seeds):
            for sampler, skill in skills.items():
                logits = rng.normal(size=(true.size, 3))
                logits[np.arange(true.size), true] += skill + fold_effect
                proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
                preds = Predictions(CLASSES, uids, true, proba.argmax(axis=1), None)  # no AUROC: speed
                runs.append(Run(sampler, fold, seed, compute_metrics(preds, bootstrap=0),
                                preds, patients=owner))
    return runs


@pytest.fixture(autouse=True)
def _cheap_gc():
    """statsmodels' multipletests calls gc.collect(); frozen objects make that cheap."""
    gc.freeze()
    yield
    gc.unfreeze()


def flagged(result: dict) -> list[dict]:
    rows = [r for r in result["paired"] if not r["mirror"]] + result["mcnemar"]
    return [r for r in rows if r["verdict"] in ("better", "worse")]


def test_identical_strategies_are_flagged_in_at_most_about_alpha_of_suites():
    rng = np.random.default_rng(2024)
    hits = 0
    sizes = set()
    for _ in range(100):
        result = compare_strategies(simulate(rng, {"none": 1.2, "phased": 1.2}), CLASSES,
                                    alpha=ALPHA, bootstrap=0)
        sizes.add(result["family"]["size"])
        hits += bool(flagged(result))
    # Holm keeps the chance of any false flag per suite at most alpha; 100 suites at 5 %
    # exceed 10 flagged suites with probability < 3 %.
    assert hits <= 10, hits
    assert max(sizes) > 13          # per-figure tests and testable McNemar rows, one family


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
    assert any(m["verdict"] == "better" for m in result["mcnemar"])


def test_without_correction_identical_strategies_would_be_flagged_far_more_often():
    """The same simulation, read without correction: the family is what keeps flags rare."""
    rng = np.random.default_rng(11)
    raw = 0
    for _ in range(20):
        result = compare_strategies(simulate(rng, {"none": 1.2, "phased": 1.2}), CLASSES,
                                    alpha=ALPHA, bootstrap=0)
        raw += any(r["p"] is not None and r["p"] < ALPHA and r["testable"]
                   for r in result["paired"] + result["mcnemar"])
    assert raw >= 4, raw
