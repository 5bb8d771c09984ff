"""The strategies the phased sampler is compared against, each as published.

A strategy changes what is sampled (resampling, weighted draws, phases), how the loss is
weighted (class weights, focal loss), or both; the ``Plan`` says which, so every engine
applies it the same way. The budget rule is ``harness.meet_budget``'s: without ``budget``
each strategy has its natural budget, with it every plan sees exactly ``budget`` images.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from harness import (
    Phase,
    Plan,
    SamplerContext,
    SamplerOptions,
    SamplerSpec,
    hookimpl,
    meet_budget,
    suite_of,
)

from .common import SamplerOptionError, class_counts, class_names, describe_counts, per_image


class ClassBalancedOptions(SamplerOptions):
    beta: float = Field(0.999, ge=0.0, lt=1.0, description="effective-number beta in [0, 1) "
                        "(Cui et al. try 0.9 to 0.9999)")


class ProgressiveOptions(SamplerOptions):
    phases: int = Field(5, ge=2, description="number of phases of the schedule (start and "
                        "end included)")


class TwoStageOptions(SamplerOptions):
    head_fraction: float = Field(0.1, gt=0.0, lt=1.0, description="share of the images seen "
                                 "spent re-training the classifier")


class FocalOptions(SamplerOptions):
    gamma: float = Field(2.0, ge=0.0, le=100.0, description="focusing parameter gamma")
    alpha: Literal["inverse", "none"] | list[float] = Field(
        "inverse", description="per-class weight alpha: 'inverse' (inverse class frequency, "
        "mean 1 per training image), 'none', or one positive number per class")

    @field_validator("alpha")
    @classmethod
    def _one_per_class(cls, value, info: ValidationInfo):
        """A list needs one positive number per class of the suite (checked at --dry-run)."""
        suite = suite_of(info)
        if isinstance(value, list) and (any(a <= 0 for a in value) or (
                suite is not None and len(value) != len(suite.classes))):
            per_class = (f" ({len(suite.classes)}: {', '.join(suite.classes)})"
                         if suite is not None else "")
            raise ValueError(f"expected one positive number per class{per_class}, "
                             f"got {value}")
        return value


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
    """Loss weighted by inverse class frequency, ``1 / n_c`` scaled to a mean of 1 per image.

    The re-weighting baseline that Cui et al. 2019 compare their effective-number weights
    against (``class-balanced``).
    """
    labels, names, counts = _setup("class-weighted", labels, context)
    weights = class_weights(counts, None)
    shown = ", ".join(f"{n} {w:.3g}" for n, w in zip(names, weights))
    return _plan([Phase(indices=_all(labels))], options, context,
                 f"all training images, loss weighted by inverse class frequency ({shown})",
                 class_weights=weights)


def plan_class_balanced(labels, options, context):
    """Class-balanced loss: weights from the effective number of samples (Cui et al. 2019).

    Each class is weighted by ``(1 - beta) / (1 - beta^n_c)``, the inverse of its effective
    number of samples; ``beta = 0`` gives no re-weighting and ``beta -> 1`` inverse frequency.
    Deviation: Cui et al. scale the weights to sum to the number of classes; here to a mean
    of 1 per training image, as ``class-weighted``, so the loss keeps the baseline's scale
    and the learning rate means the same (a constant factor; the ratios are theirs). Used
    with the softmax cross-entropy (their paper also pairs it with sigmoid and focal losses).
    """
    labels, names, counts = _setup("class-balanced", labels, context)
    weights = class_weights(counts, options.beta)
    shown = ", ".join(f"{n} {w:.3g}" for n, w in zip(names, weights))
    return _plan([Phase(indices=_all(labels))], options, context,
                 f"all training images, loss weighted by inverse effective number of samples, "
                 f"beta={options.beta:g} ({shown})", class_weights=weights)


def plan_class_balanced_sampling(labels, options, context):
    """Class-balanced sampling (Kang et al. 2020, section 3): every epoch a fresh draw with
    replacement in which each class is equally likely, so batches are balanced on average
    (not exactly: see ``balanced-batch``)."""
    labels, _, counts = _setup("class-balanced-sampling", labels, context)
    phase = Phase(indices=_all(labels), sample_weights=_balanced_weights(labels, counts),
                  draws=len(labels))
    return _plan([phase], options, context,
                 f"every epoch {len(labels)} fresh draws with replacement, each class "
                 "equally likely")


def plan_balanced_batch(labels, options, context):
    """Balanced batches: every batch holds the same number of images of each class.

    Each class's images are cycled through fresh permutations and every batch takes
    ``batch_size / K`` of each of the K classes (class-aware sampling, Shen, Lin & Huang
    2016, Relay Backpropagation, ECCV). Deviation: Shen et al. draw the class of each image
    at random (balanced in expectation); here the counts are exact in every batch, the
    remainder of ``batch_size / K`` going to the classes in turn. An epoch has as many
    images as the training set.
    """
    labels, _, counts = _setup("balanced-batch", labels, context)
    phase = Phase(indices=_all(labels), sample_weights=_balanced_weights(labels, counts),
                  draws=len(labels), balanced_batches=True)
    return _plan([phase], options, context,
                 f"every epoch {len(labels)} images in batches with equal class counts, each "
                 "class's images cycled")


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
    """Classifier re-training, cRT (Kang et al. 2020, section 4).

    Stage 1 trains the whole network on the natural distribution; stage 2 re-initialises the
    final linear classifier and trains it alone (backbone and any head layers before it, e.g.
    the paper head's 1x1 convolution, frozen) on class-balanced draws. Deviations: stage 2
    lasts ``head_fraction`` of the images seen (Kang et al.: 10 epochs) and uses the suite's
    optimiser and learning rate (they restart a cosine schedule). The checkpoint is chosen
    in stage 2 only (stage 1 is not ``selectable``): Kang et al. report the re-trained
    classifier. Under any budget the classifier is re-drawn exactly once.
    """
    labels, _, counts = _setup("two-stage", labels, context)
    fraction = options.head_fraction
    head_draws = max(1, round(len(labels) * fraction / (1.0 - fraction)))
    phases = [
        Phase(indices=_all(labels), selectable=False),
        Phase(indices=_all(labels), sample_weights=_balanced_weights(labels, counts),
              draws=head_draws, classifier_only=True, reset_classifier=True),
    ]
    return _plan(phases, options, context,
                 "stage 1: all training images, natural imbalance; stage 2: final linear "
                 "classifier re-initialised and trained alone (everything before it frozen) "
                 f"on class-balanced draws ({fraction:.0%} of the images seen); checkpoint "
                 "chosen in stage 2")


def focal_alpha(alpha, counts: np.ndarray) -> list[float] | None:
    """The per-class alpha of the focal loss: inverse frequency, none, or given."""
    if alpha == "none":
        return None
    if alpha == "inverse":
        return class_weights(counts, None)
    if len(alpha) != len(counts) or any(a <= 0 for a in alpha):
        raise SamplerOptionError(f"sampler 'focal': option alpha: expected one positive number "
                                 f"per class ({len(counts)}), got {list(alpha)}")
    return [float(a) for a in alpha]


def plan_focal(labels, options, context):
    """Focal loss ``-alpha_y (1 - p_y)^gamma log p_y`` (Lin et al. 2017) on natural data.

    Deviation: Lin et al. use a sigmoid per class with one alpha for the rare foreground
    (0.25 best with gamma = 2, tuned for detection); here the softmax form with one alpha per
    class, by default inverse class frequency scaled to a mean of 1 per training image (the
    usual multi-class reading); ``alpha: none`` drops it, a list sets it.
    """
    labels, names, counts = _setup("focal", labels, context)
    gamma = options.gamma
    alpha = focal_alpha(options.alpha, counts)
    shown = "none" if alpha is None else ", ".join(f"{n} {a:.3g}" for n, a in zip(names, alpha))
    return _plan([Phase(indices=_all(labels))], options, context,
                 f"all training images, natural imbalance, focal loss gamma={gamma:g}, "
                 f"alpha {shown}", loss="focal", loss_options={"gamma": gamma, "alpha": alpha})


KANG = ("Kang et al. 2020, Decoupling Representation and Classifier for Long-Tailed "
        "Recognition, ICLR")
CUI = ("Cui et al. 2019, Class-Balanced Loss Based on Effective Number of Samples, CVPR")
BUDA = ("Buda, Maki & Mazurowski 2018, A systematic study of the class imbalance problem in "
        "convolutional neural networks, Neural Networks 106:249-259")

SAMPLERS = (
    SamplerSpec("none", "all training images, natural imbalance (the baseline)", plan_none,
                SamplerOptions, "empirical risk minimisation on the natural distribution"),
    SamplerSpec("undersample", "random undersampling of every class to the smallest, once",
                plan_undersample, SamplerOptions, BUDA),
    SamplerSpec("oversample", "random oversampling with replacement of every class to the "
                "largest", plan_oversample, SamplerOptions, BUDA),
    SamplerSpec("class-weighted", "all images, loss weighted by inverse class frequency",
                plan_class_weighted, SamplerOptions,
                CUI + " (inverse class frequency, their re-weighting baseline)"),
    SamplerSpec("class-balanced", "all images, loss weighted by the inverse effective number "
                "of samples (beta)", plan_class_balanced, ClassBalancedOptions, CUI),
    SamplerSpec("class-balanced-sampling", "every epoch a fresh draw with replacement, each "
                "class equally likely", plan_class_balanced_sampling, SamplerOptions,
                KANG + " (class-balanced sampling)"),
    SamplerSpec("balanced-batch", "every batch with equal class counts, each class's images "
                "cycled", plan_balanced_batch, SamplerOptions,
                "Shen, Lin & Huang 2016, Relay Backpropagation for Effective Learning of Deep "
                "Convolutional Neural Networks, ECCV (class-aware sampling), exact per batch"),
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
                KANG + " (classifier re-training, cRT)", needs=("reset_classifier",)),
    SamplerSpec("focal", "focal loss on natural data", plan_focal,
                FocalOptions,
                "Lin et al. 2017, Focal Loss for Dense Object Detection, ICCV"),
)


@hookimpl
def register_samplers(register):
    for spec in SAMPLERS:
        register(spec)
