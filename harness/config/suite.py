"""The suite model: a YAML file validated into typed dataclasses, and its run matrix.

A suite says what to train (datasets, split, matrix of backbone × sampler × engine × fold ×
seed) and how (training settings). ``expand`` turns it into ``RunSpec`` objects whose
``run_id`` is stable: the same settings always give the same id, changed settings a new one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from harness.config.frozen import freeze, thaw
from harness.config.overrides import apply_overrides, blame_override
from harness.config.shipped import find_suite, shipped_suites
from harness.config.validate import SuiteError, between, to_dataclass
from harness.config.yaml_loader import load_yaml
from harness.names import SLUG_RE

#: ``training.normalization`` values that name a scaling (``auto`` picks one of them).
NORMALIZATIONS = ("unit", "imagenet", "inception")

#: The three classes of the paper, in the order used for probability columns.
DEFAULT_CLASSES = ("normal", "pneumonia", "covid19")

#: A suite name becomes the folder ``runs/<name>`` and ``reports/<name>``: a slug, never a path.
NAME_RE = SLUG_RE
CLASS_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._+-]{0,63}")
MODULE_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
# Bounds that keep every setting runnable (and every count inside int64): far beyond any
# real use, well before overflow or an allocation no machine has.
MAX_FOLDS = 100
MAX_SEED = 2**32 - 1
MAX_EPOCHS = 100_000
MAX_BATCH = 65_536
MAX_IMAGE_SIZE = 4096
MAX_BUDGET = 10**12


def _freeze_fields(obj: Any, *names: str) -> None:
    """Freeze the container fields of a frozen dataclass (``harness.config.frozen``): the
    settings a resolved run holds cannot change, not even inside."""
    for name in names:
        object.__setattr__(obj, name, freeze(getattr(obj, name)))


@dataclass(frozen=True)
class DatasetRef:
    name: str
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _freeze_fields(self, "options")


@dataclass(frozen=True)
class SplitConfig:
    kind: str = "grouped-kfold"
    folds: int = field(default=5, metadata=between(2, MAX_FOLDS))
    seed: int = field(default=0, metadata=between(0, MAX_SEED))
    #: Fraction of the training patients held out for model selection (``holdout``).
    select_fraction: float = 0.15
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _freeze_fields(self, "options")

    def check(self):
        if not 0.0 < self.select_fraction < 1.0:
            return "select_fraction", f"expected a number in (0, 1), got {self.select_fraction}"
        return None


@dataclass
class Matrix:
    backbone: list[str] = field(default_factory=lambda: ["tiny"])
    sampler: list[str] = field(default_factory=lambda: ["phased"])
    engine: list[str] = field(default_factory=lambda: ["torch"])
    #: 1-based fold numbers; empty means every fold of the split.
    fold: list[int] = field(default_factory=list, metadata=between(1, MAX_FOLDS))
    seed: list[int] = field(default_factory=lambda: [0], metadata=between(0, MAX_SEED))

    def check(self):
        for key in ("backbone", "sampler", "engine", "seed"):
            values = getattr(self, key)
            if not values:
                return key, "expected a non-empty list"
        for key in ("backbone", "sampler", "engine", "fold", "seed"):
            values = getattr(self, key)
            if len(set(values)) != len(values):
                twice = next(v for v in values if values.count(v) > 1)
                return key, f"{twice!r} is listed twice; each value once"
        return None


@dataclass(frozen=True)
class Augmentation:
    """The paper's Table 2 augmentation, applied per sample on the device."""

    hflip: bool = True
    vflip: bool = True
    rotation: float = field(default=360.0, metadata=between(0, 360))
    zoom: float = field(default=0.05, metadata=between(0, 0.9))
    shift: float = field(default=0.05, metadata=between(0, 0.9))
    shear: float = field(default=0.05, metadata=between(0, 0.9))
    fill: Literal["nearest", "constant", "reflect"] = "nearest"
    enabled: bool = True


