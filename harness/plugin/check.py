"""Check a suite against the plugins it names, before anything runs (``--dry-run`` too).

Five checks, each failing with one line that names the suite file and the key path:
every name is registered; every engine has the primitives its samplers' plans call;
every plugin option block validates against the plugin's
:class:`~harness.plugin.options.Options` model, with the suite's classes, datasets and
folds as its validation context (:class:`~harness.plugin.specs.OptionsContext`);
``training.weights`` names a source each backbone declares (``harness.plugin.weights``);
every backbone, built once per engine in a child process, meets the engine's backbone
contract (``EngineSpec.check_backbone``). The options are validated here only: what
follows (data, plans, run folders) takes them from the ``CheckedSuite``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config.suite import DEFAULT_CLASSES, Suite, training_for
from harness.errors import HarnessError
from harness.plugin.engine import build_backbone, missing_primitives
from harness.plugin.info import framework_missing
from harness.plugin.options import Options, validate_options
from harness.plugin.registry import Registry, UnknownNameError
from harness.plugin.specs import (
    DatasetContext,
    OptionsContext,
    SplitterContext,
    WeightSource,
)
from harness.plugin.weights import suite_weights


class BackboneContractError(HarnessError):
    """A backbone's model does not meet its engine's contract (``BACKBONE_CONTRACT``)."""


@dataclass
class CheckedSuite:
    """A suite's plugin options, validated into each plugin's model (a resolved run holds
    those of its own plugins: ``harness.plugin.resolved.resolve``)."""

    datasets: list[Options] = field(default_factory=list)
    split: Options | None = None
    samplers: dict[str, Options] = field(default_factory=dict)
    backbones: dict[str, Options] = field(default_factory=dict)
    executor: Options | None = None
    trackers: list[Options] = field(default_factory=list)
    #: The weight source of each (backbone, engine) pair (``harness.plugin.weights``).
    weights: dict[tuple[str, str], WeightSource] = field(default_factory=dict)


def _source(suite: Suite) -> str:
    return suite.source or suite.name


def check_names(suite: Suite, registry: Registry) -> None:
    """Fail before any work when the suite names something nobody registered."""

    def get(kind: str, name: str, key: str):
        try:
            return registry.get(kind, name)
        except UnknownNameError as exc:
            raise UnknownNameError(f"{_source(suite)}: {key}: {exc}") from None

    for i, ref in enumerate(suite.datasets):
        get("datasets", ref.name, f"datasets[{i}].name")
    get("splitters", suite.split.kind, "split.kind")
    get("executors", suite.executor.name, "executor.name")
    for name in suite.matrix.sampler:
        get("samplers", name, "matrix.sampler")
    for name in suite.samplers:
        get("samplers", name, f"samplers.{name}")
    if suite.budget == "equal":
        get("samplers", suite.budget_reference, "budget_reference")
    for name in suite.matrix.engine:
        missing = framework_missing(get("engines", name, "matrix.engine"))
        if missing:
            raise HarnessError(f"{_source(suite)}: matrix.engine: {missing}")
    for i, ref in enumerate(suite.trackers):
        get("trackers", ref.name, f"trackers[{i}].name")
    for name in suite.matrix.backbone:
        spec = get("backbones", name, "matrix.backbone")
        for engine in suite.matrix.engine:
            if registry.get("engines", engine).builder not in spec.builders:
                raise HarnessError(f"{_source(suite)}: matrix.backbone: backbone {name!r} "
                                   f"cannot be built by engine {engine!r}; it supports "
                                   f"{', '.join(sorted(spec.builders))}")


def suite_dir(suite: Suite) -> Path:
    return Path(suite.source).resolve().parent if suite.source else Path.cwd()


def dataset_context(suite: Suite, index: int) -> DatasetContext:
    return DatasetContext(classes=tuple(suite.classes), suite_dir=suite_dir(suite),
                          name=suite.datasets[index].name)


def splitter_context(suite: Suite) -> SplitterContext:
    return SplitterContext(folds=suite.split.folds, seed=suite.split.seed,
                           select_fraction=suite.split.select_fraction,
                           classes=tuple(suite.classes or DEFAULT_CLASSES),
                           suite_dir=suite_dir(suite))


def options_context(suite: Suite) -> OptionsContext:
    """What every option block of ``suite`` is checked against (its classes, datasets and
    folds): the validation context of the plugins' options models."""
    return OptionsContext(classes=tuple(suite.classes or DEFAULT_CLASSES),
                          datasets=tuple(ref.name for ref in suite.datasets),
                          folds=suite.split.folds)


