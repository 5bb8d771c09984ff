"""One run, resolved once: the typed object the runner plans from, writes as ``config.json``
and the worker, the loop, the engines and the report read back.

``resolve`` builds it from a checked suite (``harness.plugin.check.check_suite``, every
plugin's options validated) and one cell of its matrix (``harness.config.suite.expand``).
Nothing downstream validates what it holds again; ``ResolvedRun.to_json`` is exactly the
content of ``config.json`` and ``ResolvedRun.read`` turns that file back into the object.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.config.frozen import freeze
from harness.config.suite import (
    DatasetRef,
    ReportConfig,
    RunSpec,
    SplitConfig,
    Suite,
    Training,
)
from harness.config.validate import SuiteError, to_dataclass
from harness.plugin.options import Options, validate_options
from harness.plugin.registry import UnknownNameError
from harness.plugin.specs import OptionsContext
from harness.plugin.weights import with_normalization

if TYPE_CHECKING:
    from harness.plugin.check import CheckedSuite
    from harness.plugin.registry import Registry
    from harness.rundir.folder import RunConfig

#: Fields of ``ResolvedRun`` held as tuples.
_TUPLES = ("datasets", "plugins", "overrides", "dataset_options")

#: ``config.json`` keys ``ResolvedRun`` reads and writes besides ``run``, ``suite`` and
#: ``plan_rules``.
_RECORDED = ("overrides", "data", "data_notes", "dropped_images", "versions", "fingerprint")


@dataclass(frozen=True)
class PlanRules:
    """The suite's rules a run's plan was made under (``harness.runs.runner.make_plan``)."""

    #: ``equal``, ``natural`` or a number of images (``Suite.budget``).
    budget: int | str
    #: The sampler whose plan sets the budget under ``equal``, and (only then) its
    #: validated options.
    budget_reference: str
    reference_options: Options | Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        options = self.reference_options
        return {"budget": self.budget, "budget_reference": self.budget_reference,
                "reference_options": None if options is None
                else options.model_dump(mode="json", exclude_unset=True)
                if isinstance(options, Options) else options}


@dataclass(frozen=True)
class ResolvedRun:
    """Everything that determines one run, typed, in one place.

    ``run`` is the matrix cell (keys, id, training settings with the per-backbone overrides
    merged and ``threads`` resolved); the options are the plugins' validated models; the
    suite settings are those every run of the suite shares. ``cache``, ``data`` and what
    follows are filled in when the data is prepared and the run folder written.
    """

    run: RunSpec
    classes: tuple[str, ...]
    image_size: int
    split: SplitConfig
    datasets: tuple[DatasetRef, ...]
    report: ReportConfig
    plugins: tuple[str, ...] = ()
    #: The suite file (relative dataset roots resolve against it).
    source: str = ""
    #: The plan's rules; ``None`` in a folder written before they were recorded (its plan
    #: is made: nothing reads them again).
    plan_rules: PlanRules | None = None
    #: The plugins' validated options (a plugin absent where the run is read back with
    #: ``keep_unknown``: its recorded options, a frozen mapping).
    sampler_options: Options | Mapping[str, Any] = field(default_factory=Options)
    backbone_options: Options | Mapping[str, Any] = field(default_factory=Options)
    split_options: Options | Mapping[str, Any] = field(default_factory=Options)
    dataset_options: tuple[Options | Mapping[str, Any], ...] = ()
    #: The image cache the run reads (``harness.data.cache``).
    cache: str = ""
    #: The command line's ``key.path=value`` items the suite was loaded with.
    overrides: tuple[str, ...] = ()
    #: Each dataset's version and contents (``harness.data.provenance``).
    data: dict[str, Any] | None = None
    data_notes: list[str] | None = None
    dropped_images: list[dict[str, str]] | None = None
    versions: dict[str, Any] = field(default_factory=dict)
    #: One hash per part of what determines the run (``harness.runs.staleness``).
    fingerprint: dict[str, str] = field(default_factory=dict)
    #: ``config.json`` keys this version does not know, kept as they are.
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Frozen all the way down: the nested settings (frozen dataclasses and options
        # models) are frozen where they are declared; the recorded parts here.
        for name in ("datasets", "plugins", "overrides", "dataset_options", "data",
                     "data_notes", "dropped_images", "versions", "fingerprint", "extra"):
            value = getattr(self, name)
            object.__setattr__(self, name, tuple(value) if name in _TUPLES else freeze(value))

    # ------------------------------------------------------------------ shortcuts

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def training(self) -> Training:
        return self.run.training

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    # ------------------------------------------------------------------ config.json

    def suite_section(self) -> dict[str, Any]:
        """``config.json``'s ``suite``: the settings every run of the suite shares."""
        out = {
            "name": self.run.suite, "source": self.source, "classes": list(self.classes),
            "image_size": self.image_size, "plugins": list(self.plugins),
            "split": dataclasses.asdict(self.split),
            "datasets": [dataclasses.asdict(d) for d in self.datasets],
            "report": dataclasses.asdict(self.report),
        }
        if self.cache:
            out["cache"] = self.cache
        return out

    def to_json(self) -> dict[str, Any]:
        """The content of ``config.json``."""
        out: dict[str, Any] = {**self.extra, "run": self.run.to_json(),
                               "suite": self.suite_section(), "overrides": list(self.overrides)}
        if self.plan_rules is not None:
            out["plan_rules"] = self.plan_rules.to_json()
        for key in ("data", "data_notes", "dropped_images"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out["versions"] = dict(self.versions)
        out["fingerprint"] = dict(self.fingerprint)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any], registry: Registry, source: str,
                  keep_unknown: bool = False) -> ResolvedRun:
        """``to_json()`` read back; the options typed by the plugins' models in ``registry``.

        ``source`` (the file read) is named in every error. ``keep_unknown`` reads a folder
        as recorded, for the report: a plugin ``registry`` lacks (a folder from another
        machine) keeps its options as the recorded, frozen mapping, and the keys a folder of
        an older version lacks (``run.suite``, ``run.sampler_options``, ``suite.image_size``)
        take their defaults, instead of failing."""
        if not isinstance(data, dict) or not isinstance(data.get("suite"), dict):
            raise SuiteError(f"{source}: suite: expected a mapping")
        suite = data["suite"]
        raw_run = data.get("run")
        if keep_unknown and isinstance(raw_run, dict):
            raw_run = {"suite": str(suite.get("name", "")), "sampler_options": {},
                       "training": {}, **raw_run}
            suite = {"image_size": Suite.image_size, **suite}
        run = RunSpec.from_json(raw_run, source)
        try:
            classes = tuple(str(c) for c in suite["classes"])
            datasets = tuple(to_dataclass(d, DatasetRef, f"suite.datasets[{i}]", source)
                             for i, d in enumerate(suite.get("datasets") or []))
            split = to_dataclass(suite.get("split") or {}, SplitConfig, "suite.split", source)
            report = to_dataclass(suite.get("report") or {}, ReportConfig, "suite.report",
                                  source)
            image_size = int(suite["image_size"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SuiteError(f"{source}: suite: unexpected settings ({exc})") from None
        context = OptionsContext(classes=classes, datasets=tuple(d.name for d in datasets),
                                 folds=split.folds)

        def typed(kind: str, name: str, raw: Any, where: str) -> Options | Mapping[str, Any]:
            try:
                model = registry.get(kind, name).options
            except UnknownNameError:
                if not keep_unknown:
                    raise
                return freeze(dict(raw or {}))
            return validate_options(model, raw, where, source, context)

        recorded = {k: data[k] for k in _RECORDED if k in data}
        rules = data.get("plan_rules")
        if rules is not None:
            try:
                reference, raw = str(rules["budget_reference"]), rules["reference_options"]
                rules = PlanRules(budget=rules["budget"], budget_reference=reference,
                                  reference_options=None if raw is None else typed(
                                      "samplers", reference, raw,
                                      "plan_rules.reference_options"))
            except (KeyError, TypeError) as exc:
                raise SuiteError(f"{source}: plan_rules: unexpected rules ({exc})") from None
        return cls(
            run=run, classes=classes, image_size=image_size, split=split, datasets=datasets,
            report=report, plugins=tuple(suite.get("plugins") or ()),
            source=str(suite.get("source", "")), cache=str(suite.get("cache", "")),
            plan_rules=rules,
            **_typed_options(typed, run, split, datasets),
            overrides=tuple(recorded.pop("overrides", ()) or ()),
            versions=dict(recorded.pop("versions", None) or {}),
            fingerprint=dict(recorded.pop("fingerprint", None) or {}),
            **recorded,
            extra={k: v for k, v in data.items()
                   if k not in ("run", "suite", "plan_rules", *_RECORDED)})

    @classmethod
    def read(cls, config: RunConfig, registry: Registry, path: str | Path,
             keep_unknown: bool = False) -> ResolvedRun:
        """The resolved run of a run folder's ``config.json`` (``RunFolder.config()``, read
        from ``path``); a damaged one raises ``DamagedFile``. ``keep_unknown``: as in
        ``from_json``."""
        from harness.rundir.folder import DamagedFile

        try:
            return cls.from_json(config.to_json(), registry, str(path), keep_unknown)
        except SuiteError as exc:
            raise DamagedFile(Path(path), str(exc).split(": ", 1)[-1]) from None


def _typed_options(typed: Callable[[str, str, Any, str], Options | Mapping[str, Any]],
                   run: RunSpec, split: SplitConfig,
                   datasets: tuple[DatasetRef, ...]) -> dict[str, Any]:
    """The plugins' options of a run read back from ``config.json`` (``typed``: as their
    models)."""
    return {
        "sampler_options": typed("samplers", run.sampler, run.sampler_options,
                                 "run.sampler_options"),
        "backbone_options": typed("backbones", run.backbone, run.training.backbone_options,
                                  "run.training.backbone_options"),
        "split_options": typed("splitters", split.kind, split.options, "suite.split.options"),
        "dataset_options": tuple(typed("datasets", d.name, d.options,
                                       f"suite.datasets[{i}].options")
                                 for i, d in enumerate(datasets)),
    }


def resolve(suite: Suite, checked: CheckedSuite, run: RunSpec) -> ResolvedRun:
    """The resolved run of one cell of ``suite``'s matrix (``expand``), with the options
    ``check_suite`` validated and ``normalization: auto`` the weights' own."""
    run = with_normalization(run, checked.weights)
    return ResolvedRun(
        run=run, classes=tuple(suite.classes), image_size=suite.image_size, split=suite.split,
        datasets=tuple(suite.datasets), report=suite.report, plugins=tuple(suite.plugins),
        source=suite.source, sampler_options=checked.samplers[run.sampler],
        plan_rules=PlanRules(budget=suite.budget, budget_reference=suite.budget_reference,
                             reference_options=checked.samplers.get(suite.budget_reference)
                             if suite.budget == "equal" else None),
        backbone_options=checked.backbones[run.backbone],
        split_options=checked.split or Options(),
        dataset_options=tuple(checked.datasets))
