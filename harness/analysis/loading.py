"""Run folders as the report sees them: read, checked, grouped by combination.

Nothing here computes a figure beyond what a run folder holds (``metrics.json`` is
recomputed from ``predictions.csv`` only when missing). Folders are read only through
``harness.rundir.folder``: a done run whose files do not parse or disagree is ``damaged``, with
the file and the problem in one line, and stays out of every table and statistic; one
broken run never hides the others and never stops the report.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.analysis.metrics import Predictions, compute_metrics
from harness.config.suite import ReportConfig
from harness.errors import HarnessError
from harness.plugin.registry import Registry, build_registry
from harness.plugin.resolved import ResolvedRun
from harness.rundir.folder import DamagedFile, RunConfig, RunFolder, SuiteRuns

#: The state of a run whose files are damaged (the report names the file and the problem).
DAMAGED = "damaged"


def references_of(runs) -> list[str]:
    """The strategies shown first and compared against: the suite's ``report.references``
    as recorded in its runs' ``config.json`` (older folders: the suite's default)."""
    for run in runs:
        config = getattr(run, "config", None) or {}
        refs = (config.get("suite") or {}).get("report", {}).get("references")
        if refs is not None:
            return [str(r) for r in refs]
    return list(ReportConfig().references)


@dataclass
class RunResult:
    """One run folder as the report sees it."""

    run_id: str
    path: Path
    config: dict[str, Any]
    state: str
    error: str = ""
    metrics: dict[str, Any] | None = None
    predictions: Predictions | None = None
    budget: int | None = None
    #: Exposure beyond images seen (epochs, distinct images, selection checkpoints), read
    #: from plan.json and history.csv; see ``budget.exposure``.
    exposure: dict[str, Any] = field(default_factory=dict)
    #: Images in the fold's training and test parts (the corrected t-test's ratio).
    n_train: int | None = None
    n_test: int | None = None
    #: Test image uid -> patient id (the bootstrap's clusters); empty for older run folders.
    patients: dict[str, str] = field(default_factory=dict)
    #: Test image uid -> source dataset (the per-source figures); empty when not recorded.
    sources: dict[str, str] = field(default_factory=dict)
    #: Wall seconds of the run (``status.json``), its device in words, and the seconds of
    #: its history's training steps and selection scoring (``cost.suite_cost``).
    seconds: float | None = None
    device: str = ""
    train_seconds: float | None = None

    @property
    def run(self) -> dict[str, Any]:
        return self.config.get("run", {})

    #: ``config.json`` read back typed (``read_resolved``); ``None`` when it could not be.
    resolved: ResolvedRun | None = None

    backbone = property(lambda self: str(self.run.get("backbone", "?")))
    sampler = property(lambda self: str(self.run.get("sampler", "?")))
    engine = property(lambda self: str(self.run.get("engine", "?")))
    fold = property(lambda self: self.run.get("fold", 0))
    seed = property(lambda self: self.run.get("seed", 0))

    @property
    def combination(self) -> tuple[str, str, str]:
        return self.backbone, self.sampler, self.engine

    @property
    def selection(self) -> str:
        return str(self.run.get("training", {}).get("selection", ""))


@dataclass
class Combination:
    """The finished runs of one backbone / sampler / engine, ordered by fold and seed."""

    backbone: str
    sampler: str
    engine: str
    runs: list[RunResult] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.backbone} / {self.sampler} / {self.engine}"

    @property
    def slug(self) -> str:
        return f"{self.backbone}-{self.sampler}-{self.engine}"


def load_run(path: Path, bootstrap: int = ReportConfig.bootstrap) -> RunResult:
    """Read one run folder; a problem becomes a failed or damaged run with its reason."""
    from harness.analysis.budget import exposure, images_seen

    folder = RunFolder(path)
    try:
        config = folder.config()
    except DamagedFile as exc:
        return RunResult(path.name, path, {}, DAMAGED if folder.has_config() else "failed",
                         str(exc))
    damage = folder.status_damage()
    if damage is not None:
        return RunResult(config.run_id, path, config.to_json(), DAMAGED, str(damage))
    status = folder.status()
    result = RunResult(config.run_id, path, config.to_json(), status.state, status.error)
    try:  # the run's typed settings, as its worker read them
        result.resolved = read_resolved(config, folder)
    except DamagedFile as exc:
        if result.state == "done":
            result.state, result.error = DAMAGED, str(exc)
        return result
    if result.state != "done":
        return result
    try:
        run = folder.finished()
    except DamagedFile as exc:
        result.state, result.error = DAMAGED, str(exc)
        return result
    from harness.analysis.cost import training_seconds

    result.predictions = run.predictions
    result.seconds, result.device = run.status.seconds, run.status.device
    result.train_seconds = training_seconds(run.history)
    result.metrics = (run.metrics if run.metrics is not None
                      else compute_metrics(run.predictions, bootstrap=bootstrap))
    plan = {"budget": run.plan.budget, "plan": run.plan.plan}  # what budget.py reads
    training = result.resolved.training
    result.budget = images_seen(plan, training)
    result.n_train, result.n_test = len(run.plan.train.uids), len(run.plan.test.uids)
    test = run.plan.test
    if test.patients is not None:
        result.patients = dict(zip(test.uids, test.patients))
    if test.sources is not None:
        result.sources = dict(zip(test.uids, test.sources))
    result.exposure = exposure(run.history, plan, training, result.budget)
    return result


def current_run_ids(runs_dir: Path) -> set[str] | None:
    """Run ids of the suite as last run (its manifest); ``None`` when there is none."""
    return SuiteRuns(runs_dir).run_ids()


def load_runs(runs_dir: str | Path, bootstrap: int = ReportConfig.bootstrap) -> list[RunResult]:
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise HarnessError(f"{runs_dir}: no such runs folder; give runs/<suite> as written by "
                           "'harness run'")
    suite = SuiteRuns(runs_dir)
    folders = suite.folders()
    current = suite.run_ids()
    if current is not None:
        folders = [f for f in folders if f.name in current]
    if not folders:
        raise HarnessError(f"{runs_dir}: no run folders inside; run 'harness run SUITE' first")
    return [load_run(f.path, bootstrap) for f in folders]


def group(runs: list[RunResult]) -> list[Combination]:
    """Finished runs by combination: by backbone and engine, the suite's references first."""
    combos: dict[tuple[str, str, str], Combination] = {}
    for r in runs:
        if r.state == "done":
            combos.setdefault(r.combination, Combination(*r.combination)).runs.append(r)
    for c in combos.values():
        c.runs.sort(key=lambda r: (r.fold, r.seed))
    order = {name: i for i, name in enumerate(references_of(runs))}
    return sorted(combos.values(), key=lambda c: (c.backbone, c.engine,
                                                  order.get(c.sampler, len(order)), c.sampler))


@functools.lru_cache(maxsize=8)
def _registry(plugins: tuple[str, ...]) -> Registry:
    """The plugins a suite names, else (they are not installed here) the built-in ones."""
    try:
        return build_registry(plugins)
    except HarnessError:
        return build_registry()


def read_resolved(config: RunConfig, folder: RunFolder) -> ResolvedRun:
    """A run folder's ``config.json`` (``config``, read from ``folder``) as the run's
    ``ResolvedRun``: the one typed reader the worker uses too. A plugin not installed here
    keeps its recorded options (a frozen mapping), so a folder from another machine still
    renders; a damaged file raises ``DamagedFile``."""
    plugins = config.suite.get("plugins") or ()
    registry = _registry(tuple(str(p) for p in plugins) if isinstance(plugins, list) else ())
    return ResolvedRun.read(config, registry, folder.config_path, keep_unknown=True)


def suite_run(runs_dir: Path) -> ResolvedRun | None:
    """The first readable run of ``runs_dir``, typed (all runs of a suite share the suite
    settings: classes, report, split); ``None`` when none is."""
    for folder in SuiteRuns(runs_dir).folders():
        try:
            return read_resolved(folder.config(), folder)
        except DamagedFile:
            continue
    return None