@dataclass(frozen=True)
class Training:
    epochs_per_phase: int = field(default=100, metadata=between(1, MAX_EPOCHS))
    batch_size: int = field(default=30, metadata=between(1, MAX_BATCH))
    optimizer: Literal["nadam", "adam", "sgd", "adamw"] = "nadam"
    lr: float = field(default=1e-4, metadata=between(0, 10, above=True))
    weight_decay: float = field(default=0.0, metadata=between(0, 10))
    head: Literal["paper", "gap"] = "paper"
    weights: str = "imagenet"
    #: ``holdout``: the splitter's selection split (patient-grouped, from training);
    #: ``last``: last epoch; ``paper``: the authors' set drawn from the test set (optimistic).
    selection: Literal["holdout", "last", "paper"] = "holdout"
    #: ``selection: paper``: test images per class in the selection set (the authors: 300
    #: normal + 300 pneumonia + every COVID-19 test image, 631 in all).
    select_per_class: int = field(default=300, metadata=between(1, 10**9))
    #: Figure that picks the best epoch on the selection split (the paper: accuracy).
    selection_metric: Literal["balanced_accuracy", "accuracy"] = "balanced_accuracy"
    #: Score the selection split after every k-th epoch of the run (and after the last).
    select_every: int = field(default=1, metadata=between(1, MAX_EPOCHS))
    #: When set: exactly this many selection scores per run, spread evenly over its epochs
    #: (the last included), so strategies with different epoch counts get equal chances.
    select_evaluations: int | None = field(default=None, metadata=between(1, 10**9))
    #: A resumable checkpoint every this many minutes (and at every phase end, and on
    #: SIGTERM/SIGINT); 0: only at phase ends and on signals.
    checkpoint_minutes: float = field(default=10.0, metadata=between(0, 10**6))
    #: Dropout rate of the head (the paper: 0.5).
    dropout: float = field(default=0.5, metadata=between(0, 0.99))
    #: CPU threads of the engine. The count changes the numbers (the order of summations),
    #: so it never depends on load: ``0`` is every core this process may use, resolved when
    #: the run is planned and recorded in its ``config.json`` (a run planned with another
    #: count is reported stale). Pin it for results that reproduce on any machine.
    threads: int = field(default=0, metadata=between(0, 4096))
    #: Deterministic kernels: torch's deterministic algorithms (cuDNN autotuning off, a
    #: fixed cuBLAS workspace), TensorFlow's op determinism. Costs speed on a GPU only.
    deterministic: bool = True
    #: Per-channel scaling of the [0, 1] input: ``unit`` none, ``imagenet`` ImageNet mean/std,
    #: ``inception`` to [-1, 1] (what Keras's Xception/ResNet50V2 and timm's Inception-style
    #: weights expect); ``auto``: what the run's weights declare (``WeightSource``), resolved
    #: when the run is planned and recorded in its ``config.json`` (the default: no weights
    #: and random initialisation give ``unit``; a weights file declares nothing, so a suite
    #: loading one states it). The run id hashes the setting as written (``auto``).
    normalization: Literal["unit", "imagenet", "inception", "auto"] = "auto"
    augmentation: Augmentation = field(default_factory=Augmentation)
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    compile: bool = False
    workers: int = field(default=0, metadata=between(0, 256))
    #: Cap on the batches of one epoch (quick trials); ``null``: every batch.
    max_steps_per_epoch: int | None = field(default=None, metadata=between(
        1, None, note="or null for no cap"))
    #: Options for the backbone's builder (e.g. ``members`` of ``concat``).
    backbone_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _freeze_fields(self, "backbone_options")



