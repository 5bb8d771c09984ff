"""Every sampler's class proportions and budget on a known label vector, and phased sampling
against the paper's protocol (and the authors' published phase files when ../shared exists)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from harness_plugins.samplers import baseline, phased

from harness.errors import HarnessError
from harness.plugin.registry import build_registry
from harness.testing import plan_with

CLASSES = ["normal", "pneumonia", "covid19"]
NORMAL, PNEUMONIA, COVID = 0, 1, 2
ALL_SAMPLERS = ["phased", "none", "undersample", "oversample", "class-weighted",
                "class-balanced", "class-balanced-sampling", "balanced-batch", "sqrt",
                "progressive", "two-stage", "focal"]


@pytest.fixture(scope="module")
def registry():
    return build_registry(extra_plugins=[phased, baseline], entry_points=False)


@pytest.fixture(scope="module")
def labels():
    """600 normal, 300 pneumonia, 20 covid19, in a shuffled (but fixed) order."""
    values = np.array([NORMAL] * 600 + [PNEUMONIA] * 300 + [COVID] * 20)
    return np.random.default_rng(123).permutation(values)


def make(registry, name, labels, seed=0, classes=CLASSES, epochs_per_phase=1,
         split_phases=None, **options):
    """The plan as the runner asks for it: a ``budget`` option becomes the context's."""
    spec = registry.get("samplers", name)
    return plan_with(spec, labels, options, classes=classes, budget=options.get("budget"),
                     epochs_per_phase=epochs_per_phase, split_phases=split_phases, seed=seed)


def composition(labels, indices):
    counts = Counter(int(labels[i]) for i in indices)
    return [counts.get(c, 0) for c in range(len(CLASSES))]


def class_mass(labels, phase):
    """Probability of drawing each class in one weighted draw of ``phase``."""
    w = np.asarray(phase.sample_weights)
    cls = labels[np.asarray(phase.indices)]
    return np.array([w[cls == c].sum() for c in range(len(CLASSES))]) / w.sum()


# --- registry ---------------------------------------------------------------------------

def test_every_strategy_is_registered_with_a_description_and_a_source(registry):
    assert registry.names("samplers") == sorted(ALL_SAMPLERS)
    for name in ALL_SAMPLERS:
        spec = registry.get("samplers", name)
        assert spec.description and "\n" not in spec.description
        assert spec.source, name


# --- class proportions and natural budget, one test per strategy -----------------------

def test_none_uses_every_image_once_per_epoch(registry, labels):
    plan = make(registry, "none", labels)
    assert len(plan.phases) == 1
    assert sorted(plan.phases[0].indices) == list(range(920))
    assert plan.class_weights is None and plan.loss == "cross_entropy"
    assert plan.budget(10) == 9200


def test_undersample_keeps_the_smallest_count_of_every_class_once(registry, labels):
    plan = make(registry, "undersample", labels)
    (phase,) = plan.phases
    assert composition(labels, phase.indices) == [20, 20, 20]
    assert len(set(phase.indices)) == 60
    assert phase.sample_weights is None
    assert plan.budget(10) == 600


def test_oversample_repeats_every_class_up_to_the_largest(registry, labels):
    plan = make(registry, "oversample", labels)
    (phase,) = plan.phases
    assert composition(labels, phase.indices) == [600, 600, 600]
    assert set(phase.indices) == set(range(920))  # every original is kept
    uses = Counter(phase.indices)
    assert max(uses[i] for i in np.flatnonzero(labels == NORMAL)) == 1
    assert plan.budget(10) == 18000


def test_class_weighted_uses_inverse_frequency_with_mean_weight_one(registry, labels):
    plan = make(registry, "class-weighted", labels)
    assert sorted(plan.phases[0].indices) == list(range(920))
    assert plan.class_weights == pytest.approx([920 / 1800, 920 / 900, 920 / 60])
    assert plan.budget(10) == 9200


def test_class_balanced_uses_effective_numbers_cui_et_al(registry, labels):
    plan = make(registry, "class-balanced", labels)        # beta 0.999 by default
    raw = np.array([(1 - 0.999) / (1 - 0.999 ** n) for n in (600, 300, 20)])
    expected = raw * 920 / (raw * [600, 300, 20]).sum()
    assert plan.class_weights == pytest.approx(expected.tolist())
    assert np.dot(plan.class_weights, [600, 300, 20]) == pytest.approx(920)
    # effective numbers flatten the weights against inverse frequency
    inverse = make(registry, "class-weighted", labels).class_weights
    assert plan.class_weights[COVID] / plan.class_weights[NORMAL] < \
        inverse[COVID] / inverse[NORMAL]
    # beta = 0 weights every image equally
    assert make(registry, "class-balanced", labels, beta=0).class_weights == pytest.approx(
        [1, 1, 1])
    with pytest.raises(HarnessError, match="beta"):
        make(registry, "class-weighted", labels, beta=0.99)  # effective numbers: class-balanced


