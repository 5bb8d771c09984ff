"""What the built-in samplers share: class names, counting classes, per-class options.

Samplers receive class indices, but suites speak in class names: ``context.classes`` holds
the suite's names, so options such as ``quotas`` may name classes. In a suite the options
model checks those names before anything runs (``harness.ClassKey``, ``--dry-run``); a
plugin called outside a suite (``Options.of``) has no suite to check against, so the
helpers here check again where the plan uses a name, raising :class:`SamplerOptionError`
naming the sampler, the option and what was expected. Meeting a budget is
``harness.meet_budget``.
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from harness import HarnessError, SamplerContext


class SamplerOptionError(HarnessError):
    """A sampler option names a class the suite lacks, or cannot be used on these labels."""


def class_names(sampler: str, labels: np.ndarray, context: SamplerContext) -> list[str]:
    """The suite's class names (``context.classes``), checked against the labels."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
        raise SamplerOptionError(
            f"sampler {sampler!r}: labels must be a 1-D array of class indices, "
            f"got dtype {labels.dtype} and shape {labels.shape}")
    if labels.size and labels.min() < 0:
        raise SamplerOptionError(f"sampler {sampler!r}: labels hold a negative class index")
    top = int(labels.max()) + 1 if labels.size else 0
    names = [str(n) for n in context.classes]
    if top > len(names):
        raise SamplerOptionError(
            f"sampler {sampler!r}: labels hold class index {top - 1} but the suite "
            f"names only {len(names)} classes: {', '.join(names)}")
    return names


def class_index(sampler: str, option: str, key: Any, names: list[str]) -> int:
    """Resolve a class given by name (or by index) in an option such as ``quotas``."""
    if isinstance(key, numbers.Integral) and not isinstance(key, bool):
        if 0 <= int(key) < len(names):
            return int(key)
    elif str(key) in names:
        return names.index(str(key))
    close = difflib.get_close_matches(str(key), names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise SamplerOptionError(
        f"sampler {sampler!r}: option {option}: unknown class {key!r}{hint}; "
        f"known classes: {', '.join(names)}")


def per_class(sampler: str, option: str, value: Any, names: list[str],
              allow_all: bool = False) -> dict[int, int | None]:
    """Read a ``{class: count}`` mapping; ``None`` stands for ``"all"`` where allowed."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SamplerOptionError(
            f"sampler {sampler!r}: option {option}: expected a mapping of class name to "
            f"count, e.g. {{{names[0]}: 250}}; got {value!r}")
    out: dict[int, int | None] = {}
    for key, count in value.items():
        c = class_index(sampler, option, key, names)
        if allow_all and count == "all":
            out[c] = None
            continue
        out[c] = int(count)
    return out


def class_counts(labels: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes)


def per_image(labels: np.ndarray, per_class_value: np.ndarray) -> list[float]:
    """Spread a per-class value onto every image (for ``Phase.sample_weights``)."""
    return [float(v) for v in np.asarray(per_class_value, dtype=np.float64)[labels]]


def describe_counts(counts: Iterable[int], names: list[str]) -> str:
    return ", ".join(f"{n} {c}" for n, c in zip(names, counts))
