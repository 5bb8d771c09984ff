"""Hook specifications: every extension point of cxr-harness, declared in one place.

A plugin is any module (or object) with functions named like the hooks below, decorated
with ``harness.hookimpl``. Each hook receives a ``register`` callback and calls it once per
thing it provides. Plugins are found through the ``harness`` entry-point group (the built-in
ones too) and through the ``plugins:`` list of a suite.

Hooks are called once, when the plugin registry is first built (``harness list``, or at the
start of ``harness run``). They must be cheap: never import torch or TensorFlow here.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from harness.plugin.specs import (
    BackboneSpec,
    DatasetSpec,
    EngineSpec,
    ExecutorSpec,
    SamplerSpec,
    SplitterSpec,
    TrackerSpec,
)

PROJECT = "harness"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register datasets of labelled chest X-rays.

    :param register: call it with one :class:`~harness.plugin.specs.DatasetSpec` per dataset.

    Called once when the registry is built. The spec's callables run later, when a suite
    that names the dataset is prepared.
    """


@hookspec
def register_backbones(register: Callable[[BackboneSpec], None]) -> None:
    """Register feature extractors (backbones).

    :param register: call it with one :class:`~harness.plugin.specs.BackboneSpec` per backbone,
        whose ``builders`` map engine names to model builders.

    Called once when the registry is built. Builders run only inside a worker process.
    """


@hookspec
def register_samplers(register: Callable[[SamplerSpec], None]) -> None:
    """Register imbalance strategies (samplers).

    :param register: call it with one :class:`~harness.plugin.specs.SamplerSpec` per strategy.

    Called once when the registry is built. ``plan`` is called once per run, with the
    training labels of that run's fold.
    """


@hookspec
def register_splitters(register: Callable[[SplitterSpec], None]) -> None:
    """Register ways of dividing records into folds.

    :param register: call it with one :class:`~harness.plugin.specs.SplitterSpec` per split kind.

    Called once when the registry is built; ``split`` is called once per suite.
    """


@hookspec
def register_engines(register: Callable[[EngineSpec], None]) -> None:
    """Register training engines: a framework's primitives (``harness.plugin.engine``) that
    the core's loop calls to train a backbone over a plan.

    :param register: call it with one :class:`~harness.plugin.specs.EngineSpec` per engine.

    Called once when the registry is built. ``EngineSpec.build`` runs in a worker process,
    one process per run, so two frameworks never share a process.
    """


@hookspec
def register_executors(register: Callable[[ExecutorSpec], None]) -> None:
    """Register executors: where and how the pending runs of a suite are carried out.

    :param register: call it with one :class:`~harness.plugin.specs.ExecutorSpec` per executor.

    Called once when the registry is built; ``execute`` is called once per ``harness run``.
    """


@hookspec
def register_trackers(register: Callable[[TrackerSpec], None]) -> None:
    """Register experiment trackers (MLflow, TensorBoard, …) that a suite names in ``trackers:``.

    :param register: call it with one :class:`~harness.plugin.specs.TrackerSpec` per tracker.

    Called once when the registry is built. A tracker's methods (``harness.Tracker``) are
    called for the suite in the ``harness run`` process and for each run in its worker
    process; they must not import a training framework.
    """