def test_class_balanced_sampling_draws_every_class_equally_often(registry, labels):
    plan = make(registry, "class-balanced-sampling", labels)
    (phase,) = plan.phases
    assert phase.draws == 920 and not phase.balanced_batches
    assert class_mass(labels, phase) == pytest.approx([1 / 3] * 3)
    assert plan.budget(10) == 9200


def test_balanced_batch_asks_for_equal_class_counts_in_every_batch(registry, labels):
    plan = make(registry, "balanced-batch", labels)
    (phase,) = plan.phases
    assert phase.balanced_batches and phase.draws == 920
    assert class_mass(labels, phase) == pytest.approx([1 / 3] * 3)
    assert plan.budget(10) == 9200


def test_sqrt_sampling_follows_the_square_root_of_class_size(registry, labels):
    plan = make(registry, "sqrt", labels)
    (phase,) = plan.phases
    root = np.sqrt([600, 300, 20])
    assert class_mass(labels, phase) == pytest.approx(root / root.sum())
    assert plan.budget(10) == 9200


def test_progressive_moves_from_instance_to_class_balanced(registry, labels):
    plan = make(registry, "progressive", labels, phases=3)
    assert len(plan.phases) == 3
    natural = np.array([600, 300, 20]) / 920
    assert class_mass(labels, plan.phases[0]) == pytest.approx(natural)
    assert class_mass(labels, plan.phases[1]) == pytest.approx((natural + 1 / 3) / 2)
    assert class_mass(labels, plan.phases[2]) == pytest.approx([1 / 3] * 3)
    assert plan.budget(10) == 3 * 9200


def test_two_stage_is_crt_a_fresh_classifier_trained_alone(registry, labels):
    plan = make(registry, "two-stage", labels)
    first, second = plan.phases
    assert sorted(first.indices) == list(range(920)) and first.sample_weights is None
    assert not (first.classifier_only or first.reset_classifier or first.head_only)
    assert second.classifier_only and second.reset_classifier and not second.head_only
    assert class_mass(labels, second) == pytest.approx([1 / 3] * 3)
    assert second.draws == round(920 * 0.1 / 0.9)  # 10 % of the images seen
    assert plan.budget(10) == 10 * (920 + 102)


def test_focal_keeps_natural_data_and_sets_gamma_and_alpha(registry, labels):
    plan = make(registry, "focal", labels)
    inverse = [920 / 1800, 920 / 900, 920 / 60]     # inverse frequency, mean 1 per image
    assert plan.loss == "focal"
    assert plan.loss_options["gamma"] == 2.0
    assert plan.loss_options["alpha"] == pytest.approx(inverse)
    assert sorted(plan.phases[0].indices) == list(range(920))
    assert make(registry, "focal", labels, gamma=0.5, alpha="none").loss_options == {
        "gamma": 0.5, "alpha": None}
    assert make(registry, "focal", labels, alpha=[0.25, 0.25, 1.0]).loss_options[
        "alpha"] == [0.25, 0.25, 1.0]
    with pytest.raises(HarnessError, match="one positive number per class"):
        make(registry, "focal", labels, alpha=[0.25, 0.75])
    assert plan.budget(10) == 9200


def test_phased_default_balances_every_phase_and_shows_every_image(registry, labels):
    plan = make(registry, "phased", labels)
    # default quota = the smallest class (20); phases = the fewest that show every normal once
    assert len(plan.phases) == 600 // 20
    covid = set(np.flatnonzero(labels == COVID).tolist())
    for phase in plan.phases:
        assert composition(labels, phase.indices) == [20, 20, 20]
        assert len(set(phase.indices)) == 60  # no image twice in a phase
        assert covid <= set(phase.indices)  # the smallest class is in every phase
    normals = [i for p in plan.phases for i in p.indices if labels[i] == NORMAL]
    assert sorted(normals) == sorted(np.flatnonzero(labels == NORMAL).tolist())  # disjoint
    assert plan.budget(10) == 30 * 60 * 10


def test_phased_wraps_around_only_after_a_class_is_exhausted(registry, labels):
    plan = make(registry, "phased", labels, phases=50)
    for cls, size in ((NORMAL, 600), (PNEUMONIA, 300)):
        uses = Counter()
        for n, phase in enumerate(plan.phases, start=1):
            uses.update(i for i in phase.indices if labels[i] == cls)
            counts = [uses[i] for i in np.flatnonzero(labels == cls)]
            assert max(counts) - min(counts) <= 1, (cls, n)  # no reuse before exhaustion
            assert sum(counts) == 20 * n
    assert "pneumonia" in plan.notes and "reused from a fresh permutation" in plan.notes


