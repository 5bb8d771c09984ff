"""What an engine provides: a model with a handful of primitives, nothing more.

The loop (``harness.training.loop``) owns phases, epochs, data order, augmentation draws,
selection, checkpoints, history and progress; an engine only turns batches into updates and
probabilities in its framework. ``EngineSpec.build(context)`` returns an object with the
methods of ``EngineModel``. Batches arrive as host ``uint8`` arrays, so no engine reads the
cache or draws random numbers for the data itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from harness.training.augment import AugmentParams

#: Which parameters a phase trains: all, the head (backbone frozen), or the final linear
#: classifier only (everything else frozen).
TRAINABLE = ("all", "head", "classifier")


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

    ``training`` is the run's ``harness.config.suite.Training``; ``backbone`` its
    ``BackboneSpec`` and ``backbone_options`` the resolved options of its builder.
    """

    backbone: Any
    image_size: int
    n_classes: int
    training: Any
    loss: LossSpec = field(default_factory=LossSpec)
    seed: int = 0
    backbone_options: dict[str, Any] = field(default_factory=dict)
    #: Threads the engine may use on the CPU (0: the framework's default).
    threads: int = 0


class EngineModel(Protocol):
    """The primitives the loop calls (``build(context)`` returns one of these)."""

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
