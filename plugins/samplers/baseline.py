"""The strategies the phased sampler is compared against, each as published.

A strategy changes what is sampled (resampling, weighted draws, phases), how the loss is
weighted (class weights, focal loss), or both; the ``Plan`` says which, so every engine
applies it the same way. The budget rule is ``harness.meet_budget``'s: without ``budget``
each strategy has its natural budget, with it every plan sees exactly ``budget`` images.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from harness import Phase, Plan, SamplerContext, SamplerOptions, SamplerSpec, hookimpl, meet_budget

from .common import SamplerOptionError, class_counts, class_names, describe_counts, per_image


class ClassWeightedOptions(SamplerOptions):
    beta: float | None = Field(None, ge=0.0, lt=1.0, description="effective-number beta in "
                               "[0, 1), e.g. 0.999; unset: inverse frequency")


class ProgressiveOptions(SamplerOptions):
    phases: int = Field(5, ge=2, description="number of phases of the schedule (start and "
                        "end included)")


class TwoStageOptions(SamplerOptions):
    head_fraction: float = Field(0.1, gt=0.0, lt=1.0, description="share of the images seen "
                                 "spent re-training the classifier")


class FocalOptions(SamplerOptions):
    gamma: float = Field(2.0, ge=0.0, le=100.0, description="focusing parameter")


def _setup(name: str, labels: np.ndarray, context: SamplerContext):
    """Return labels as int64, class names and class counts."""
    names = class_names(name, labels, context)
    labels = np.asarray(labels, dtype=np.int64)
    counts = class_counts(labels, len(names))
    if counts.sum() == 0:
        raise SamplerOptionError(f"sampler {name!r}: the training set is empty")
    return labels, names, counts


def _all(labels: np.ndarray) -> list[int]:
    return list(range(len(labels)))


def _plan(phases: list[Phase], options: SamplerOptions, context: SamplerContext, what: str,
          **fields) -> Plan:
    phases, budget_note = meet_budget(phases, context, options.epochs)
    return Plan(phases=phases, notes=f"{what}; {budget_note}", **fields)


def _balanced_weights(labels: np.ndarray, counts: np.ndarray) -> list[float]:
    """Per-image weights that give every present class the same probability."""
    return per_image(labels, 1.0 / np.maximum(counts, 1))


def plan_none(labels, options, context):
    labels, names, counts = _setup("none", labels, context)
    return _plan([Phase(indices=_all(labels))], options, context,
                 f"all training images, natural imbalance ({describe_counts(counts, names)})")


def plan_undersample(labels, options, context):
    labels, names, counts = _setup("undersample", labels, context)
    smallest = int(counts[counts > 0].min())
    keep = [context.rng.choice(np.flatnonzero(labels == c), smallest, replace=False)
            for c in range(len(names)) if counts[c]]
    indices = sorted(int(i) for i in np.concatenate(keep))
    return _plan([Phase(indices=indices)], options, context,
                 f"random undersampling once: {smallest} images of every class")


def plan_oversample(labels, options, context):
    labels, names, counts = _setup("oversample", labels, context)
    largest = int(counts.max())
    parts = []
    for c in range(len(names)):
        own = np.flatnonzero(labels == c)
        if len(own):
            parts += [own, context.rng.choice(own, largest - len(own), replace=True)]
    indices = sorted(int(i) for i in np.concatenate(parts))
    return _plan([Phase(indices=indices)], options, context,
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


def plan_class_weighted(labels, options, context):
    labels, names, counts = _setup("class-weighted", labels, context)
    beta = options.beta
    weights = class_weights(counts, beta)
    kind = ("inverse class frequency" if beta is None
            else f"inverse effective number of samples, beta={beta:g}")
    shown = ", ".join(f"{n} {w:.3g}" for n, w in zip(names, weights))
    return _plan([Phase(indices=_all(labels))], options, context,
                 f"all training images, loss weighted by {kind} ({shown})",
                 class_weights=weights)


def plan_balanced_batch(labels, options, context):
    labels, _, counts = _setup("balanced-batch", labels, context)
    phase = Phase(indices=_all(labels), sample_weights=_balanced_weights(labels, counts),
                  draws=len(labels))
    return _plan([phase], options, context,
                 f"every epoch {len(labels)} fresh draws with replacement, each class "
                 "equally likely")


def plan_sqrt(labels, options, context):
    labels, names, counts = _setup("sqrt", labels, context)
    weights = per_image(labels, 1.0 / np.sqrt(np.maximum(counts, 1)))
    share = np.sqrt(counts) / np.sqrt(counts).sum()
    shown = ", ".join(f"{n} {s:.1%}" for n, s in zip(names, share))
    return _plan([Phase(indices=_all(labels), sample_weights=weights,
                                draws=len(labels))], options, context,
                 f"every epoch {len(labels)} fresh draws, class probability proportional "
                 f"to sqrt(class size) ({shown})")


def progressive_probabilities(counts: np.ndarray, t: float) -> np.ndarray:
    """Class probabilities at progress ``t``: (1 - t) instance-balanced + t class-balanced."""
    present = counts > 0
    instance = counts / counts.sum()
    balanced = present / present.sum()
    return (1.0 - t) * instance + t * balanced


def plan_progressive(labels, options, context):
    labels, _, counts = _setup("progressive", labels, context)
    k = options.phases
    phases = []
    for i in range(k):
        probs = progressive_probabilities(counts, i / (k - 1))
        weights = per_image(labels, probs / np.maximum(counts, 1))
        phases.append(Phase(indices=_all(labels), sample_weights=weights, draws=len(labels)))
    return _plan(phases, options, context,
                 f"{k} phases of {len(labels)} draws, class probabilities moving linearly "
                 "from instance-balanced (phase 1) to class-balanced (last phase)")


def plan_two_stage(labels, options, context):
    labels, _, counts = _setup("two-stage", labels, context)
    fraction = options.head_fraction
    head_draws = max(1, round(len(labels) * fraction / (1.0 - fraction)))
    phases = [
        Phase(indices=_all(labels)),
        Phase(indices=_all(labels), sample_weights=_balanced_weights(labels, counts),
              draws=head_draws, head_only=True),
    ]
    return _plan(phases, options, context,
                 "stage 1: all training images, natural imbalance; stage 2: backbone "
                 f"frozen, classifier re-trained on class-balanced draws ({fraction:.0%} of "
                 "the images seen)")


def plan_focal(labels, options, context):
    labels, _, _ = _setup("focal", labels, context)
    gamma = options.gamma
    return _plan([Phase(indices=_all(labels))], options, context,
                 f"all training images, natural imbalance, focal loss gamma={gamma:g}",
                 loss="focal", loss_options={"gamma": gamma})


KANG = ("Kang et al. 2020, Decoupling Representation and Classifier for Long-Tailed "
        "Recognition, ICLR")
BUDA = ("Buda, Maki & Mazurowski 2018, A systematic study of the class imbalance problem in "
        "convolutional neural networks, Neural Networks 106:249-259")

SAMPLERS = (
    SamplerSpec("none", "all training images, natural imbalance (the baseline)", plan_none,
                SamplerOptions, "empirical risk minimisation on the natural distribution"),
    SamplerSpec("undersample", "random undersampling of every class to the smallest, once",
                plan_undersample, SamplerOptions, BUDA),
    SamplerSpec("oversample", "random oversampling with replacement of every class to the "
                "largest", plan_oversample, SamplerOptions, BUDA),
    SamplerSpec("class-weighted", "all images, loss weighted by inverse class frequency "
                "(or inverse effective number with beta)", plan_class_weighted,
                ClassWeightedOptions,
                "Cui et al. 2019, Class-Balanced Loss Based on Effective Number of Samples, "
                "CVPR"),
    SamplerSpec("balanced-batch", "every epoch a fresh class-balanced weighted draw",
                plan_balanced_batch, SamplerOptions,
                KANG + " (class-balanced sampling)"),
    SamplerSpec("sqrt", "sampling probability proportional to sqrt of class frequency",
                plan_sqrt, SamplerOptions,
                "Mahajan et al. 2018, Exploring the Limits of Weakly Supervised Pretraining, "
                "ECCV; " + KANG),
    SamplerSpec("progressive", "from instance-balanced to class-balanced sampling over "
                "phases", plan_progressive,
                ProgressiveOptions,
                KANG + " (progressively-balanced sampling)"),
    SamplerSpec("two-stage", "natural training, then classifier re-training on class-"
                "balanced draws (cRT)", plan_two_stage,
                TwoStageOptions,
                KANG + " (classifier re-training, cRT)"),
    SamplerSpec("focal", "focal loss on natural data", plan_focal,
                FocalOptions,
                "Lin et al. 2017, Focal Loss for Dense Object Detection, ICCV"),
)


@hookimpl
def register_samplers(register):
    for spec in SAMPLERS:
        register(spec)