def test_phased_common_subset_is_in_every_phase(registry, labels):
    plan = make(registry, "phased", labels, quotas={"pneumonia": 30}, common={"pneumonia": 10},
                phases=5)
    sets = [{i for i in p.indices if labels[i] == PNEUMONIA} for p in plan.phases]
    shared = set.intersection(*sets)
    assert len(shared) == 10
    fresh = [s - shared for s in sets]
    assert all(len(f) == 20 for f in fresh)
    assert len(set.union(*fresh)) == 100  # fresh chunks are disjoint


def test_phased_epochs_option_sets_every_phase(registry, labels):
    plan = make(registry, "phased", labels, epochs=3, phases=4)
    assert [p.epochs for p in plan.phases] == [3] * 4
    assert plan.budget(100) == 4 * 60 * 3


# --- the paper's protocol -------------------------------------------------------------

PAPER = {"quotas": {"normal": 250, "pneumonia": 234, "covid19": "all"},
         "common": {"pneumonia": 34}}


def paper_labels(covid=149):
    """The training composition of the paper's folds: 2000 normal, 34 + 1600 pneumonia."""
    return np.array([NORMAL] * 2000 + [PNEUMONIA] * 1634 + [COVID] * covid)


def test_paper_quotas_give_633_images_per_phase_and_3783_distinct(registry):
    labels = paper_labels()
    plan = make(registry, "phased", labels, **PAPER)
    assert len(plan.phases) == 8
    assert [composition(labels, p.indices) for p in plan.phases] == [[250, 234, 149]] * 8
    assert len({i for p in plan.phases for i in p.indices}) == 3783
    in_every_phase = set.intersection(*(set(p.indices) for p in plan.phases))
    assert composition(labels, in_every_phase) == [0, 34, 149]
    assert plan.budget(100) == 8 * 633 * 100


def test_paper_fold3_takes_all_150_covid_images(registry):
    labels = paper_labels(covid=150)
    plan = make(registry, "phased", labels, **PAPER)
    assert [len(p.indices) for p in plan.phases] == [634] * 8
    # a numeric quota above the class size means all of it, as "all" does
    numeric = make(registry, "phased", labels, quotas={"normal": 250, "pneumonia": 234,
                                                       "covid19": 200}, common={"pneumonia": 34})
    assert [len(p.indices) for p in numeric.phases] == [634] * 8


def test_phased_matches_the_authors_published_phase_files():
    pd = pytest.importorskip("pandas")
    from conftest import SHARED

    root = SHARED / "paper" / "mr7495-splits"
    if not root.is_dir():
        pytest.skip("../shared/paper is not available")
    names = {"normal": NORMAL, "pneumonia": PNEUMONIA, "COVID-19": COVID}
    for fold in range(1, 6):
        files = [pd.read_csv(root / f"fold{fold}" / f"train{i}.csv") for i in range(1, 9)]
        union = pd.concat(files).drop_duplicates("filename")
        labels = np.sort(union["class"].map(names).to_numpy())
        spec = build_registry(extra_plugins=[phased], entry_points=False).get("samplers",
                                                                              "phased")
        plan = plan_with(spec, labels, PAPER, seed=fold)
        published = [[int((f["class"] == c).sum()) for c in names] for f in files]
        assert [composition(labels, p.indices) for p in plan.phases] == published, fold
        distinct = len({i for p in plan.phases for i in p.indices})
        assert distinct == len(union), fold


# --- equal budget and determinism -----------------------------------------------------

@pytest.mark.parametrize("name", ALL_SAMPLERS)
def test_a_budget_is_met_exactly_whatever_the_suite_epochs(registry, labels, name):
    for budget in (12345, 50, 5400):
        plan = make(registry, name, labels, budget=budget)
        assert plan.budget(1) == plan.budget(100) == budget, (name, budget)
        assert "budget" in plan.notes and str(budget) in plan.notes
        for phase in plan.phases:
            assert phase.epochs is not None and phase.epochs >= 1


def test_budget_keeps_the_strategy_proportions(registry, labels):
    plan = make(registry, "undersample", labels, budget=250)
    first, partial = plan.phases  # 4 whole epochs of 60 images, then 10 images
    assert first.epochs == 4 and composition(labels, first.indices) == [20, 20, 20]
    assert len(partial.indices) == 10 and set(partial.indices) <= set(first.indices)
    weighted = make(registry, "balanced-batch", labels, budget=920 * 3 + 7)
    assert [(p.epochs, p.draws) for p in weighted.phases] == [(3, 920), (1, 7)]
    assert class_mass(labels, weighted.phases[1]) == pytest.approx([1 / 3] * 3)