@dataclass
class ExecutorConfig:
    name: str = "local"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrackerRef:
    """A tracker the suite reports to (``trackers: [mlflow, {name: tensorboard}]``)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    #: Seconds the tracker may hold up a process in all before it is switched off.
    timeout: float = 30.0

    def check(self):
        if not self.timeout > 0:
            return "timeout", f"expected a number of seconds > 0, got {self.timeout}"
        return None


@dataclass(frozen=True)
class ReportConfig:
    title: str = ""
    bootstrap: int = field(default=1000, metadata=between(0, 100_000))
    #: Folds whose confusion matrices are drawn (the paper shows folds 1 and 3); empty: all.
    confusion_folds: list[int] = field(default_factory=list, metadata=between(1, MAX_FOLDS))
    #: Level of the comparison's tests, after correction within each family (``family``).
    alpha: float = field(default=0.05, metadata=between(0.0, 0.5, above=True))
    #: Multiple-comparison correction: Holm (family-wise error) or Benjamini-Hochberg (FDR).
    correction: Literal["holm", "fdr_bh"] = "holm"
    #: Which strategy tests are corrected together: ``figure``, one family per figure
    #: (every strategy-against-reference t-test of it), so α holds per figure (Demšar 2006;
    #: García & Herrera 2008); ``all``, every strategy test of a comparison in one family,
    #: so α holds for the comparison as a whole (with Holm never more flags than per figure;
    #: with Benjamini-Hochberg possibly more or fewer). The McNemar rows are always a family
    #: of their own.
    family: Literal["figure", "all"] = "figure"
    #: The class the comparison's McNemar tests and trade-off focus on; empty: the class
    #: named like COVID-19, else the rarest.
    focus_class: str = ""
    #: Strategies shown first and compared against, when present. Default: the built-in
    #: baseline and the paper's method.
    references: list[str] = field(default_factory=lambda: ["none", "phased"])
    #: Name of a suite whose runs chose checkpoints on test images (e.g.
    #: ``paper-clean-testselect`` for ``paper-clean``): the report adds the optimism gap
    #: against its runs in ``runs/`` and says whether the pair differs in selection alone.
    optimism_against: str = ""
    #: The figures the report of several strategies leads with (forest plot of differences
    #: from the first reference, mean-rank chart): ``balanced_accuracy``, ``macro_auroc``,
    #: ``macro_f1``, ``mcc`` or ``FIGURE:CLASS`` with FIGURE one of sensitivity, specificity,
    #: precision and CLASS a class or ``focus`` (``focus_class``).
    headline: list[str] = field(default_factory=lambda: list(HEADLINE))

    def __post_init__(self) -> None:
        _freeze_fields(self, "confusion_folds", "references", "headline")


#: The report's default headline figures (``report.headline``).
HEADLINE = ("balanced_accuracy", "sensitivity:focus", "macro_auroc")
HEADLINE_SUMMARY = ("balanced_accuracy", "macro_auroc", "macro_f1", "mcc")
HEADLINE_PER_CLASS = ("sensitivity", "specificity", "precision")


def headline_problem(key: str, classes: list[str]) -> str | None:
    """Why ``key`` is not a headline figure of ``classes`` (``None`` when it is)."""
    fig, sep, cls = key.partition(":")
    if not sep and key in HEADLINE_SUMMARY:
        return None
    if sep and fig in HEADLINE_PER_CLASS and (cls in classes or cls == "focus"):
        return None
    return (f"expected one of {', '.join(HEADLINE_SUMMARY)} or FIGURE:CLASS with FIGURE one "
            f"of {', '.join(HEADLINE_PER_CLASS)} and CLASS one of {', '.join(classes)} or "
            f"'focus', got {key!r}")


@dataclass
class Suite:
    name: str
    datasets: list[DatasetRef]
    description: str = ""
    plugins: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=lambda: list(DEFAULT_CLASSES))
    image_size: int = field(default=300, metadata=between(8, MAX_IMAGE_SIZE))
    cache_dir: str = ""
    on_bad_image: Literal["skip", "fail"] = "skip"
    split: SplitConfig = field(default_factory=SplitConfig)
    matrix: Matrix = field(default_factory=Matrix)
    training: Training = field(default_factory=Training)
    #: Per-backbone overrides of training settings (the paper: batch 30/30/20).
    backbones: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Options per sampler name (e.g. ``phased: {phases: 8}``).
    samplers: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Training budget (images seen) of every strategy: ``equal`` to the plan of
    #: ``budget_reference`` on the same fold, each strategy's ``natural`` one, or a fixed
    #: number of images.
    budget: int | Literal["equal", "natural"] = field(default="equal",
                                                      metadata=between(1, MAX_BUDGET))
    #: The sampler whose plan sets the budget under ``budget: equal`` (default: the paper's
    #: phased sampling).
    budget_reference: str = "phased"
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    #: Experiment trackers every run reports to (``mlflow``, ``tensorboard``, plugins).
    trackers: list[TrackerRef] = field(default_factory=list)
    report: ReportConfig = field(default_factory=ReportConfig)
    #: Where the suite file lives; relative dataset roots resolve against it.
    source: str = ""

    def check(self):
        if not NAME_RE.fullmatch(self.name):
            return "name", (f"expected a name of letters, digits, '.', '_' or '-' that starts "
                            f"with a letter or digit (at most 64; it names folders), "
                            f"got {self.name!r}")
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            return "classes", f"expected two or more distinct class names, got {self.classes}"
        for c in self.classes:
            if not CLASS_RE.fullmatch(c):
                return "classes", (f"expected class names of letters, digits, spaces, '.', "
                                   f"'_', '+' or '-' (at most 64), got {c!r}")
        if not self.datasets:
            return "datasets", "expected at least one dataset"
        for i, module in enumerate(self.plugins):
            if not MODULE_RE.fullmatch(module):
                return f"plugins[{i}]", f"expected a dotted module name, got {module!r}"
        if self.report.focus_class and self.report.focus_class not in self.classes:
            return "report.focus_class", (f"expected one of the classes "
                                          f"{', '.join(self.classes)}, got "
                                          f"{self.report.focus_class!r}")
        if not self.report.headline:
            return "report.headline", "expected at least one figure"
        for i, key in enumerate(self.report.headline):
            problem = headline_problem(key, self.classes)
            if problem:
                return f"report.headline[{i}]", problem
        return None


@dataclass(frozen=True)
class RunSpec:
    """One cell of the matrix: its keys, its id and its typed training settings.

    ``training`` has the per-backbone overrides merged and ``threads: 0`` resolved to the
    core count; ``sampler_options`` is the suite's option mapping of the sampler as written
    (part of the run id; ``harness.plugin.resolved.ResolvedRun`` holds it validated).
    """

    suite: str
    backbone: str
    sampler: str
    engine: str
    fold: int
    seed: int
    training: Training
    sampler_options: dict[str, Any]
    run_id: str

    def __post_init__(self) -> None:
        _freeze_fields(self, "sampler_options")

    def key(self) -> dict[str, Any]:
        return {"backbone": self.backbone, "sampler": self.sampler, "engine": self.engine,
                "fold": self.fold, "seed": self.seed}

    def combination(self) -> str:
        """The report groups folds and seeds of one combination together."""
        return f"{self.backbone} / {self.sampler} / {self.engine}"

    def to_json(self) -> dict[str, Any]:
        """``config.json``'s ``run`` section."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any, source: str) -> RunSpec:
        """Read back ``to_json()``; a damaged section is a ``SuiteError`` naming ``source``."""
        if not isinstance(data, dict):
            raise SuiteError(f"{source}: run: expected a mapping")
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in data]
        unknown = [k for k in data if k not in names]
        if missing or unknown:
            raise SuiteError(f"{source}: run: " + (f"missing {', '.join(missing)}" if missing
                                                   else f"unknown key(s) {', '.join(unknown)}"))
        return cls(**{**data, "training": training_from_json(data["training"], source,
                                                             "run.training")})


