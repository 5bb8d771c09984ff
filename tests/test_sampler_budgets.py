"""Every registered sampler keeps its strategy under every budget: plans only, no training.

For each sampler × ``budget: natural | equal`` × awkward budgets (one epoch exactly, not a
whole number of epochs, one image per phase, more than one epoch plus a bit) the budgeted
plan must keep what the natural plan says: the same stages in the same order (frozen parts,
weighted draws, selectable), one classifier re-draw per re-drawing stage, at least one image
in every stage, no epoch larger than the strategy's own, and exactly the budget seen.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from harness.config.suite import Training
from harness.plugin.budget import BudgetError
from harness.plugin.registry import build_registry
from harness.runs.runner import selection_evaluations
from harness.testing import plan_with

CLASSES = ["normal", "pneumonia", "covid19"]
LABELS = np.random.default_rng(5).permutation([0] * 97 + [1] * 41 + [2] * 7)
REGISTRY = build_registry()
SAMPLERS = REGISTRY.names("samplers")


def stage(phase) -> tuple:
    """What a phase trains and how: the parts a budget must never change."""
    return (phase.head_only, phase.classifier_only, phase.selectable,
            phase.sample_weights is not None, phase.balanced_batches)


def stages(plan) -> list[tuple]:
    """The plan's stages in order (consecutive phases of one kind count once)."""
    out: list[tuple] = []
    for phase in plan.phases:
        if not out or out[-1] != stage(phase):
            out.append(stage(phase))
    return out


def resets(plan) -> int:
    return sum(p.reset_classifier for p in plan.phases)


def plan(name, budget=None, epochs_per_phase=1):
    return plan_with(REGISTRY.get("samplers", name), LABELS, {}, classes=CLASSES,
                     budget=budget, epochs_per_phase=epochs_per_phase, seed=3)


def awkward_budgets(natural) -> dict[str, int]:
    per_epoch = natural.budget(1)
    return {"one epoch": per_epoch, "one epoch and one image": per_epoch + 1,
            "not whole epochs": 3 * per_epoch - 7, "one image per phase": len(natural.phases),
            "a little": len(natural.phases) + 2, "many epochs": 11 * per_epoch + 5}


def check_invariants(name, natural, budgeted, budget) -> None:
    assert budgeted.budget(1) == budget, name
    assert budgeted.budget(99) == budget, f"{name}: every phase needs explicit epochs"
    for phase in budgeted.phases:
        assert phase.epochs and phase.epochs >= 1
        assert 1 <= phase.images_per_epoch() <= max(p.images_per_epoch()
                                                     for p in natural.phases)
        assert set(phase.indices) <= {i for p in natural.phases for i in p.indices}
    assert stages(budgeted) == stages(natural), f"{name}: a budget changed the strategy"
    assert resets(budgeted) == resets(natural), f"{name}: classifier re-drawn " \
        f"{resets(budgeted)} times, the strategy does it {resets(natural)} times"
    for i, phase in enumerate(budgeted.phases):
        if phase.reset_classifier:  # only where its stage begins
            assert i == 0 or stage(budgeted.phases[i - 1]) != stage(phase), name
    assert budgeted.selectable_epochs(1) >= (1 if natural.selectable_epochs(1) else 0)
    for weights in ("class_weights", "loss", "loss_options"):
        assert getattr(budgeted, weights) == getattr(natural, weights)


@pytest.mark.parametrize("name", SAMPLERS)
def test_every_sampler_keeps_its_strategy_under_awkward_budgets(name):
    natural = plan(name)
    for what, budget in awkward_budgets(natural).items():
        budgeted = plan(name, budget=budget)
        try:
            check_invariants(name, natural, budgeted, budget)
        except AssertionError as exc:
            raise AssertionError(f"{name}, budget {budget} ({what}): {exc}") from exc


@pytest.mark.parametrize("name", SAMPLERS)
def test_a_budget_below_one_image_per_phase_is_refused(name):
    natural = plan(name)
    if len(natural.phases) == 1:
        pytest.skip("one phase: any budget >= 1 fits")
    with pytest.raises(BudgetError, match="one image"):
        plan(name, budget=len(natural.phases) - 1)


@pytest.mark.parametrize("name", SAMPLERS)
def test_the_natural_budget_keeps_the_suites_epochs(name):
    for epochs in (1, 3):
        natural = plan(name, epochs_per_phase=epochs)
        assert all(p.epochs is None for p in natural.phases)
        assert natural.budget(epochs) == epochs * natural.budget(1)
        assert resets(natural) <= 1


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("budget_rule", ["equal", "natural"])
def test_selection_is_scored_on_selectable_epochs_only(name, budget_rule):
    """Planning never asks for more scores than the run has selectable epochs."""
    natural = plan(name)
    for budget in [None, *awkward_budgets(natural).values()]:
        p = plan(name, budget=budget)
        for asked in (None, 1, 4, 10_000):
            run = SimpleNamespace(training=Training(epochs_per_phase=2, select_evaluations=asked),
                                  plan_rules=SimpleNamespace(budget=budget_rule))
            n = selection_evaluations(run, p, len(LABELS))
            if asked is None and budget_rule == "natural":
                assert n is None
                continue
            assert 1 <= n <= p.selectable_epochs(2)
            if asked is None:  # equal: one score per pass over the training images
                assert n == min(-(-p.budget(2) // len(LABELS)), p.selectable_epochs(2))


def test_crt_redraws_the_classifier_once_and_selects_in_its_classifier_stage():
    """cRT (Kang et al. 2020): stage 1 all weights on natural data, not selectable; stage 2
    one fresh classifier trained alone on class-balanced draws; its share of the budget."""
    natural = plan("two-stage")
    for budget in awkward_budgets(natural).values():
        p = plan("two-stage", budget=budget)
        first, second = ([q for q in p.phases if not q.classifier_only],
                         [q for q in p.phases if q.classifier_only])
        assert first and second and p.phases == first + second
        assert not any(q.selectable for q in first) and all(q.selectable for q in second)
        assert [q.reset_classifier for q in second] == [True] + [False] * (len(second) - 1)
        assert all(q.sample_weights is None for q in first)
        assert all(q.sample_weights is not None for q in second)
        head = sum(q.images_per_epoch() * q.epochs for q in second)
        draws = natural.phases[1].images_per_epoch()  # head_fraction 0.1 of the images seen
        assert abs(head / budget - 0.1) < 0.01 or budget < 20
        assert abs(head - budget * draws / natural.budget(1)) <= 1
