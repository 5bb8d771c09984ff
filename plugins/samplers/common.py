"""What every sampler shares: reading its options, counting classes, and meeting a budget.

Samplers receive class indices, but suites speak in class names; the runner passes the
suite's class names as ``options["classes"]`` so that options such as ``quotas`` may name
classes. Every mistake in an option raises :class:`SamplerOptionError` naming the sampler,
the option and what was expected.

The budget rule (the same for every sampler, so strategies can be compared fairly):

* Without ``budget`` a plan has its strategy's *natural* budget: each phase runs the suite's
  ``epochs_per_phase`` epochs (or the sampler's ``epochs`` option).
* With ``budget: B`` (images seen in the whole run; the runner may pass the budget of the
  default ``phased`` plan so that every strategy sees as many images) the plan's phases get
  explicit epochs so that ``Plan.budget()`` is exactly ``B``. Images are shared out between
  phases in proportion to their natural size; a phase that cannot fill its share with whole
  epochs is followed by one partial epoch: a seeded random subset of its images (or fewer
  weighted draws). ``budget`` and ``epochs`` cannot be combined.
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.plugin.specs import DEFAULT_CLASSES, Phase

#: Options the runner passes to every sampler: the suite's class names, its epochs per
#: phase, and phases fixed by the split (the authors' published phase files), if any.
RUNNER_OPTIONS = ("classes", "epochs_per_phase", "split_phases", "budget")


class SamplerOptionError(HarnessError):
    """A sampler option is unknown or has a value the sampler cannot use."""


def check_known(sampler: str, options: Mapping[str, Any], known: Iterable[str]) -> None:
    """Reject option names the sampler does not take (a typo must not pass silently)."""
    known = sorted(set(known) | set(RUNNER_OPTIONS))
    for key in options:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise SamplerOptionError(
                f"sampler {sampler!r}: unknown option {key!r}.{hint} "
                f"Options it takes: {', '.join(known)}")


def class_names(sampler: str, labels: np.ndarray, options: Mapping[str, Any]) -> list[str]:
    """The suite's class names (``options["classes"]``), checked against the labels."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
        raise SamplerOptionError(
            f"sampler {sampler!r}: labels must be a 1-D array of class indices, "
            f"got dtype {labels.dtype} and shape {labels.shape}")
    if labels.size and labels.min() < 0:
        raise SamplerOptionError(f"sampler {sampler!r}: labels hold a negative class index")
    top = int(labels.max()) + 1 if labels.size else 0
    names = options.get("classes")
    if names is None:
        names = list(DEFAULT_CLASSES) if top <= len(DEFAULT_CLASSES) else [
            str(i) for i in range(top)]
    names = [str(n) for n in names]
    if top > len(names):
        raise SamplerOptionError(
            f"sampler {sampler!r}: labels hold class index {top - 1} but option 'classes' "
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
        out[c] = non_negative_int(sampler, f"{option}.{key}", count,
                                  "or 'all'" if allow_all else "")
    return out


def non_negative_int(sampler: str, option: str, value: Any, extra: str = "") -> int:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0:
        return int(value)
    expected = f"a non-negative integer{' ' + extra if extra else ''}"
    raise SamplerOptionError(f"sampler {sampler!r}: option {option}: expected {expected}, "
                             f"got {value!r}")


def positive_int(sampler: str, option: str, value: Any) -> int:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1:
        return int(value)
    raise SamplerOptionError(f"sampler {sampler!r}: option {option}: expected a positive "
                             f"integer, got {value!r}")


def number_in(sampler: str, option: str, value: Any, low: float, high: float,
              closed_high: bool = False) -> float:
    """A number in ``[low, high)`` (or ``[low, high]``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok and low <= float(value) and (float(value) <= high if closed_high
                                       else float(value) < high):
        return float(value)
    bracket = "]" if closed_high else ")"
    raise SamplerOptionError(f"sampler {sampler!r}: option {option}: expected a number in "
                             f"[{low:g}, {high:g}{bracket}, got {value!r}")


def class_counts(labels: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes)


def per_image(labels: np.ndarray, per_class_value: np.ndarray) -> list[float]:
    """Spread a per-class value onto every image (for ``Phase.sample_weights``)."""
    return [float(v) for v in np.asarray(per_class_value, dtype=np.float64)[labels]]


def describe_counts(counts: Iterable[int], names: list[str]) -> str:
    return ", ".join(f"{n} {c}" for n, c in zip(names, counts))


def read_budget(sampler: str, options: Mapping[str, Any]) -> int | None:
    """``budget`` (images seen per run) or ``None`` for the natural budget."""
    budget = options.get("budget")
    if budget is None or budget == "natural":
        return None
    budget = positive_int(sampler, "budget", budget)
    if options.get("epochs") is not None:
        raise SamplerOptionError(
            f"sampler {sampler!r}: options 'budget' and 'epochs' are both set; with a "
            "budget the epochs follow from it. Remove one of them.")
    return budget


def read_epochs(sampler: str, options: Mapping[str, Any]) -> int | None:
    epochs = options.get("epochs")
    return None if epochs is None else positive_int(sampler, "epochs", epochs)


def share(total: int, sizes: list[int]) -> list[int]:
    """Split ``total`` into integers proportional to ``sizes`` (largest remainders)."""
    sizes_arr = np.asarray(sizes, dtype=np.float64)
    exact = total * sizes_arr / sizes_arr.sum()
    parts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - parts), kind="stable")
    parts[order[: total - int(parts.sum())]] += 1
    return [int(p) for p in parts]


def fit_budget(phases: list[Phase], budget: int, rng: np.random.Generator,
               sampler: str = "") -> list[Phase]:
    """Give every phase explicit epochs so that the plan sees exactly ``budget`` images."""
    sizes = [p.images_per_epoch() for p in phases]
    if sum(sizes) == 0:
        raise SamplerOptionError(f"sampler {sampler!r}: option budget: the plan has no "
                                 "images to spend it on")
    out: list[Phase] = []
    for phase, size, images in zip(phases, sizes, share(budget, sizes)):
        if size == 0:
            continue
        whole, rest = divmod(images, size)
        if whole:
            out.append(replace(phase, epochs=whole))
        if rest:
            if phase.sample_weights is not None:
                out.append(replace(phase, draws=rest, epochs=1))
            else:
                subset = rng.permutation(np.asarray(phase.indices))[:rest]
                out.append(replace(phase, indices=[int(i) for i in subset], epochs=1))
    return out


def with_epochs(phases: list[Phase], epochs: int | None) -> list[Phase]:
    return phases if epochs is None else [replace(p, epochs=epochs) for p in phases]


def finish(phases: list[Phase], options: Mapping[str, Any], sampler: str,
           rng: np.random.Generator) -> tuple[list[Phase], str]:
    """Apply ``budget`` or ``epochs`` to natural phases; return them with a budget note."""
    budget = read_budget(sampler, options)
    epochs = read_epochs(sampler, options)
    per_epoch = sum(p.images_per_epoch() for p in phases)
    if budget is not None:
        fitted = fit_budget(phases, budget, rng, sampler)
        note = (f"budget: {budget} images seen, fixed by the suite (natural: {per_epoch} "
                f"images per epoch of every phase); epochs set per phase to meet it exactly")
        return fitted, note
    if epochs is not None:
        return with_epochs(phases, epochs), (
            f"budget: natural, {per_epoch * epochs} images seen ({epochs} epochs per phase)")
    suite_epochs = options.get("epochs_per_phase")
    if isinstance(suite_epochs, numbers.Integral) and suite_epochs > 0:
        return phases, (f"budget: natural, {per_epoch * int(suite_epochs)} images seen "
                        f"({per_epoch} per epoch x {suite_epochs} epochs per phase)")
    return phases, (f"budget: natural, {per_epoch} images per epoch_per_phase "
                    f"(images seen = {per_epoch} x epochs_per_phase)")