@pytest.mark.parametrize("name", ALL_SAMPLERS)
def test_plans_are_deterministic_from_the_seed(registry, labels, name):
    first = make(registry, name, labels, seed=7, budget=3000).to_json()
    assert make(registry, name, labels, seed=7, budget=3000).to_json() == first
    if name in ("phased", "undersample", "oversample"):
        assert make(registry, name, labels, seed=8, budget=3000).to_json() != first


def test_class_names_may_come_in_any_order(registry):
    labels = np.array([0] * 5 + [1] * 50 + [2] * 30)  # class 0 is covid19 here
    plan = make(registry, "phased", labels, classes=["covid19", "normal", "pneumonia"],
                quotas={"covid19": "all", "normal": 10}, phases=2)
    for phase in plan.phases:
        assert Counter(int(labels[i]) for i in phase.indices) == {0: 5, 1: 10, 2: 5}


# --- bad options ----------------------------------------------------------------------

@pytest.mark.parametrize("name, options, expected", [
    ("phased", {"quotas": {"covid": 10}},
     ["samplers.phased.quotas.covid: unknown class 'covid'", "Did you mean 'covid19'",
      "normal, pneumonia, covid19"]),
    ("focal", {"alpha": [0.25, 0.75]},
     ["samplers.focal.alpha: expected one positive number per class (3: normal"]),
    ("phased", {"quotas": {"normal": -5}}, ["samplers.phased.quotas.normal", "-5"]),
    ("phased", {"common": {"pneumonia": 30}, "quotas": {"pneumonia": 20}},
     ["common.pneumonia", "exceeds the quota"]),
    ("phased", {"common": {"covid19": 21}}, ["common.covid19", "only 20 covid19"]),
    ("phased", {"quotas": [250, 234]}, ["samplers.phased.quotas", "dictionary"]),
    ("phased", {"phase": 8}, ["samplers.phased.phase: unknown option", "Did you mean 'phases'"]),
    ("phased", {"phases": 0}, ["samplers.phased.phases", "greater than 0", "got 0"]),
    ("none", {"budget": 100, "epochs": 3}, ["'budget' and 'epochs'"]),
    ("none", {"budget": -1}, ["samplers.none.budget", "greater than 0"]),
    ("class-balanced", {"beta": 1.5}, ["samplers.class-balanced.beta", "less than 1"]),
    ("focal", {"gamma": -1}, ["samplers.focal.gamma", "greater than or equal to 0"]),
    ("progressive", {"phases": 1}, ["samplers.progressive.phases", "greater than or equal to 2"]),
    ("two-stage", {"head_fraction": 0}, ["samplers.two-stage.head_fraction", "greater than 0"]),
])
def test_bad_options_name_the_option_and_what_is_expected(registry, labels, name, options,
                                                         expected):
    with pytest.raises(HarnessError) as err:
        make(registry, name, labels, **options)
    for text in expected:
        assert text in str(err.value)


def test_called_outside_a_suite_the_plugin_still_checks_class_names(registry, labels):
    """``Options.of`` has no suite to check against: the plan itself names the class."""
    from harness import SamplerContext

    spec = registry.get("samplers", "phased")
    context = SamplerContext(classes=CLASSES, rng=np.random.default_rng(0))
    with pytest.raises(HarnessError, match="option quotas: unknown class 'covid' "
                                           r"\(did you mean 'covid19'\?\)"):
        spec.plan(labels, spec.options.of({"quotas": {"covid": 10}}), context)


def test_labels_beyond_the_class_list_are_rejected(registry):
    with pytest.raises(HarnessError, match="class index 3 .* only 3 classes"):
        make(registry, "none", np.array([0, 1, 3]))


# --- what the runner passes -------------------------------------------------------------

def test_every_sampler_takes_the_runner_context(registry, labels):
    split = [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9, 10]]
    for name in ALL_SAMPLERS:
        plan = make(registry, name, labels, epochs_per_phase=30, split_phases=split)
        assert "images seen" in plan.notes, name
    plan = make(registry, "none", labels, epochs_per_phase=30)
    assert "27600 images seen (920 per epoch x 30 epochs per phase)" in plan.notes


def test_phases_fixed_by_the_split_are_used_as_they_are(registry, labels):
    split = [[0, 1, 2, 3], [7, 8, 9], [3, 4]]
    plan = make(registry, "phased", labels, split_phases=split, quotas={"normal": 5})
    assert [p.indices for p in plan.phases] == [[0, 1, 2, 3], [7, 8, 9], [3, 4]]
    assert "3 phases fixed by the split" in plan.notes and "quotas not used" in plan.notes
    with pytest.raises(HarnessError, match="phase 2 fixed by the split .* outside"):
        make(registry, "phased", labels, split_phases=[[0], [920]])
