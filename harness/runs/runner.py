"""``harness run``: expand a suite, prepare its data once, and carry out the pending runs.

A run is skipped when its folder says it is done; otherwise its ``config.json`` and
``plan.json`` are written (kept when present, so a resumed run sees the same plan) and an
executor runs it in a worker process. A failing run is recorded and the others go on.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness import __version__
from harness.config.suite import RunSpec, Suite, expand, filter_runs, load_suite
from harness.data.prepare import Prepared, prepare
from harness.errors import HarnessError
from harness.plugin.check import check_suite
from harness.plugin.check import sampler_options as sampler_options_for
from harness.plugin.registry import Registry, build_registry
from harness.plugin.specs import Fold, Plan, SamplerContext
from harness.runs import store


class StopSuite(HarnessError):
    """Raised by a run under ``--fail-fast`` to stop the remaining runs."""


@dataclass
class RunOutcome:
    run: RunSpec
    state: str
    seconds: float = 0.0
    error: str = ""


@dataclass
class SuiteResult:
    suite: Suite
    runs: list[RunSpec]
    outcomes: list[RunOutcome] = field(default_factory=list)
    report: Path | None = None

    def count(self, state: str) -> int:
        return sum(1 for o in self.outcomes if o.state == state)


def run_dir_for(runs_root: Path, run: RunSpec) -> Path:
    return Path(runs_root) / run.suite / run.run_id


def git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=False,
                             cwd=Path(__file__).parent, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def _part(records, idx: np.ndarray) -> dict[str, list]:
    return {"uids": records["uid"].to_numpy()[idx].tolist(),
            "labels": records["label"].to_numpy()[idx].tolist()}


def selection_indices(suite: Suite, run: RunSpec, fold: Fold, records) -> np.ndarray:
    """The selection split: holdout from training, none for ``last``, test subset for ``paper``."""
    selection = run.training["selection"]
    if selection == "last":
        return fold.select[:0]
    if selection == "paper":
        # The authors validated on images drawn from the test set: reproduced, and marked
        # as optimistic in the report.
        rng = np.random.default_rng([suite.split.seed, run.fold, 17])
        n = max(1, round(len(fold.test) * suite.split.select_fraction))
        return np.sort(rng.choice(fold.test, size=min(n, len(fold.test)), replace=False))
    return fold.select


def make_plan(suite: Suite, registry: Registry, sampler_name: str, sampler_options: dict,
              labels: np.ndarray, seed: list[int], split_phases: list[list[int]] | None,
              epochs_per_phase: int, fold: int = 1) -> Plan:
    """Ask the sampler for a plan, under the suite's budget rule.

    With ``budget: equal`` every strategy gets the images-seen budget of the ``phased`` plan
    on the same fold and seed, so a strategy never wins by training longer. A sampler whose
    own options set ``budget`` or ``epochs`` (``harness.SamplerOptions``) keeps them.
    """
    sampler = registry.get("samplers", sampler_name)
    options = sampler_options_for(suite, registry, sampler_name, sampler_options)
    own_budget = getattr(options, "budget", None)
    own_epochs = getattr(options, "epochs", None)
    budget: int | None = None
    if own_budget is not None:
        budget = int(own_budget)
    elif own_epochs is not None:
        budget = None
    elif suite.budget == "equal" and sampler_name != "phased" \
            and "phased" in registry.names("samplers"):
        reference = make_plan(suite, registry, "phased", suite.samplers.get("phased", {}),
                              labels, seed, split_phases, epochs_per_phase, fold)
        budget = reference.budget(epochs_per_phase)
    elif isinstance(suite.budget, int):
        budget = suite.budget
    context = SamplerContext(
        classes=tuple(suite.classes), rng=np.random.default_rng(seed), budget=budget,
        epochs_per_phase=epochs_per_phase, split_phases=split_phases, fold=fold,
        seed=int(seed[-1]) if seed else 0)
    return sampler.plan(labels, options, context)


def write_run_files(suite: Suite, run: RunSpec, prepared: Prepared, registry: Registry,
                    run_dir: Path) -> None:
    """``config.json`` and ``plan.json``; kept as they are when a run resumes."""
    if (run_dir / store.CONFIG).exists() and (run_dir / store.PLAN).exists():
        return
    records = prepared.records
    fold = prepared.folds[run.fold - 1]
    classes = list(suite.classes)
    train_labels = np.array([classes.index(c) for c in records["label"].to_numpy()[fold.train]])
    phases = None
    if fold.phases is not None:
        position = {int(r): i for i, r in enumerate(fold.train)}
        phases = [[position[int(r)] for r in phase] for phase in fold.phases]
    plan = make_plan(suite, registry, run.sampler, run.sampler_options, train_labels,
                     [suite.split.seed, run.fold, run.seed], phases,
                     run.training["epochs_per_phase"], run.fold)
    select = selection_indices(suite, run, fold, records)
    per_phase = [dict(Counter(classes[train_labels[i]] for i in p.indices)) for p in plan.phases]
    plan_json = {
        "sampler": run.sampler,
        "budget": plan.budget(run.training["epochs_per_phase"]),
        "phase_class_counts": per_phase,
        "plan": plan.to_json(),
        "train": _part(records, fold.train),
        "select": _part(records, select),
        "test": _part(records, fold.test),
    }
    config = {
        "run": run.to_json(),
        "suite": {
            "name": suite.name, "source": suite.source, "classes": classes,
            "image_size": suite.image_size, "plugins": suite.plugins,
            "cache": str(prepared.cache.path), "split": dataclasses.asdict(suite.split),
            "datasets": [dataclasses.asdict(d) for d in suite.datasets],
            "report": dataclasses.asdict(suite.report),
        },
        "versions": {"harness": __version__, "python": platform.python_version(),
                     "numpy": np.__version__, "git": git_revision(),
                     "platform": platform.platform()},
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    store.write_json(run_dir / store.PLAN, plan_json)
    store.write_json(run_dir / store.CONFIG, config)  # written last: marks the files complete


def run_worker(run_dir: Path, env: dict[str, str] | None = None) -> int:
    """Run one run in a fresh Python process (frameworks never share a process)."""
    cmd = [sys.executable, "-m", "harness.runs.worker", str(run_dir)]
    return subprocess.run(cmd, env={**os.environ, **(env or {})}, check=False).returncode


def outcome_of(run_dir: Path, run: RunSpec, seconds: float = 0.0) -> RunOutcome:
    """What a run folder says about its run (the folder is the only truth, on any executor)."""
    state = store.run_state(run_dir)
    status = store.read_json(run_dir / store.STATUS) if (run_dir / store.STATUS).exists() else {}
    return RunOutcome(run, state, seconds or status.get("seconds", 0.0), status.get("error", ""))


def make_work(runs_root: Path, fail_fast: bool, total: int,
              echo: Callable[[str], None]) -> Callable[..., None]:
    counter = iter(range(1, total + 1))

    def work(run: RunSpec, env: dict[str, str] | None = None) -> None:
        run_dir = run_dir_for(runs_root, run)
        n = next(counter, total)
        echo(f"[{n}/{total}] {run.run_id}: training")
        started = time.time()
        code = run_worker(run_dir, env)
        outcome = outcome_of(run_dir, run, time.time() - started)
        if outcome.state in ("running", "pending") or (code != 0 and outcome.state == "done"):
            # The worker died without saying why (killed, out of memory, segfault).
            outcome.state, outcome.error = "failed", f"worker exited with code {code}"
            store.write_json(run_dir / store.STATUS, {"state": "failed", "error": outcome.error})
        echo(f"[{n}/{total}] {run.run_id}: {outcome.state} in {outcome.seconds:.0f} s"
             + (f" — {outcome.error}" if outcome.error else ""))
        if outcome.state == "interrupted":
            raise KeyboardInterrupt
        if outcome.state != "done" and fail_fast:
            raise StopSuite(f"run {run.run_id} failed (--fail-fast): {outcome.error}")

    return work


def run_suite(
    suite_path: str | Path,
    only: list[str] = (),
    dry_run: bool = False,
    fail_fast: bool = False,
    runs_root: str | Path = "runs",
    reports_root: str | Path = "reports",
    render: bool = True,
    echo: Callable[[str], None] = print,
    show_progress: bool = True,
) -> SuiteResult:
    suite = load_suite(suite_path)
    registry = build_registry(suite.plugins)
    checked = check_suite(suite, registry)
    runs = filter_runs(expand(suite), list(only))
    runs_root = Path(runs_root)
    result = SuiteResult(suite, runs)
    if dry_run:
        return result
    store.write_json(runs_root / suite.name / store.MANIFEST, {
        "suite": suite.name, "source": suite.source,
        "run_ids": [r.run_id for r in expand(suite)]})
    done, pending = [], []
    for r in runs:
        run_dir = run_dir_for(runs_root, r)
        if store.run_state(run_dir) != "done":
            pending.append(r)
        elif store.predictions_complete(run_dir):
            done.append(r)
        else:
            echo(f"{r.run_id}: predictions.csv does not match plan.json's test images; "
                 "training this run again")
            pending.append(r)
    result.outcomes = [RunOutcome(r, "done") for r in done]
    echo(f"suite {suite.name!r}: {len(runs)} runs, {len(done)} already done, "
         f"{len(pending)} to run")
    if pending:
        prepared = prepare(suite, registry, show_progress=show_progress)
        for run in pending:
            write_run_files(suite, run, prepared, registry, run_dir_for(runs_root, run))
        executor = registry.get("executors", suite.executor.name)
        work = make_work(runs_root, fail_fast, len(pending), echo)
        try:
            executor.execute(pending, work, checked.executor)
        finally:
            result.outcomes += [outcome_of(run_dir_for(runs_root, r), r) for r in pending]
    if render:
        report = Path(reports_root) / suite.name / "index.html"
        if pending or not report_is_current(report, runs_root / suite.name):
            from harness.analysis.report import render_report

            report = render_report(runs_root / suite.name, Path(reports_root) / suite.name)
        result.report = report
        echo(f"report: {report}")
    return result


def report_is_current(report: Path, suite_runs: Path) -> bool:
    """A report newer than every run folder's status needs no re-rendering."""
    if not report.exists():
        return False
    built = report.stat().st_mtime
    return all(p.stat().st_mtime <= built for p in suite_runs.glob(f"*/{store.STATUS}"))