def dataset_options(suite: Suite, registry: Registry, index: int) -> Options:
    ref = suite.datasets[index]
    spec = registry.get("datasets", ref.name)
    return validate_options(spec.options, ref.options, f"datasets[{index}].options",
                            _source(suite), options_context(suite))


def split_options(suite: Suite, registry: Registry) -> Options:
    spec = registry.get("splitters", suite.split.kind)
    return validate_options(spec.options, suite.split.options, "split.options", _source(suite),
                            options_context(suite))


def sampler_options(suite: Suite, registry: Registry, name: str) -> Options:
    spec = registry.get("samplers", name)
    return validate_options(spec.options, suite.samplers.get(name, {}), f"samplers.{name}",
                            _source(suite), options_context(suite))


def backbone_options(suite: Suite, registry: Registry, name: str) -> Options:
    """The backbone's options: ``training.backbone_options`` or its per-backbone override."""
    spec = registry.get("backbones", name)
    raw = training_for(suite, name).backbone_options
    override = (suite.backbones.get(name) or {}).get("backbone_options")
    where = (f"backbones.{name}.backbone_options" if override is not None
             else "training.backbone_options")
    return validate_options(spec.options, raw, where, _source(suite), options_context(suite))


def executor_options(suite: Suite, registry: Registry) -> Options:
    spec = registry.get("executors", suite.executor.name)
    return validate_options(spec.options, suite.executor.options, "executor.options",
                            _source(suite), options_context(suite))


def check_data_options(suite: Suite, registry: Registry) -> CheckedSuite:
    """The datasets' and the splitter's options, validated: all ``harness data`` needs (the
    data functions take them from here and validate nothing themselves)."""
    return CheckedSuite(
        datasets=[dataset_options(suite, registry, i) for i in range(len(suite.datasets))],
        split=split_options(suite, registry))


def check_options(suite: Suite, registry: Registry) -> CheckedSuite:
    """Every plugin option block of the suite, validated (the first mistake raises)."""
    checked = check_data_options(suite, registry)
    reference = [suite.budget_reference] if suite.budget == "equal" else []
    for name in dict.fromkeys([*suite.samplers, *suite.matrix.sampler, *reference]):
        checked.samplers[name] = sampler_options(suite, registry, name)
    for name in suite.matrix.backbone:
        checked.backbones[name] = backbone_options(suite, registry, name)
    checked.executor = executor_options(suite, registry)
    for i, ref in enumerate(suite.trackers):
        spec = registry.get("trackers", ref.name)
        checked.trackers.append(validate_options(spec.options, ref.options,
                                                 f"trackers[{i}].options", _source(suite),
                                                 options_context(suite)))
    return checked


def check_primitives(suite: Suite, registry: Registry) -> None:
    """Refuse a sampler whose plans call an engine primitive the paired engine's model lacks
    (read from ``EngineSpec.build`` when it is a class; a lazy build is checked when the run
    starts, by the loop)."""
    for engine in suite.matrix.engine:
        build = registry.get("engines", engine).build
        if not isinstance(build, type):
            continue
        for sampler in suite.matrix.sampler:
            needs = registry.get("samplers", sampler).needs
            lacking = missing_primitives(build, needs)
            if lacking:
                wanted = [n for n in lacking if n in needs] or lacking
                by = (f"sampler {sampler!r} needs" if set(wanted) <= set(needs)
                      else "every engine needs")
                raise HarnessError(
                    f"{_source(suite)}: matrix: {by} the engine primitive(s) "
                    f"{', '.join(wanted)}, which engine {engine!r} ({build.__name__}) lacks; "
                    "drop one of them from the matrix or add the primitive to the engine")


