"""Every call into a plugin goes through here: a failure or a wrong result is one line.

A plugin is someone else's code. When a dataset's ``records``, a splitter, a sampler's
``plan`` or an engine's primitives raise, or return something the contract does not allow,
the user sees which plugin (its distribution and version), which hook and which run — not
an unrelated ``IndexError`` three calls later. ``-v`` (or a run's ``status.json``) keeps the
original traceback as the cause.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from harness.errors import HarnessError

#: Rows of probabilities must sum to 1 within this (float32 softmax over many classes).
SUM_TOLERANCE = 1e-3


class PluginFailure(HarnessError):
    """A plugin's hook raised or broke its contract; the message names plugin and hook."""


def who(registry: Any, kind: str, name: str) -> str:
    """``sampler 'x' (plugin 'mod', harness-foo 1.0)`` for messages."""
    entry = getattr(registry, "entries", {}).get(kind, {}).get(name)
    if entry is None:
        return f"{kind[:-1]} {name!r}"
    dist = registry.distributions.get(entry.plugin) or "no installed distribution"
    return f"{kind[:-1]} {name!r} (plugin {entry.plugin!r}, {dist})"


def _where(run: str | None) -> str:
    return f" in run {run}" if run else ""


def call(plugin: str, hook: str, fn: Callable[..., Any], *args: Any, run: str | None = None,
         **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``; any exception but a ``HarnessError`` (already one line,
    naming what the user must fix) becomes a ``PluginFailure`` naming ``plugin`` and ``hook``."""
    try:
        return fn(*args, **kwargs)
    except HarnessError:
        raise
    except Exception as exc:
        raise PluginFailure(f"{plugin} failed in {hook}{_where(run)}: "
                            f"{type(exc).__name__}: {' '.join(str(exc).split())}") from exc


def broken(plugin: str, hook: str, problem: str, run: str | None = None) -> PluginFailure:
    return PluginFailure(f"{plugin} broke its contract in {hook}{_where(run)}: {problem}")


def check_indices(values: Any, n: int, plugin: str, hook: str, what: str,
                  run: str | None = None) -> np.ndarray:
    """An integer index array into ``n`` items."""
    try:
        array = np.asarray(values)
    except Exception:  # noqa: BLE001 - anything unconvertible is the plugin's mistake
        raise broken(plugin, hook, f"{what} is not an index array", run) from None
    if array.size and (array.ndim != 1 or not np.issubdtype(array.dtype, np.integer)):
        raise broken(plugin, hook, f"{what}: expected a 1-D array of integers, got "
                                   f"{array.dtype} of shape {array.shape}", run)
    outside = array[(array < 0) | (array >= n)] if array.size else array
    if outside.size:
        raise broken(plugin, hook, f"{what}: index {int(outside[0])} is outside "
                                   f"0..{n - 1}", run)
    return array.astype(np.int64, copy=False)


def check_probabilities(values: Any, rows: int, classes: int, plugin: str, hook: str,
                        run: str | None = None) -> np.ndarray:
    """``(rows, classes)`` finite probabilities in [0, 1] whose rows sum to 1."""
    try:
        probs = np.asarray(values, dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - wrong type: say what came back
        raise broken(plugin, hook, f"returned {type(values).__name__}, expected an array of "
                                   f"probabilities ({exc})", run) from None
    if probs.shape != (rows, classes):
        raise broken(plugin, hook, f"returned probabilities of shape {probs.shape}, expected "
                                   f"{(rows, classes)} (one row per image, one column per "
                                   "class)", run)
    if not np.isfinite(probs).all():
        raise broken(plugin, hook, "returned probabilities that are not finite (NaN or "
                                   "infinity: did the training diverge?)", run)
    bad = np.flatnonzero((probs < -1e-6).any(axis=1) | (probs > 1 + 1e-6).any(axis=1)
                         | (np.abs(probs.sum(axis=1) - 1) > SUM_TOLERANCE))
    if len(bad):
        raise broken(plugin, hook, f"row {int(bad[0])} of its probabilities is "
                                   f"{np.round(probs[bad[0]], 4).tolist()}: expected values "
                                   f"in [0, 1] that sum to 1 ({len(bad)} such rows)", run)
    return probs


class _Counted:
    """Batches passed through while counting their images (rows predict must return)."""

    def __init__(self, batches: Iterable[Any]):
        self.batches, self.n = batches, 0

    def __iter__(self) -> Iterator[Any]:
        for batch in self.batches:
            self.n += len(getattr(batch, "labels", batch))
            yield batch


class GuardedModel:
    """An engine's model whose every primitive is guarded, and whose ``predict`` result
    is checked: one row per image given, probabilities in [0, 1] summing to 1."""

    def __init__(self, model: Any, plugin: str, n_classes: int, run: str | None):
        self._model, self._plugin, self._classes, self._run = model, plugin, n_classes, run

    def predict(self, batches: Iterable[Any]) -> np.ndarray:
        counted = _Counted(batches)
        out = call(self._plugin, "predict", self._model.predict, counted, run=self._run)
        return check_probabilities(out, counted.n, self._classes, self._plugin, "predict",
                                   self._run)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._model, name)
        if not callable(value):
            return value

        def guarded(*args: Any, **kwargs: Any) -> Any:
            return call(self._plugin, name, value, *args, run=self._run, **kwargs)

        return guarded


def guarded_build(build: Callable[[Any], Any], plugin: str, run: str | None
                  ) -> Callable[[Any], Any]:
    """The engine's ``build`` guarded, returning a ``GuardedModel``."""

    def build_guarded(context: Any) -> GuardedModel:
        model = call(plugin, "build", build, context, run=run)
        if model is None:
            raise broken(plugin, "build", "returned None, expected a model", run)
        return GuardedModel(model, plugin, int(context.n_classes), run)

    return build_guarded
