"""The engine contract: what an engine's model must do, and what it is given to do it.

``EngineSpec.build(context)`` returns an object with the primitives of ``EngineModel``; the
core's loop (``harness.training.loop``) owns phases, epochs, data order, augmentation draws,
selection, checkpoints, history and progress, and calls nothing else. Batches arrive as host
``uint8`` arrays, so no engine reads the cache or draws random numbers for the data itself.
Engine authors import all of it, and the framework-free helpers, from ``harness.engine_api``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from harness.config.suite import NORMALIZATIONS, Training
from harness.errors import HarnessError
from harness.plugin.backbone import BackboneSpec, WeightSource
from harness.plugin.options import Options, validate_options

#: The primitives every engine's model has (the loop calls them in every run).
REQUIRED_PRIMITIVES = ("set_trainable", "train_epoch", "predict", "get_state", "set_state",
                       "get_weights", "set_weights")
#: Primitives a model may lack, and what calls them: a suite that needs one its engine
#: lacks is refused before anything runs (``missing_primitives``).
OPTIONAL_PRIMITIVES = {
    "reset_classifier": "plans that re-draw the classifier (SamplerSpec.needs)",
    "prepare": "harness bench", "describe": "harness describe and harness bench",
    "forward_flops": "harness bench",
}


@dataclass
class AugmentParams:
    """One random transform per sample (arrays of length ``n``)."""

    theta: np.ndarray  # rotation, degrees
    tx: np.ndarray  # shift along rows (height), pixels
    ty: np.ndarray  # shift along columns (width), pixels
    shear: np.ndarray  # shear angle, degrees
    zx: np.ndarray  # zoom along rows
    zy: np.ndarray  # zoom along columns
    hflip: np.ndarray  # bool: mirror left-right
    vflip: np.ndarray  # bool: mirror top-bottom

    def __len__(self) -> int:
        return len(self.theta)

    @classmethod
    def identity(cls, n: int) -> AugmentParams:
        zeros, ones, no = np.zeros(n), np.ones(n), np.zeros(n, dtype=bool)
        return cls(zeros, zeros.copy(), zeros.copy(), zeros.copy(), ones, ones.copy(), no, no.copy())



@dataclass
class Batch:
    """One training batch: ``(B, S, S)`` uint8 images, ``(B,)`` int64 labels, and the
    per-sample augmentation (``None``: no augmentation)."""

    images: np.ndarray
    labels: np.ndarray
    augment: AugmentParams | None = None


@dataclass
class EpochResult:
    """What one ``train_epoch`` call reports: summed batch loss × batch size, correct
    predictions and images seen (the loop turns these into the history row)."""

    loss_sum: float
    correct: int
    seen: int


@dataclass
class LossSpec:
    """The plan's loss (see ``harness.training.optim.LOSSES``)."""

    name: str = "cross_entropy"
    class_weights: list[float] | None = None
    gamma: float = 2.0
    #: Focal loss α per class (Lin et al. 2017 α_t); ``None``: no α term.
    alpha: list[float] | None = None


@dataclass
class EngineContext:
    """Everything an engine needs to build a model: no run folder, no cache, no plan.

    ``training`` is the run's typed training settings (``harness.Training``, read from the
    resolved run: per-backbone overrides merged, ``threads`` resolved); ``backbone`` its
    ``BackboneSpec`` and ``backbone_options`` the backbone's validated options.
    """

    backbone: BackboneSpec
    image_size: int
    n_classes: int
    training: Training
    loss: LossSpec = field(default_factory=LossSpec)
    seed: int = 0
    backbone_options: Options = field(default_factory=Options)
    #: Threads the engine may use on the CPU (0: the framework's default).
    threads: int = 0

    def __post_init__(self) -> None:
        if self.training.normalization not in NORMALIZATIONS:
            raise ValueError(f"EngineContext: training.normalization "
                             f"{self.training.normalization!r} is not resolved; expected one "
                             f"of {', '.join(NORMALIZATIONS)}, as a planned run's settings are")

    def build_backbone(self, builder: str) -> Any:
        """The backbone from its ``builders[builder]`` with the run's weights and options."""
        return build_backbone(self.backbone, builder, self.image_size, self.training.weights,
                              self.backbone_options)


