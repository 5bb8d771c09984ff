"""The strategies the phased sampler is compared against, each as published.

A strategy changes what is sampled (resampling, weighted draws, phases), how the loss is
weighted (class weights, focal loss), or both; the ``Plan`` says which, so every engine
applies it the same way. The budget rule is the one in ``common.py``: without ``budget``
each strategy has its natural budget, with it every plan sees exactly ``budget`` images.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from harness import Option, Phase, Plan, SamplerSpec, hookimpl

from .common import (
    SamplerOptionError,
    check_known,
    class_counts,
    class_names,
    describe_counts,
    finish,
    number_in,
    per_image,
    positive_int,
)

BUDGET = Option("budget", "images seen in the run; epochs (and draws) are set to meet it")
EPOCHS = Option("epochs", "epochs per phase (default: the suite's epochs_per_phase)")


def _setup(name: str, labels: np.ndarray, options: Mapping[str, Any], known: tuple[str, ...]):
    """Check options; return labels as int64, class names and class counts."""
    check_known(name, options, known + ("epochs",))
    names = class_names(name, labels, options)
    labels = np.asarray(labels, dtype=np.int64)
    counts = class_counts(labels, len(names))
    if counts.sum() == 0:
        raise SamplerOptionError(f"sampler {name!r}: the training set is empty")
    return labels, names, counts


def _option(options: Mapping[str, Any], key: str, default: Any) -> Any:
    """An option's value; unset or null means the default."""
    value = options.get(key)
    return default if value is None else value


def _all(labels: np.ndarray) -> list[int]:
    return list(range(len(labels)))


def _plan(name: str, phases: list[Phase], options, rng, what: str, **fields) -> Plan:
    phases, budget_note = finish(phases, options, name, rng)
    return Plan(phases=phases, notes=f"{what}; {budget_note}", **fields)


def _balanced_weights(labels: np.ndarray, counts: np.ndarray) -> list[float]:
    """Per-image weights that give every present class the same probability."""
    return per_image(labels, 1.0 / np.maximum(counts, 1))


def plan_none(labels, rng, options):
    labels, names, counts = _setup("none", labels, options, ())
    return _plan("none", [Phase(indices=_all(labels))], options, rng,
                 f"all training images, natural imbalance ({describe_counts(counts, names)})")


def plan_undersample(labels, rng, options):
    labels, names, counts = _setup("undersample", labels, options, ())
    smallest = int(counts[counts > 0].min())
    keep = [rng.choice(np.flatnonzero(labels == c), smallest, replace=False)
            for c in range(len(names)) if counts[c]]
    indices = sorted(int(i) for i in np.concatenate(keep))
    return _plan("undersample", [Phase(indices=indices)], options, rng,
                 f"random undersampling once: {smallest} images of every class")


def plan_oversample(labels, rng, options):
    labels, names, counts = _setup("oversample", labels, options, ())
    largest = int(counts.max())
    parts = []
    for c in range(len(names)):
        own = np.flatnonzero(labels == c)
        if len(own):
            parts += [own, rng.choice(own, largest - len(own), replace=True)]
    indices = sorted(int(i) for i in np.concatenate(parts))
    return _plan("oversample", [Phase(indices=indices)], options, rng,
                 f"random oversampling once, with replacement: {largest} images of every "
                 "class (all originals plus repeats)")


def class_weights(counts: np.ndarray, beta: float | None) -> list[float]:
    """Inverse frequency (or Cui et al.'s inverse effective number), mean weight 1 per image.

    Normalised so that the average weight over the training images is 1: the loss keeps the
    scale of the unweighted baseline, so the learning rate means the same. Absent classes
    get weight 1 (they never occur as targets).
    """
    present = counts > 0
    raw = np.ones(len(counts))
    if beta is None:
        raw[present] = 1.0 / counts[present]
    else:
        raw[present] = (1.0 - beta) / (1.0 - beta ** counts[present])
    raw[present] *= counts.sum() / float((raw[present] * counts[present]).sum())
    return [float(w) for w in raw]


def plan_class_weighted(labels, rng, options):
    labels, names, counts = _setup("class-weighted", labels, options, ("beta",))
    beta = options.get("beta")
    if beta is not None:
        beta = number_in("class-weighted", "beta", beta, 0.0, 1.0)
    weights = class_weights(counts, beta)
    kind = ("inverse class frequency" if beta is None
            else f"inverse effective number of samples, beta={beta:g}")
    shown = ", ".join(f"{n} {w:.3g}" for n, w in zip(names, weights))
    return _plan("class-weighted", [Phase(indices=_all(labels))], options, rng,
                 f"all training images, loss weighted by {kind} ({shown})",
                 class_weights=weights)


def plan_balanced_batch(labels, rng, options):
    labels, _, counts = _setup("balanced-batch", labels, options, ())
    phase = Phase(indices=_all(labels), sample_weights=_balanced_weights(labels, counts),
                  draws=len(labels))
    return _plan("balanced-batch", [phase], options, rng,
                 f"every epoch {len(labels)} fresh draws with replacement, each class "
                 "equally likely")


def plan_sqrt(labels, rng, options):
    labels, names, counts = _setup("sqrt", labels, options, ())
    weights = per_image(labels, 1.0 / np.sqrt(np.maximum(counts, 1)))
    share = np.sqrt(counts) / np.sqrt(counts).sum()
    shown = ", ".join(f"{n} {s:.1%}" for n, s in zip(names, share))
    return _plan("sqrt", [Phase(indices=_all(labels), sample_weights=weights,
                                draws=len(labels))], options, rng,
                 f"every epoch {len(labels)} fresh draws, class probability proportional "
                 f"to sqrt(class size) ({shown})")


