"""What an engine provides: a model with a handful of primitives, nothing more.

The loop (``harness.training.loop``) owns phases, epochs, data order, augmentation draws,
selection, checkpoints, history and progress; an engine only turns batches into updates and
probabilities in its framework. ``EngineSpec.build(context)`` returns an object with the
methods of ``EngineModel``. Batches arrive as host ``uint8`` arrays, so no engine reads the
cache or draws random numbers for the data itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from harness.errors import HarnessError
from harness.training import augment
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

    def build_backbone(self, builder: str) -> Any:
        """The backbone from its ``builders[builder]`` with the run's weights and options."""
        from harness.plugin.check import build_backbone

        return build_backbone(self.backbone, builder, self.image_size,
                              getattr(self.training, "weights", "none"), self.backbone_options)


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

    # Optional too: ``forward_flops() -> int``, the FLOPs of one image's forward pass through
    # the whole model (a multiply-add counts 2). ``harness bench`` then reports the share of
    # the GPU's peak each rate uses (``harness.training.peaks``), for every engine that
    # times the same network.


# ------------------------------------------------------------------ what the core gives engines
# Framework-free pieces every engine needs, so that an engine's module holds only the calls
# into its framework (a whole engine that uses them: tests/minimal_engine.py).

#: ``training.normalization`` → per-channel (mean, std) of the 3-channel input in [0, 1]
#: (``None``: the [0, 1] scaling alone). ImageNet's statistics, as torchvision and timm.
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]] | None] = {
    "unit": None,
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}

#: Standard deviation of the final linear layer's kernel at (re-)initialisation: the
#: authors' Keras ``RandomNormal(0, 0.001)``.
CLASSIFIER_STD = 0.001


def lazy(target: str) -> Callable[..., Any]:
    """``"package.module:name"`` as a callable that imports its module on the first call: an
    engine registers ``build=lazy(...)`` without importing its framework. The callable's
    ``__module__`` is the target's, which warm worker hosts preload."""
    module, _, name = target.partition(":")

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__module__, call.__qualname__ = module, name
    return call


class StateMismatch(HarnessError):
    """Saved weights or optimizer state do not fit the model built for this run."""

    def __init__(self, what: str, detail: str):
        super().__init__(f"saved {what} do not fit this model ({detail}); delete the run "
                         "folder's checkpoints to start the run again")


def compute_dtype(precision: str, accelerator: bool, bf16: bool = True) -> str:
    """``training.precision`` → ``float32``, ``bfloat16`` or ``float16``: full precision on
    the CPU unless asked for; ``auto`` on an accelerator is bf16 where it has it, else fp16."""
    if precision == "fp32" or (precision == "auto" and not accelerator):
        return "float32"
    if precision == "fp16" or (precision == "auto" and not bf16):
        return "float16"
    return "bfloat16"


