"""What plugins register: one typed spec per kind of thing.

Plugins hand these to the ``register`` callback of a hook (see ``hookspecs.py``). Specs hold
callables, never framework objects, so that building the registry imports no framework.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

#: The three classes of the paper, in the order used for probability columns.
DEFAULT_CLASSES = ("normal", "pneumonia", "covid19")

#: Columns every records table has (datasets may add more, e.g. ``age``).
RECORD_COLUMNS = ("uid", "path", "label", "patient_id", "source", "view")


@dataclass(frozen=True)
class Option:
    """One option a plugin accepts in a suite, with its default and a one-line help."""

    name: str
    help: str
    default: Any = None
    required: bool = False


@dataclass(frozen=True)
class DatasetSpec:
    """A source of labelled chest X-rays.

    ``records(options)`` returns a ``pandas.DataFrame`` with at least ``RECORD_COLUMNS``
    (``label`` already mapped to the suite's class names, rows that cannot be used dropped)
    and may carry ``attrs["exclusions"]``: a ``{reason: count}`` dict of dropped rows.
    ``read_image(record, options)`` returns a 2-D ``uint8`` grayscale array for one row.
    ``fingerprint(options)`` returns a string that changes whenever the content changes; the
    image cache is keyed by it. ``version(options)`` returns a JSON-able dict recorded in
    every run's ``config.json`` (e.g. ``{"git_commit": ...}`` or ``{"content_sha256": ...}``
    and the label mapping in force), so a result says which data it came from.
    ``fetch(dest, options)`` gets a copy into ``dest`` (or explains how) for ``harness data
    fetch NAME DEST``; ``options`` holds the command's ``--commit`` and ``--url``. It returns
    the lines to print. ``distinct_images`` declares that no two records show one
    radiograph (generated data): the near-duplicate search skips the dataset.
    """

    name: str
    description: str
    records: Callable[[Mapping[str, Any]], Any]
    read_image: Callable[[Mapping[str, Any], Mapping[str, Any]], np.ndarray]
    options: Sequence[Option] = ()
    fingerprint: Callable[[Mapping[str, Any]], str] | None = None
    version: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    fetch: Callable[[Any, Mapping[str, Any]], str] | None = None
    distinct_images: bool = False


@dataclass(frozen=True)
class BackboneSpec:
    """A feature extractor, buildable in one or more engines.

    ``builders`` maps an engine name (``"torch"``, ``"keras"``) to a callable
    ``build(image_size, weights, options) -> model`` returning a framework model that maps a
    ``(B, 3, S, S)`` / ``(B, S, S, 3)`` batch to a feature map. The classifier head is added by
    the engine, so every backbone shares it.
    """

    name: str
    description: str
    builders: Mapping[str, Callable[..., Any]]
    options: Sequence[Option] = ()


@dataclass
class Phase:
    """One training phase: the images iterated every epoch of the phase.

    ``indices`` are positions into the training labels given to the sampler. When
    ``sample_weights`` is set, each epoch draws ``draws`` (default ``len(indices)``) images
    with replacement using these weights (a fresh draw per epoch). ``head_only`` freezes the
    backbone (the head trains); ``classifier_only`` freezes everything but the final linear
    classifier; ``reset_classifier`` re-draws that layer at the phase's start (cRT, Kang et
    al. 2020: ``classifier_only`` + ``reset_classifier``). ``balanced_batches`` orders each
    epoch's ``images_per_epoch()`` images so that every batch holds the same number of
    images of each class (``harness.training.balanced``), each class's images cycled.
    """

    indices: list[int]
    sample_weights: list[float] | None = None
    draws: int | None = None
    head_only: bool = False
    epochs: int | None = None
    classifier_only: bool = False
    reset_classifier: bool = False
    balanced_batches: bool = False

    def images_per_epoch(self) -> int:
        if self.sample_weights is not None:
            return self.draws if self.draws is not None else len(self.indices)
        return len(self.indices)


@dataclass
class Plan:
    """What a sampler decided: which images in which phase, and how the loss is weighted.

    Engines apply a plan identically: phases in order, model and optimizer state carried
    over; ``class_weights`` multiply the per-sample loss; ``loss`` is ``"cross_entropy"``
    or ``"focal"`` (``loss_options``: ``gamma``, and ``alpha``, one weight per class or
    ``None``); see ``harness.training.optim``.
    """

    phases: list[Phase]
    class_weights: list[float] | None = None
    loss: str = "cross_entropy"
    loss_options: dict[str, Any] = field(default_factory=dict)
    notes: str = ""

    def budget(self, epochs_per_phase: int) -> int:
        """Images seen in training (the equal-budget rule compares strategies on this)."""
        return sum(p.images_per_epoch() * (p.epochs or epochs_per_phase) for p in self.phases)

    def to_json(self) -> dict[str, Any]:
        return {
            "phases": [vars(p) for p in self.phases],
            "class_weights": self.class_weights,
            "loss": self.loss,
            "loss_options": self.loss_options,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class SamplerSpec:
    """An imbalance strategy: ``plan(labels, rng, options) -> Plan``.

    ``labels`` is an int array of training-set class indices, ``rng`` a seeded
    ``numpy.random.Generator``; the plan must be a pure function of these three.
    """

    name: str
    description: str
    plan: Callable[[np.ndarray, np.random.Generator, Mapping[str, Any]], Plan]
    options: Sequence[Option] = ()
    source: str = ""


@dataclass
class Fold:
    """Index arrays (into the records table) of one fold."""

    train: np.ndarray
    select: np.ndarray
    test: np.ndarray
    #: Optional fixed phases from the splitter (the authors' published phase files).
    phases: list[np.ndarray] | None = None


@dataclass(frozen=True)
class SplitterSpec:
    """How records are divided into folds: ``split(records, n_folds, seed, options)``.

    Returns a list of ``Fold``; no patient may appear in two of a fold's parts.
    """

    name: str
    description: str
    split: Callable[..., list[Fold]]
    options: Sequence[Option] = ()


class TrainJob(Protocol):
    """What an engine receives (see ``harness.runs.job.Job`` for the concrete class)."""

    run_dir: Any
    config: Any


@dataclass(frozen=True)
class EngineSpec:
    """A training framework: ``build(context) -> model`` with the primitives of
    ``harness.training.engine.EngineModel`` (train an epoch over given batches, predict,
    get/set state and weights, freeze parts, reset the classifier).

    The core's loop (``harness.training.loop``) does everything else. ``build`` is called
    inside a worker process, so it may import its framework; the module that registers the
    engine must not import the framework at import time. ``framework`` names the framework
    (``torch``, ``tensorflow``): runs of different frameworks never share a process.
    """

    name: str
    description: str
    build: Callable[[Any], Any]
    framework: str = ""


@dataclass(frozen=True)
class ExecutorSpec:
    """Where runs execute: ``execute(runs, work) -> None``.

    ``work(run)`` performs one run (it never raises; failures are recorded by the runner).
    ``runs`` are the pending ``RunSpec`` objects; ``options`` come from the suite.
    """

    name: str
    description: str
    execute: Callable[..., None]
    options: Sequence[Option] = ()


@dataclass(frozen=True)
class TrackerSpec:
    """An experiment tracker: ``create(options) -> harness.Tracker``.

    ``create`` is called once per process that reports to it (the ``harness run`` process
    and each run's worker), so it must be cheap and must not fail for a server that is
    down: connect lazily, in the tracker's methods (the core calls them off the training
    thread, with a time limit).
    """

    name: str
    description: str
    create: Callable[[Mapping[str, Any]], Any]
    options: Sequence[Option] = ()