def progressive_probabilities(counts: np.ndarray, t: float) -> np.ndarray:
    """Class probabilities at progress ``t``: (1 - t) instance-balanced + t class-balanced."""
    present = counts > 0
    instance = counts / counts.sum()
    balanced = present / present.sum()
    return (1.0 - t) * instance + t * balanced


def plan_progressive(labels, rng, options):
    labels, _, counts = _setup("progressive", labels, options, ("phases",))
    k = positive_int("progressive", "phases", _option(options, "phases", 5))
    if k < 2:
        raise SamplerOptionError("sampler 'progressive': option phases: expected an integer "
                                 f">= 2 (start and end of the schedule), got {k}")
    phases = []
    for i in range(k):
        probs = progressive_probabilities(counts, i / (k - 1))
        weights = per_image(labels, probs / np.maximum(counts, 1))
        phases.append(Phase(indices=_all(labels), sample_weights=weights, draws=len(labels)))
    return _plan("progressive", phases, options, rng,
                 f"{k} phases of {len(labels)} draws, class probabilities moving linearly "
                 "from instance-balanced (phase 1) to class-balanced (last phase)")


def plan_two_stage(labels, rng, options):
    labels, _, counts = _setup("two-stage", labels, options, ("head_fraction",))
    fraction = number_in("two-stage", "head_fraction", _option(options, "head_fraction", 0.1),
                         0.0, 1.0)
    if fraction <= 0.0:
        raise SamplerOptionError("sampler 'two-stage': option head_fraction: expected a "
                                 f"number in (0, 1), got {fraction!r}")
    head_draws = max(1, round(len(labels) * fraction / (1.0 - fraction)))
    phases = [
        Phase(indices=_all(labels)),
        Phase(indices=_all(labels), sample_weights=_balanced_weights(labels, counts),
              draws=head_draws, head_only=True),
    ]
    return _plan("two-stage", phases, options, rng,
                 "stage 1: all training images, natural imbalance; stage 2: backbone "
                 f"frozen, classifier re-trained on class-balanced draws ({fraction:.0%} of "
                 "the images seen)")


def plan_focal(labels, rng, options):
    labels, _, _ = _setup("focal", labels, options, ("gamma",))
    gamma = number_in("focal", "gamma", _option(options, "gamma", 2.0), 0.0, 100.0)
    return _plan("focal", [Phase(indices=_all(labels))], options, rng,
                 f"all training images, natural imbalance, focal loss gamma={gamma:g}",
                 loss="focal", loss_options={"gamma": gamma})


KANG = ("Kang et al. 2020, Decoupling Representation and Classifier for Long-Tailed "
        "Recognition, ICLR")
BUDA = ("Buda, Maki & Mazurowski 2018, A systematic study of the class imbalance problem in "
        "convolutional neural networks, Neural Networks 106:249-259")

SAMPLERS = (
    SamplerSpec("none", "all training images, natural imbalance (the baseline)", plan_none,
                (EPOCHS, BUDGET), "empirical risk minimisation on the natural distribution"),
    SamplerSpec("undersample", "random undersampling of every class to the smallest, once",
                plan_undersample, (EPOCHS, BUDGET), BUDA),
    SamplerSpec("oversample", "random oversampling with replacement of every class to the "
                "largest", plan_oversample, (EPOCHS, BUDGET), BUDA),
    SamplerSpec("class-weighted", "all images, loss weighted by inverse class frequency "
                "(or inverse effective number with beta)", plan_class_weighted,
                (Option("beta", "effective-number beta in [0, 1), e.g. 0.999; "
                                "unset: inverse frequency"), EPOCHS, BUDGET),
                "Cui et al. 2019, Class-Balanced Loss Based on Effective Number of Samples, "
                "CVPR"),
    SamplerSpec("balanced-batch", "every epoch a fresh class-balanced weighted draw",
                plan_balanced_batch, (EPOCHS, BUDGET),
                KANG + " (class-balanced sampling)"),
    SamplerSpec("sqrt", "sampling probability proportional to sqrt of class frequency",
                plan_sqrt, (EPOCHS, BUDGET),
                "Mahajan et al. 2018, Exploring the Limits of Weakly Supervised Pretraining, "
                "ECCV; " + KANG),
    SamplerSpec("progressive", "from instance-balanced to class-balanced sampling over "
                "phases", plan_progressive,
                (Option("phases", "number of phases of the schedule", 5), EPOCHS, BUDGET),
                KANG + " (progressively-balanced sampling)"),
    SamplerSpec("two-stage", "natural training, then classifier re-training on class-"
                "balanced draws (cRT)", plan_two_stage,
                (Option("head_fraction", "share of the images seen spent re-training the "
                                         "classifier", 0.1), EPOCHS, BUDGET),
                KANG + " (classifier re-training, cRT)"),
    SamplerSpec("focal", "focal loss on natural data", plan_focal,
                (Option("gamma", "focusing parameter", 2.0), EPOCHS, BUDGET),
                "Lin et al. 2017, Focal Loss for Dense Object Detection, ICCV"),
)


@hookimpl
def register_samplers(register):
    for spec in SAMPLERS:
        register(spec)