class EngineModel(Protocol):
    """The primitives the loop calls (``build(context)`` returns one of these).

    Required: every method below but ``reset_classifier``. Optional: ``reset_classifier``,
    called only by plans with a phase that re-draws the classifier (a sampler that makes
    such plans lists it in ``SamplerSpec.needs``); ``Describable``'s, for ``harness
    describe`` and ``harness bench``.
    """

    def set_trainable(self, part: str) -> None:
        """``all``, ``head`` (backbone frozen, its BatchNorm in inference mode) or
        ``classifier`` (only the final linear layer trains)."""

    def reset_classifier(self, seed: int) -> None:
        """Re-draw the final linear layer (kernel N(0, 0.001), zero bias) from ``seed``."""

    def train_epoch(self, batches: Iterable[Batch], seed: int) -> EpochResult:
        """One optimizer step per batch; dropout randomness drawn from ``seed``."""

    def predict(self, batches: Iterable[np.ndarray]) -> np.ndarray:
        """Softmax probabilities ``(N, C)`` of uint8 image batches, in order, no augmentation."""

    def get_state(self) -> dict[str, np.ndarray]:
        """Model and optimizer state as host arrays (a copy: training may go on at once)."""

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore what ``get_state`` returned."""

    def get_weights(self) -> dict[str, np.ndarray]:
        """Model weights only, as host arrays (a copy): the best model so far."""

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Restore what ``get_weights`` returned."""


class Describable(Protocol):
    """Optional primitives for ``harness describe`` and ``harness bench`` (an engine without
    them still trains; those commands then say what is missing)."""

    #: The device in words and the compute precision (for bench output).
    device_name: str
    precision: str

    def prepare(self, batch: Batch) -> None:
        """Move one batch to the device and augment it, synchronously (the input pipeline)."""

    def describe(self) -> dict[str, Any]:
        """``{"feature_shape": [H, W, C], "params": {"backbone": {...}, "model": {...}}}``
        with ``total``, ``trainable`` and ``non_trainable`` counts."""

    # Optional too: ``forward_flops() -> int``, the FLOPs of one image's forward pass through
    # the whole model (a multiply-add counts 2). ``harness bench`` then reports the share of
    # the GPU's peak each rate uses (``harness.training.peaks``), for every engine that
    # times the same network.


def missing_primitives(model: Any, needed: Iterable[str] = ()) -> list[str]:
    """The required primitives, and those of ``needed``, that ``model`` (a model, or the
    class ``EngineSpec.build`` names, read without importing any framework) lacks."""
    wanted = dict.fromkeys([*REQUIRED_PRIMITIVES, *needed])
    return [name for name in wanted if not callable(getattr(model, name, None))]


def build_backbone(spec: BackboneSpec, engine: str, image_size: int,
                   weights: str | WeightSource | None,
                   options: Mapping[str, Any] | Options | None, where: str = "") -> Any:
    """Build ``spec``'s model for ``engine`` with validated options (what engines call).

    ``weights`` is the ``training.weights`` value (or its ``WeightSource``): resolved here
    by ``BackboneSpec.weights_for``, so the builder receives the declared source."""
    builder = spec.builders.get(engine)
    if builder is None:
        raise HarnessError(f"backbone {spec.name!r} has no {engine} build; it supports: "
                           f"{', '.join(sorted(spec.builders)) or 'none'}")
    source = spec.weights_for(engine, weights)
    opts = validate_options(spec.options, options,
                            where or f"backbone {spec.name!r} options", "backbone_options")
    return builder(image_size=image_size, weights=source, options=opts)