def training_from_json(data: Any, source: str, where: str = "training") -> Training:
    """Training settings as ``config.json`` records them (``asdict`` of a ``Training``),
    typed again; keys an older file lacks take ``Training``'s defaults."""
    return to_dataclass(data, Training, where, source)


DEFAULT_BUDGET_REFERENCE = Suite.__dataclass_fields__["budget_reference"].default


def load_suite(path: str | Path, overrides: Iterable[str] = ()) -> Suite:
    """Read and validate a suite file (or a shipped suite by name, ``demo``), with the
    command line's ``key.path=value`` overrides set first; every error names the file (or
    the override) and the key."""
    path = find_suite(path)
    if not path.is_file():
        names = ", ".join(shipped_suites())
        raise SuiteError(f"{path}: no such suite file"
                         + (f" (or shipped suite: {names})" if names else ""))
    data = load_yaml(path)  # strict: duplicate keys, depth, aliases, UTF-8
    return parse_suite(data, str(path), overrides)


def parse_suite(data: Any, source: str, overrides: Iterable[str] = ()) -> Suite:
    """Validate a suite mapping; ``overrides`` (``key.path=value``) are set on the raw
    mapping first, and a mistake in one is named as that override."""
    overrides = list(overrides)
    try:
        return _parse_suite(apply_overrides(data, overrides), source)
    except SuiteError as exc:
        raise blame_override(exc, overrides, source) from None


