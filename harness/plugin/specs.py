"""What plugins register: one typed spec per kind of thing.

Plugins hand these to the ``register`` callback of a hook (see ``hookspecs.py``). Specs hold
callables, never framework objects, so that building the registry imports no framework.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypeVar

import numpy as np
from pydantic import AfterValidator, ValidationInfo

from harness.config.suite import DEFAULT_CLASSES
from harness.config.validate import suggest

# A backbone's spec and its weights are declared in ``harness.plugin.backbone`` (the
# engine's context holds a ``BackboneSpec``, and this module names that context); listed
# here with every other plugin kind's spec.
from harness.plugin.backbone import (  # noqa: F401
    BACKBONE_CONTRACT,
    RANDOM_NAMES,
    RANDOM_WEIGHTS,
    WEIGHT_FILE_SUFFIXES,
    BackboneBuilder,
    BackboneSpec,
    UnknownWeights,
    WeightSource,
    is_weights_file,
)
from harness.plugin.options import Options

if TYPE_CHECKING:
    import pandas as pd

    from harness.config.suite import RunSpec
    from harness.plugin.engine import EngineContext, EngineModel

O_contra = TypeVar("O_contra", bound=Options, contravariant=True)

#: Columns every records table has (datasets may add more, e.g. ``age``).
RECORD_COLUMNS = ("uid", "path", "label", "patient_id", "source", "view")


# ------------------------------------------------------------------ options checked against a suite


@dataclass(frozen=True)
class OptionsContext:
    """What a suite fixes that a plugin's options can be checked against before any run.

    An option that names one of the suite's classes (a sampler's ``quotas`` keys, a
    dataset's label ``mapping``), one of its datasets, or depends on its number of folds can
    only be checked against the suite. The core validates every option block of a suite
    with this object as pydantic's validation context (``harness run --dry-run``
    included), so such a check is part of the options model, in one of two ways:

    - a field typed with :data:`ClassName` (one of the suite's classes), :data:`ClassKey`
      (a class by name or by 0-based index) or :data:`DatasetName`, e.g.
      ``quotas: dict[ClassName, int]``;
    - a pydantic validator that takes ``info`` and reads :func:`suite_of`, raising
      ``ValueError(message)`` when the value does not fit, e.g.
      ``@field_validator("alpha")`` checking one number per class.

    The core turns the failure into one line naming the suite file and the key path
    (``suite.yaml: samplers.phased.quotas.covd: unknown class 'covd'. Did you mean
    'covid19'? Expected one of: normal, pneumonia, covid19``) and exit code 2. Options
    built outside a suite (``Options.of``, a plugin function called directly) have no
    context: :func:`suite_of` returns ``None`` and these checks pass, so a plugin that is
    also called that way keeps its own check where it uses the value.
    """

    classes: tuple[str, ...] = DEFAULT_CLASSES
    #: The names of the suite's datasets (``datasets[*].name``), in order.
    datasets: tuple[str, ...] = ()
    #: ``split.folds``; ``None`` outside a suite's split.
    folds: int | None = None


def suite_of(info: ValidationInfo) -> OptionsContext | None:
    """The suite an options model is being validated for, or ``None`` outside a suite."""
    context = getattr(info, "context", None)
    return context if isinstance(context, OptionsContext) else None


def unknown_value(what: str, value: Any, known: Sequence[str]) -> str:
    """``unknown class 'covd'. Did you mean 'covid19'? Expected one of: ...``."""
    close = suggest(str(value), list(known))
    hint = f" Did you mean {close!r}?" if close else ""
    return f"unknown {what} {value!r}.{hint} Expected one of: {', '.join(known)}"


def _class_name(value: str, info: ValidationInfo) -> str:
    suite = suite_of(info)
    if suite is not None and value not in suite.classes:
        raise ValueError(unknown_value("class", value, suite.classes))
    return value


def _class_key(value: str | int, info: ValidationInfo) -> str | int:
    suite = suite_of(info)
    if suite is None or (isinstance(value, str) and value in suite.classes):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value < len(suite.classes):
            return value
        raise ValueError(f"class index {value} is out of range: the suite has "
                         f"{len(suite.classes)} classes ({', '.join(suite.classes)})")
    raise ValueError(unknown_value("class", value, suite.classes))


def _dataset_name(value: str, info: ValidationInfo) -> str:
    suite = suite_of(info)
    if suite is not None and suite.datasets and value not in suite.datasets:
        raise ValueError(unknown_value("dataset", value, suite.datasets))
    return value


#: An option value naming one of the suite's classes (see :class:`OptionsContext`).
ClassName = Annotated[str, AfterValidator(_class_name)]
#: One of the suite's classes by name, or by its 0-based index in ``classes``.
ClassKey = Annotated[str | int, AfterValidator(_class_key)]
#: An option value naming one of the suite's datasets.
DatasetName = Annotated[str, AfterValidator(_dataset_name)]


@dataclass(frozen=True)
class DatasetContext:
    """What the runner tells a dataset besides its options.

    ``suite_dir`` is the folder of the suite file: relative paths in options (``root``)
    resolve against it.
    """

    classes: tuple[str, ...] = DEFAULT_CLASSES
    suite_dir: Path = Path(".")
    name: str = ""

    def resolve(self, path: str | Path) -> Path:
        """``path`` made absolute: relative paths are relative to the suite file's folder."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else self.suite_dir / path


class RecordsFn(Protocol[O_contra]):
    def __call__(self, options: O_contra, context: DatasetContext) -> pd.DataFrame: ...


class ReadImageFn(Protocol[O_contra]):
    def __call__(self, record: Mapping[str, Any], options: O_contra,
                 context: DatasetContext) -> np.ndarray: ...


class FingerprintFn(Protocol[O_contra]):
    def __call__(self, options: O_contra, context: DatasetContext) -> str: ...


class VersionFn(Protocol[O_contra]):
    def __call__(self, options: O_contra, context: DatasetContext) -> dict[str, Any]: ...


@dataclass(frozen=True)
class DatasetSpec:
    """A source of labelled chest X-rays.

    ``records(options, context)`` returns a ``pandas.DataFrame`` with at least
    ``RECORD_COLUMNS`` (``label`` already mapped to ``context.classes``, rows that cannot be
    used dropped) and may carry ``attrs["exclusions"]``: a ``{reason: count}`` dict of
    dropped rows. ``read_image(record, options, context)`` returns a 2-D ``uint8`` grayscale
    array for one row (it runs in worker processes: keep it picklable).
    ``fingerprint(options, context)`` returns a string that changes whenever the content
    changes; the image cache is keyed by it. ``version(options, context)`` returns a
    JSON-able dict recorded in every run's ``config.json`` (e.g. ``{"git_commit": ...}`` or
    ``{"content_sha256": ...}`` and the label mapping in force), so a result says which data
    it came from. ``options`` is an instance of the spec's ``options`` model, already
    validated. ``fetch(dest, options)`` gets a copy into ``dest`` (or explains how) for
    ``harness data fetch NAME DEST``; its ``options`` holds the command's ``--commit`` and
    ``--url``. It returns the lines to print. ``distinct_images`` declares that no two
    records show one radiograph (generated data): the near-duplicate search skips the
    dataset. ``check(options, context) -> list[str]`` (optional) says cheaply, without
    reading the images, what is missing from the copy on disk (root, metadata file, image
    folder): one line per problem, none when it looks usable; ``harness run --dry-run``
    (and ``harness run`` before it decodes anything) reports them all at once.
    """

    name: str
    description: str
    records: RecordsFn[Any]
    read_image: ReadImageFn[Any]
    options: type[Options] = Options
    fingerprint: FingerprintFn[Any] | None = None
    version: VersionFn[Any] | None = None
    fetch: Callable[[Any, Mapping[str, Any]], str] | None = None
    distinct_images: bool = False
    check: Callable[[Any, DatasetContext], list[str]] | None = None


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
    ``selectable``: the run's checkpoint may be chosen after this phase's epochs (cRT picks
    its checkpoint in the classifier stage only); the selection schedule counts only
    selectable epochs.
    """

    indices: list[int]
    sample_weights: list[float] | None = None
    draws: int | None = None
    head_only: bool = False
    epochs: int | None = None
    classifier_only: bool = False
    reset_classifier: bool = False
    balanced_batches: bool = False
    selectable: bool = True

    def images_per_epoch(self) -> int:
        if self.sample_weights is not None:
            return self.draws if self.draws is not None else len(self.indices)
        return len(self.indices)


@dataclass
class Plan:
    """What a sampler decided: which images in which phase, and how the loss is weighted.

    The core's loop applies a plan the same way whatever the engine: phases in order, model
    and optimizer state carried over; ``class_weights`` multiply the per-sample loss;
    ``loss`` is ``"cross_entropy"`` or ``"focal"`` (``loss_options``: ``gamma``, and ``alpha``, one weight per class or
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

    def selectable_epochs(self, epochs_per_phase: int) -> int:
        """Epochs after which the checkpoint may be chosen (``Phase.selectable``)."""
        return sum(p.epochs or epochs_per_phase for p in self.phases if p.selectable)

    def to_json(self) -> dict[str, Any]:
        return {
            "phases": [vars(p) for p in self.phases],
            "class_weights": self.class_weights,
            "loss": self.loss,
            "loss_options": self.loss_options,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class SamplerContext:
    """What the runner tells a sampler besides its options.

    ``budget`` is the number of images the run must see (the suite's ``budget`` rule,
    resolved: ``equal`` becomes the reference sampler's budget on the same fold) or ``None``
    for the strategy's natural budget; meet it with :func:`harness.meet_budget`.
    ``split_phases``: phases fixed by the split (positions into ``labels``), when the
    splitter has them (the authors' published phase files).
    """

    classes: tuple[str, ...]
    rng: np.random.Generator
    budget: int | None = None
    epochs_per_phase: int = 1
    split_phases: list[list[int]] | None = None
    fold: int = 1
    seed: int = 0


class PlanFn(Protocol[O_contra]):
    def __call__(self, labels: np.ndarray, options: O_contra, context: SamplerContext) -> Plan: ...


@dataclass(frozen=True)
class SamplerSpec:
    """An imbalance strategy: ``plan(labels, options, context) -> Plan``.

    ``labels`` is an int array of training-set class indices (into ``context.classes``);
    randomness comes from ``context.rng`` only, so the plan is a pure function of its
    arguments. A plan must meet ``context.budget`` when it is set (``harness.meet_budget``
    does it), or ``budget: equal`` compares strategies unfairly. ``needs`` lists the optional
    engine primitives its plans call (``"reset_classifier"`` when a phase re-draws the
    classifier): a suite that pairs it with an engine lacking one is refused before it runs.
    """

    name: str
    description: str
    plan: PlanFn[Any]
    options: type[Options] = Options
    source: str = ""
    needs: tuple[str, ...] = ()


@dataclass
class Fold:
    """Index arrays (into the records table) of one fold."""

    train: np.ndarray
    select: np.ndarray
    test: np.ndarray
    #: Optional fixed phases from the splitter (the authors' published phase files).
    phases: list[np.ndarray] | None = None


@dataclass(frozen=True)
class SplitterContext:
    """What the runner tells a splitter: the suite's ``split`` settings and its folder."""

    folds: int
    seed: int = 0
    #: Fraction of the training patients held out for model selection.
    select_fraction: float = 0.15
    classes: tuple[str, ...] = DEFAULT_CLASSES
    suite_dir: Path = Path(".")

    def resolve(self, path: str | Path) -> Path:
        path = Path(path).expanduser()
        return path if path.is_absolute() else self.suite_dir / path


class SplitFn(Protocol[O_contra]):
    def __call__(self, records: pd.DataFrame, options: O_contra,
                 context: SplitterContext) -> list[Fold]: ...


@dataclass(frozen=True)
class SplitterSpec:
    """How records are divided into folds: ``split(records, options, context) -> [Fold]``.

    Returns ``context.folds`` folds; no patient may appear in two of a fold's parts (the
    core checks). ``check(options, context) -> list[str]`` (optional): what is missing from
    the files the splitter reads, as for ``DatasetSpec.check``.
    """

    name: str
    description: str
    split: SplitFn[Any]
    options: type[Options] = Options
    check: Callable[[Any, SplitterContext], list[str]] | None = None


class BuildFn(Protocol):
    def __call__(self, context: EngineContext) -> EngineModel: ...


class CheckBackboneFn(Protocol):
    def __call__(self, build: Callable[[], Any], image_size: int) -> str | None: ...


@dataclass(frozen=True)
class EngineSpec:
    """A training framework: ``build(context) -> model`` with the primitives of
    ``harness.plugin.engine.EngineModel`` (train an epoch over given batches, predict,
    get/set state and weights, freeze parts; optionally reset the classifier). When
    ``build`` is the model's class, ``--dry-run`` reads the primitives it has from it.

    The core's loop (``harness.training.loop``) does everything else. ``build`` is called
    inside a worker process, so it may import its framework; the module that registers the
    engine must not import the framework at import time. ``framework`` is the top-level
    module of the framework (``torch``, ``tensorflow``): runs of different frameworks never
    share a process, and commands pick an installed engine by it. ``check_backbone(build,
    image_size)`` calls ``build()`` (the backbone's builder with its options, no weights)
    and returns ``None`` when the model meets ``BACKBONE_CONTRACT[name]`` or a one-line
    problem; it runs once per backbone when a suite is validated, in a child process.
    ``backbones`` names the ``BackboneSpec.builders`` entry the engine builds backbones with
    (default: its own name): a new engine on an existing framework sets ``"torch"`` (or
    ``"keras"``) to build every backbone written for that framework (``builder``).
    ``install`` is the command that installs the framework (``pip install
    'cxr-harness[tf]'``): every command that needs a missing framework names it in one line.
    ``libraries`` are the other distributions whose versions change the engine's numbers
    (``("timm",)``: timm builds the torch networks); with the framework they are recorded in
    every run's ``config.json`` and part of its fingerprint, so a new version marks runs stale.
    """

    name: str
    description: str
    build: BuildFn
    framework: str = ""
    libraries: tuple[str, ...] = ()
    check_backbone: CheckBackboneFn | None = None
    backbones: str = ""
    install: str = ""

    @property
    def builder(self) -> str:
        """The ``BackboneSpec.builders`` key of this engine."""
        return self.backbones or self.name


class WorkFn(Protocol):
    """What an executor does with each pending run (``harness.runs.runner.Work``).

    ``work(run, env)`` trains the run here and waits (a failed run is recorded, not raised).
    Executors that start workers elsewhere use the parts: ``run_dir(run)`` for
    ``python -m harness.runs.worker RUN_DIR`` on the remote side, ``started(run, where)``
    when it is handed over, ``finished(run, code, seconds, error)`` when its worker exited.
    ``finished`` raises under ``--fail-fast`` or when the run was interrupted: cancel what
    is pending and let the exception go on.
    """

    def __call__(self, run: RunSpec, env: Mapping[str, str] | None = None) -> None: ...

    def run_dir(self, run: RunSpec) -> Path: ...

    def started(self, run: RunSpec, where: str = "training") -> None: ...

    def finished(self, run: RunSpec, code: int | None, seconds: float,
                 error: str = "") -> Any: ...

    def submitted(self, run: RunSpec, job: str) -> None:
        """Record in the run folder where the run waits (``slurm job 1234``)."""


class ExecuteFn(Protocol[O_contra]):
    def __call__(self, runs: Sequence[RunSpec], work: WorkFn, options: O_contra) -> None: ...


@dataclass(frozen=True)
class ExecutorSpec:
    """Where runs execute: ``execute(runs, work, options) -> None``.

    ``runs`` are the pending ``RunSpec`` objects; ``work`` (:class:`WorkFn`) performs or
    records each run, ``env`` being added to the worker's environment (e.g.
    ``CUDA_VISIBLE_DEVICES``). An executor whose options have ``parallel`` runs at most
    that many at once.

    ``detach``: the executor can hand runs to a scheduler and leave (``harness run
    --detach``): when ``work.detach`` is true, ``execute`` returns once every run is
    submitted, having called ``work.submitted(run, job)`` for each; the run folders then
    say how the runs go on (``harness status``).
    """

    name: str
    description: str
    execute: ExecuteFn[Any]
    options: type[Options] = Options
    detach: bool = False


@dataclass(frozen=True)
class TrackerSpec:
    """An experiment tracker: ``create(options) -> harness.Tracker`` (``options`` validated).

    ``create`` is called once per process that reports to it (the ``harness run`` process
    and each run's worker), so it must be cheap and must not fail for a server that is
    down: connect lazily, in the tracker's methods (the core calls them off the training
    thread, with a time limit).
    """

    name: str
    description: str
    create: Callable[[Any], Any]
    options: type[Options] = Options


@dataclass(frozen=True)
class Family:
    """Many things of one kind, named ``<prefix><member>``, resolved when a name is used.

    A library that offers hundreds of models (timm) cannot register each one up front, and
    should not be imported to build the registry. A plugin registers one family instead,
    through the hook of the kind it provides (``register_backbones`` for backbones); the
    registry asks it for a name that starts with ``prefix`` and is not registered itself.

    ``resolve(member)`` gets the name without the prefix and returns the spec of that kind
    (named ``prefix + member``), or raises ``LookupError(message)`` when there is no such
    member; the message (a close match helps) becomes the one-line unknown-name error.
    ``members(pattern)`` lists the member names matching a shell-style pattern, for
    ``harness list KIND PATTERN``. Both may import the library they wrap.
    """

    prefix: str
    description: str
    resolve: Callable[[str], Any]
    members: Callable[[str], Sequence[str]] | None = None

    @property
    def name(self) -> str:
        """The family as ``--NAME`` of ``harness list``: the prefix without its separator."""
        return self.prefix.rstrip("/:.")

