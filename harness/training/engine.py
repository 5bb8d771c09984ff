"""What the core gives engines: framework-free pieces every engine needs, so that an engine's
module holds only the calls into its framework (a whole engine that uses them:
tests/minimal_engine.py). The contract itself is ``harness.plugin.engine``; engine authors
import both from ``harness.engine_api``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.plugin.engine import AugmentParams, EpochResult
from harness.training import augment

#: ``training.normalization`` → per-channel (mean, std) of the 3-channel input in [0, 1]
#: (``None``: the [0, 1] scaling alone). ImageNet's statistics, as torchvision and timm;
#: ``inception`` maps [0, 1] to [-1, 1] (Keras ``preprocess_input`` mode "tf", timm's
#: ``IMAGENET_INCEPTION_MEAN``/``STD``). ``auto`` never gets here: it is resolved at planning.
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]] | None] = {
    "unit": None,
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "inception": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}

#: Standard deviation of the final linear layer's kernel at (re-)initialisation: the
#: authors' Keras ``RandomNormal(0, 0.001)``.
CLASSIFIER_STD = 0.001


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