def classifier_init(seed: int, fan_in: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``(kernel (fan_in, n_classes), bias)`` for ``reset_classifier``: N(0, 0.001) drawn
    from ``seed`` with numpy, so every engine re-draws the same values (torch: ``kernel.T``)."""
    rng = np.random.default_rng(int(seed))
    kernel = rng.normal(0.0, CLASSIFIER_STD, (fan_in, n_classes)).astype(np.float32)
    return kernel, np.zeros(n_classes, np.float32)


class Tally:
    """Sums a training epoch's batches into an ``EpochResult``. ``add`` takes whatever the
    framework returns (device tensors stay on the device: nothing waits for the device
    until ``result``)."""

    def __init__(self):
        self.loss: Any = 0.0
        self.correct: Any = 0
        self.seen = 0

    def add(self, mean_loss: Any, correct: Any, n: int) -> None:
        self.loss = self.loss + mean_loss * n
        self.correct = self.correct + correct
        self.seen += int(n)

    def result(self) -> EpochResult:
        return EpochResult(float(self.loss), int(self.correct), self.seen)


def stack_probabilities(parts: list[np.ndarray], n_classes: int) -> np.ndarray:
    """Per-batch probabilities → one float32 ``(N, C)`` array (``(0, C)`` for no batches)."""
    if not parts:
        return np.zeros((0, n_classes), np.float32)
    return np.concatenate([np.asarray(p, np.float32) for p in parts])


def host_inputs(images: np.ndarray, params: AugmentParams | None = None,
                normalization: str = "unit", fill: str = "nearest",
                channels_last: bool = False) -> np.ndarray:
    """What the built-in engines compute on their device, on the host: uint8 ``(B, S, S)`` →
    float32 ``(B, 3, S, S)`` (``(B, S, S, 3)`` when ``channels_last``), augmented by
    ``params`` (``augment.apply_on_host``), scaled to [0, 1] and normalised."""
    x = (augment.apply_on_host(images, params, fill) if params is not None
         else images.astype(np.float32) / 255.0)
    x = np.repeat(x[:, None], 3, axis=1)
    stats = NORMALIZATION[normalization]
    if stats is not None:
        mean, std = (np.asarray(v, np.float32).reshape(1, 3, 1, 1) for v in stats)
        x = (x - mean) / std
    return np.ascontiguousarray(np.moveaxis(x, 1, -1)) if channels_last else x


def flatten(tree: dict[Any, Any], convert: Callable[[Any], np.ndarray] = np.array,
            prefix: str = "") -> dict[str, np.ndarray]:
    """Nested dicts of arrays (an optimizer's state) → ``{"a/b": array}``, each leaf a copy
    by ``convert``; ``unflatten`` gives the nesting back, with string keys."""
    flat: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, convert, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = convert(value)
    return flat


def unflatten(flat: dict[str, np.ndarray]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        *path, leaf = key.split("/")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def pack_state(**groups: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``get_state``'s key convention: ``pack_state(model=weights, optim=slots)`` →
    ``{"model/…": …, "optim/…": …}`` (``unpack_state`` reads one group back)."""
    return {f"{group}/{k}": v for group, arrays in groups.items() for k, v in arrays.items()}


def unpack_state(state: dict[str, np.ndarray], group: str) -> dict[str, np.ndarray]:
    start = len(group) + 1
    return {k[start:]: v for k, v in state.items() if k.startswith(group + "/")}


def numbered(values: Iterable[Any]) -> dict[str, np.ndarray]:
    """A list of arrays as a dict keyed ``00000``, ``00001``, … (``in_order`` reverses it)."""
    return {f"{i:05d}": np.array(v) for i, v in enumerate(values)}


def in_order(arrays: dict[str, np.ndarray], expected: int, what: str) -> list[np.ndarray]:
    """The arrays of ``numbered`` in order; ``StateMismatch`` unless there are ``expected``."""
    values = [arrays[k] for k in sorted(arrays)]
    if len(values) != expected:
        raise StateMismatch(what, f"{len(values)} arrays for {expected}")
    return values


def param_counts(trainable: int, non_trainable: int) -> dict[str, int]:
    """One entry of ``Describable.describe()["params"]``."""
    return {"total": int(trainable) + int(non_trainable), "trainable": int(trainable),
            "non_trainable": int(non_trainable)}


def feature_map_problem(shape: tuple[int, ...] | None, image_size: int, channels_last: bool,
                        channels: int | None = None, batch: str = "1") -> str | None:
    """The shape half of ``BACKBONE_CONTRACT``: a backbone maps one zero batch (of ``batch``
    images, ``"B"`` for a symbolic one) in the engine's layout to a 4-D feature map, with
    ``channels`` channels when the contract names them."""
    s, b = image_size, batch
    given = f"({b}, {s}, {s}, 3)" if channels_last else f"({b}, 3, {s}, {s})"
    if shape is None or len(shape) != 4:
        got = "a non-tensor" if shape is None else tuple(shape)
        return (f"maps a {given} batch to {got}; expected a "
                f"{f'({b}, H, W, C)' if channels_last else f'({b}, C, H, W)'} feature map")
    found = int(shape[-1] if channels_last else shape[1])
    if channels is not None and found != channels:
        return f"out_channels is {channels} but its feature map has {found} channels"
    return None