def check_suite(suite: Suite, registry: Registry, backbones: bool = True) -> CheckedSuite:
    """Names, options and (when ``backbones``) the backbone contract of a suite."""
    check_names(suite, registry)
    check_primitives(suite, registry)
    checked = check_options(suite, registry)
    checked.weights = suite_weights(suite, registry)
    if backbones:
        check_backbones(suite, registry, checked)
    return checked


def check_data(suite: Suite, registry: Registry, checked: CheckedSuite) -> None:
    """Every dataset's and the splitter's own cheap look at the files on disk
    (``DatasetSpec.check``, ``SplitterSpec.check``): all problems in one line, before any
    run is planned or image decoded."""
    problems = []
    for i, ref in enumerate(suite.datasets):
        spec = registry.get("datasets", ref.name)
        if spec.check is not None:
            problems += [f"datasets[{i}]: {p}"
                         for p in spec.check(checked.datasets[i], dataset_context(suite, i))]
    splitter = registry.get("splitters", suite.split.kind)
    if splitter.check is not None:
        problems += [f"split: {p}" for p in splitter.check(checked.split,
                                                           splitter_context(suite))]
    if problems:
        lines = "; ".join(p.rstrip(".") for p in problems)
        raise HarnessError(f"{_source(suite)}: {lines}")


# ------------------------------------------------------------------ backbone contract


def contract_checks(suite: Suite, registry: Registry, checked: CheckedSuite,
                    pairs: Iterable[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    """The (backbone, engine) pairs of the suite (or of ``pairs``) whose engine checks a
    contract, with the backbones' validated options."""
    wanted = None if pairs is None else set(pairs)
    checks = []
    for engine in suite.matrix.engine:
        if registry.get("engines", engine).check_backbone is None:
            continue
        for backbone in suite.matrix.backbone:
            if wanted is not None and (backbone, engine) not in wanted:
                continue
            checks.append({
                "backbone": backbone, "engine": engine, "image_size": suite.image_size,
                "options": checked.backbones[backbone].model_dump(mode="json"),
            })
    return checks


def check_backbones(suite: Suite, registry: Registry, checked: CheckedSuite,
                    pairs: Iterable[tuple[str, str]] | None = None) -> None:
    """Build each backbone once per engine (of ``pairs`` when given) in a child process and
    check its contract.

    A child process, because building imports the engine's framework and two frameworks
    never share a process (nor does the framework-free runner load one). It starts the
    framework (TensorFlow: seconds), so ``harness run`` asks only for the pairs it trains.
    """
    checks = contract_checks(suite, registry, checked, pairs)
    if not checks:
        return
    payload = json.dumps({"plugins": list(suite.plugins), "checks": checks})
    proc = subprocess.run([sys.executable, "-m", "harness.plugin.check"], input=payload,
                          capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BackboneContractError(f"{_source(suite)}: matrix.backbone: checking the "
                                    f"backbones failed: {tail}")
    for problem in json.loads(lines[-1])["problems"]:
        raise BackboneContractError(
            f"{_source(suite)}: matrix.backbone: backbone {problem['backbone']!r} "
            f"(engine {problem['engine']}): {problem['problem']}")


def _child() -> int:
    """``python -m harness.plugin.check``: run the contract checks read from stdin."""
    from harness.plugin.registry import build_registry

    request = json.loads(sys.stdin.read())
    registry = build_registry(request["plugins"])
    problems = []
    for check in request["checks"]:
        backbone = registry.get("backbones", check["backbone"])
        engine = registry.get("engines", check["engine"])

        def build(check=check, backbone=backbone, key=engine.builder):
            return build_backbone(backbone, key, check["image_size"], "none", check["options"])

        try:
            problem = engine.check_backbone(build, check["image_size"])
        except HarnessError as exc:
            problem = str(exc)
        except Exception as exc:  # noqa: BLE001 - a plugin's builder: say what it raised
            problem = f"building it raised {type(exc).__name__}: {exc}"
        if problem:
            problems.append({**check, "problem": problem})
    print(json.dumps({"problems": problems}))
    return 0


if __name__ == "__main__":
    sys.exit(_child())