def _parse_suite(data: Any, source: str) -> Suite:
    if isinstance(data, dict):
        data = dict(data)
        data.setdefault("source", source)
        trackers = data.get("trackers")
        if isinstance(trackers, (list, str)):
            # A bare name stands for a tracker with its default options.
            data["trackers"] = [{"name": t} if isinstance(t, str) else t
                                for t in (trackers if isinstance(trackers, list) else [trackers])]
    suite = to_dataclass(data, Suite, "", source)
    for i, ref in enumerate(suite.datasets):
        if not ref.name:
            raise SuiteError(f"{source}: datasets[{i}].name: expected a dataset name")
    return suite


def suite_yaml(suite: Suite, overrides: Iterable[str] = ()) -> str:
    """The resolved suite as YAML (every default filled in), as ``--print-config`` shows it:
    a file that loads back to the same suite."""
    data = thaw(suite.model_dump(mode="json") if hasattr(suite, "model_dump")
                else dataclasses.asdict(suite))
    source = data.pop("source", "")
    head = f"# suite {suite.name!r} from {source or '(a mapping)'}"
    overrides = list(overrides)
    if overrides:
        head += f" with {' '.join(overrides)}"
    return head + "\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True,
                                            default_flow_style=None)


def training_for(suite: Suite, backbone: str) -> Training:
    """The suite's training settings with ``backbones.NAME``'s overrides merged, typed (a
    mistake in an override names its own key path)."""
    return to_dataclass(_merged_training(suite, backbone), Training,
                        f"backbones.{backbone}", suite.source or suite.name)


def _merged_training(suite: Suite, backbone: str) -> dict[str, Any]:
    """The merged settings as the suite wrote them: what the run id hashes."""
    return {**dataclasses.asdict(suite.training), **suite.backbones.get(backbone, {})}


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), busy or not: a fixed number, unlike
    the idle cores, which would make results depend on the machine's load."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolved_training(training: Training) -> Training:
    """Training settings as a run records them: ``threads: 0`` becomes the core count.

    The run id is computed from the suite's setting (``0``), so one suite plans the same ids
    on every machine; the resolved count is in ``config.json`` and its fingerprint.
    """
    if training.threads:
        return training
    return dataclasses.replace(training, threads=available_cores())


def run_id_for(key: dict[str, Any], resolved: dict[str, Any]) -> str:
    digest = hashlib.sha1(json.dumps(resolved, sort_keys=True).encode()).hexdigest()[:6]
    return (f"{key['backbone']}-{key['sampler']}-{key['engine']}"
            f"-f{key['fold']}-s{key['seed']}-{digest}")