def dry_run_table(result: SuiteResult, runs_root: str | Path = "runs") -> list[dict[str, Any]]:
    return [{"run_id": r.run_id, **r.key(),
             "state": store.run_state(run_dir_for(Path(runs_root), r))} for r in result.runs]


def summary_rows(result: SuiteResult, runs_root: str | Path = "runs") -> list[dict[str, Any]]:
    """Per combination, the mean over its finished runs of a few headline figures.

    Read from each run's ``metrics.json``: the terminal summary of ``harness run``; the
    report has everything else.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for outcome in result.outcomes:
        path = run_dir_for(Path(runs_root), outcome.run) / store.METRICS
        if outcome.state == "done" and path.exists():
            groups.setdefault(outcome.run.combination(), []).append(store.read_json(path))
    rows = []
    for combination, metrics in groups.items():
        support = metrics[0].get("per_class", {})
        rarest = min(support, key=lambda c: support[c].get("support", 0)) if support else "?"

        def mean(get, metrics=metrics):
            values = [v for v in (get(m) for m in metrics) if v is not None]
            return float(np.mean(values)) if values else None
        rows.append({
            "combination": combination, "runs": len(metrics),
            "accuracy": mean(lambda m: m.get("accuracy")),
            "balanced_accuracy": mean(lambda m: m.get("balanced_accuracy")),
            "macro_auroc": mean(lambda m: m.get("macro_auroc")),
            f"{rarest}_sensitivity": mean(
                lambda m, c=rarest: m.get("per_class", {}).get(c, {}).get("sensitivity")),
        })
    return rows
