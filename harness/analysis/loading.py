"""Run folders as the report sees them: read, checked, grouped by combination.

Nothing here computes a figure beyond what a run folder holds (``metrics.json`` is
recomputed from ``predictions.csv`` only when missing); every problem with a folder becomes
a failed run with its reason, never a crash, so one broken run never hides the others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.analysis.metrics import Predictions, compute_metrics, read_predictions
from harness.errors import HarnessError
from harness.runs import store


def references_of(runs) -> list[str]:
    """The strategies shown first and compared against: the suite's ``report.references``
    as recorded in its runs' ``config.json`` (older folders: the suite's default)."""
    from harness.config.suite import ReportConfig

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

    @property
    def run(self) -> dict[str, Any]:
        return self.config.get("run", {})

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


def load_run(path: Path, bootstrap: int = 1000) -> RunResult:
    """Read one run folder; problems become a failed run with the reason, never a crash."""
    from harness.analysis.budget import exposure, images_seen

    try:
        config = store.read_json(path / store.CONFIG)
    except (OSError, json.JSONDecodeError) as exc:
        return RunResult(path.name, path, {}, "failed", f"{path / store.CONFIG}: unreadable ({exc})")
    status = {}
    if (path / store.STATUS).exists():
        try:
            status = store.read_json(path / store.STATUS)
        except (OSError, json.JSONDecodeError):
            status = {"state": "running"}
    run_id = config.get("run", {}).get("run_id", path.name)
    result = RunResult(run_id, path, config, status.get("state", "pending"),
                       status.get("error", ""))
    if result.state != "done":
        return result
    classes = config.get("suite", {}).get("classes")
    try:
        result.predictions = read_predictions(path / store.PREDICTIONS, classes)
        if (path / store.METRICS).exists():
            result.metrics = store.read_json(path / store.METRICS)
        else:
            result.metrics = compute_metrics(result.predictions, bootstrap=bootstrap)
    except (HarnessError, OSError, json.JSONDecodeError) as exc:
        result.state, result.error = "failed", str(exc)
        return result
    plan: dict[str, Any] = {}
    if (path / store.PLAN).exists():
        try:
            plan = store.read_json(path / store.PLAN)
            result.budget = images_seen(plan, result.run.get("training", {}))
            train, test = plan.get("train") or {}, plan.get("test") or {}
            result.n_train = len(train["uids"]) if "uids" in train else None
            result.n_test = len(test["uids"]) if "uids" in test else None
            if "patients" in test:
                result.patients = dict(zip(test["uids"], map(str, test["patients"])))
        except (OSError, json.JSONDecodeError, TypeError, ValueError, AttributeError):
            plan, result.budget = {}, None
    result.exposure = exposure(path, plan, result.run.get("training", {}), result.budget)
    return result


def current_run_ids(runs_dir: Path) -> set[str] | None:
    """Run ids of the suite as last run (``manifest.json``); ``None`` when there is none."""
    try:
        return set(store.read_json(runs_dir / store.MANIFEST)["run_ids"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return None


def load_runs(runs_dir: str | Path, bootstrap: int = 1000) -> list[RunResult]:
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise HarnessError(f"{runs_dir}: no such runs folder; give runs/<suite> as written by "
                           "'harness run'")
    folders = sorted(p for p in runs_dir.iterdir()
                     if p.is_dir() and ((p / store.CONFIG).exists() or (p / store.STATUS).exists()))
    current = current_run_ids(runs_dir)
    if current is not None:
        folders = [p for p in folders if p.name in current]
    if not folders:
        raise HarnessError(f"{runs_dir}: no run folders (folders with config.json) inside; "
                           "run 'harness run SUITE' first")
    return [load_run(p, bootstrap) for p in folders]


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


def suite_config(runs_dir: Path) -> dict[str, Any]:
    """The suite section of the first readable config.json (all runs of a suite share it)."""
    for path in sorted(runs_dir.glob(f"*/{store.CONFIG}")):
        try:
            suite = store.read_json(path).get("suite")
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
        if suite:
            return suite
    return {}