def expand(suite: Suite, n_folds: int | None = None) -> list[RunSpec]:
    """Every run of the matrix, in a stable order (backbone, sampler, engine, fold, seed)."""
    n_folds = n_folds or suite.split.folds
    folds = suite.matrix.fold or list(range(1, n_folds + 1))
    for f in folds:
        if not 1 <= f <= n_folds:
            raise SuiteError(f"{suite.source}: matrix.fold: fold {f} does not exist; "
                             f"the split has folds 1..{n_folds}")
    runs = []
    for backbone in suite.matrix.backbone:
        training = _merged_training(suite, backbone)
        typed = resolved_training(training_for(suite, backbone))
        for sampler in suite.matrix.sampler:
            sampler_options = suite.samplers.get(sampler, {})
            for engine in suite.matrix.engine:
                for fold in folds:
                    for seed in suite.matrix.seed:
                        key = {"backbone": backbone, "sampler": sampler, "engine": engine,
                               "fold": fold, "seed": seed}
                        resolved = {
                            **key, "training": training, "sampler_options": sampler_options,
                            "budget": suite.budget,
                            **({"budget_reference": suite.budget_reference}
                               if suite.budget_reference != DEFAULT_BUDGET_REFERENCE else {}),
                            **reference_identity(suite, sampler),
                            "data": data_identity(suite),
                        }
                        runs.append(RunSpec(
                            suite=suite.name, training=typed,
                            sampler_options=sampler_options,
                            run_id=run_id_for(key, resolved), **key))
    return runs


def data_identity(suite: Suite) -> dict[str, Any]:
    """The suite settings that change which images a run sees (part of every run id)."""
    return {
        "datasets": [dataclasses.asdict(d) for d in suite.datasets],
        "classes": suite.classes,
        "image_size": suite.image_size,
        "split": dataclasses.asdict(suite.split),
    }


def reference_identity(suite: Suite, sampler: str) -> dict[str, Any]:
    """What else fixes a run's rules: under ``budget: equal`` the reference sampler's options
    (its plan sets the budget). Nothing else in the suite does, so adding or changing
    another strategy never changes a run's id or its rules."""
    if suite.budget != "equal" or sampler == suite.budget_reference:
        return {}
    return {"reference_options": suite.samplers.get(suite.budget_reference, {})}


def filter_runs(runs: list[RunSpec], only: list[str], source: str = "--only") -> list[RunSpec]:
    """Keep runs matching every key of ``only`` (``key=value``, ``value`` may be a
    comma-separated list); values given for one key, in one item or repeated, are OR-ed.

    A value that matches no run of the suite is a mistake: the message names it and the
    values the suite has.
    """
    keys = ("backbone", "sampler", "engine", "fold", "seed")
    wanted: dict[str, list[str]] = {}
    for item in only:
        if "=" not in item:
            raise SuiteError(f"{source} {item!r}: expected key=value, e.g. sampler=phased")
        key, value = item.split("=", 1)
        if key not in keys:
            raise SuiteError(f"{source} {item!r}: unknown key {key!r}; known: {', '.join(keys)}")
        values = [v.strip() for v in value.split(",") if v.strip()]
        if not values:
            raise SuiteError(f"{source} {item!r}: no value after '='; e.g. {key}=VALUE")
        wanted.setdefault(key, []).extend(values)
    for key, values in wanted.items():
        have = sorted({str(getattr(r, key)) for r in runs}, key=lambda v: (len(v), v))
        missing = [v for v in values if v not in have]
        if missing:
            raise SuiteError(f"{source} {key}={missing[0]}: no run of the suite has {key} "
                             f"{missing[0]!r}; its {key} values: {', '.join(have) or '(none)'}")
    for key, values in wanted.items():
        runs = [r for r in runs if str(getattr(r, key)) in values]
    if only and not runs:
        raise SuiteError(f"{source} {' '.join(only)}: selects no run of the suite")
    return runs
