"""``harness run``: expand a suite, prepare its data once, and carry out the pending runs.

A run is skipped when its folder says it is done; otherwise its ``config.json`` and
``plan.json`` are written (kept when present, so a resumed run sees the same plan) and an
executor runs it in a worker process. A failing run is recorded and the others go on.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import platform
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness import store
from harness.config.overrides import blame_override
from harness.config.suite import RunSpec, Suite, expand, filter_runs, load_suite
from harness.data.cache import CacheState
from harness.data.prepare import Prepared, cache_status, dropped_lines, prepare
from harness.errors import HarnessError
from harness.plugin import guard
from harness.plugin.check import CheckedSuite, check_backbones, check_data, check_suite
from harness.plugin.options import Options
from harness.plugin.registry import Registry, build_registry
from harness.plugin.resolved import PlanRules, ResolvedRun, resolve
from harness.plugin.specs import Fold, Phase, Plan, SamplerContext
from harness.plugin.weights import check_weight_files
from harness.rundir.folder import (
    DamagedFile,
    PlanFile,
    RunConfig,
    RunFolder,
    SuiteRuns,
)
from harness.runs import launch, staleness, tracking
from harness.runs.worker import ALREADY_DONE, BUSY, LOCK_WAIT_ENV
from harness.version import __version__


class StopSuite(HarnessError):
    """Raised by a run under ``--fail-fast`` to stop the remaining runs."""


@dataclass
class RunOutcome:
    run: RunSpec
    state: str
    seconds: float = 0.0
    error: str = ""
    #: Workers started for the run (resumes, retries and requeues included).
    attempts: int = 1


@dataclass
class SuiteResult:
    suite: Suite
    runs: list[RunSpec]
    outcomes: list[RunOutcome] = field(default_factory=list)
    report: Path | None = None
    #: Ids of runs planned by an older suite (code, data or settings), kept as they are.
    stale: list[str] = field(default_factory=list)
    #: Why they are stale, one line per distinct reason (``code changed: timm 0.9 -> 1.0``).
    stale_why: list[str] = field(default_factory=list)
    #: run id -> where a scheduler holds it (``slurm job 1234``), for ``--detach``.
    jobs: dict[str, str] = field(default_factory=dict)
    #: ``--dry-run``: what the run will do with the image cache.
    cache: CacheState | None = None

    def count(self, state: str) -> int:
        return sum(1 for o in self.outcomes if o.state == state)


def run_dir_for(runs_root: Path, run: RunSpec) -> Path:
    return store.child(runs_root, run.suite, run.run_id)


@functools.cache
def git_revision() -> str:
    """The checkout's commit (asked once per process: one ``git`` process, not one per run)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=False,
                             cwd=Path(__file__).parent, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def _fold_part(records, idx: np.ndarray) -> dict[str, list]:
    """Uids, labels, patients and sources of one part (patients: the report's bootstrap
    clusters; sources: its per-source figures)."""
    return {"uids": records["uid"].to_numpy()[idx].tolist(),
            "labels": records["label"].to_numpy()[idx].tolist(),
            "patients": records["patient_id"].astype(str).to_numpy()[idx].tolist(),
            "sources": records["source"].astype(str).to_numpy()[idx].tolist()}


def selection_indices(run: ResolvedRun, fold: Fold, records) -> np.ndarray:
    """The selection split: the splitter's for ``holdout``, none for ``last``, and for
    ``paper`` the authors' set drawn from the test set (see ``selection_from_test``)."""
    selection = run.training.selection
    if selection == "last":
        return fold.select[:0]
    if selection == "paper":
        # The authors validated on test images after every epoch: reproduced, and marked
        # as optimistic in the report.
        return selection_from_test(records["label"].to_numpy(), fold.test, list(run.classes),
                                  run.training.select_per_class,
                                  [run.split.seed, run.run.fold, 631])
    return fold.select


def selection_from_test(labels: np.ndarray, test: np.ndarray, classes: list[str],
                       per_class: int, seed: list[int]) -> np.ndarray:
    """Up to ``per_class`` test images of each class, every image of a rarer class.

    The authors' notebook took, from a shuffled list of the test images, every COVID-19
    image and the first 300 normal and 300 pneumonia (631 images; 630 in fold 3). Their
    shuffle was unseeded; this draw is seeded so a fold always gets the same set.
    """
    test = np.asarray(test, dtype=np.int64)
    rng = np.random.default_rng(seed)
    parts = [rng.permutation(test[labels[test] == c])[:per_class] for c in classes]
    return np.sort(np.concatenate(parts)) if parts else test[:0]


def make_plan(registry: Registry, rules: PlanRules, classes: tuple[str, ...],
              sampler_name: str, options: Options, labels: np.ndarray, seed: list[int],
              split_phases: list[list[int]] | None, epochs_per_phase: int, fold: int = 1,
              run_id: str | None = None) -> Plan:
    """Ask the sampler for a plan, under the suite's budget rule (``rules``).

    With ``budget: equal`` every strategy gets the images-seen budget of the suite's
    ``budget_reference`` plan on the same fold and seed, so a strategy never wins by
    training longer. A sampler whose
    own options set ``budget`` or ``epochs`` (``harness.SamplerOptions``) keeps them.
    ``options`` are the sampler's validated options.
    """
    sampler = registry.get("samplers", sampler_name)
    own_budget = getattr(options, "budget", None)
    own_epochs = getattr(options, "epochs", None)
    budget: int | None = None
    if own_budget is not None:
        budget = int(own_budget)
    elif own_epochs is not None:
        budget = None
    elif rules.budget == "equal" and sampler_name != rules.budget_reference:
        reference = make_plan(registry, rules, classes, rules.budget_reference,
                              rules.reference_options or Options(), labels, seed, split_phases,
                              epochs_per_phase, fold)
        budget = reference.budget(epochs_per_phase)
    elif isinstance(rules.budget, int):
        budget = rules.budget
    context = SamplerContext(
        classes=tuple(classes), rng=np.random.default_rng(seed), budget=budget,
        epochs_per_phase=epochs_per_phase, split_phases=split_phases, fold=fold,
        seed=int(seed[-1]) if seed else 0)
    plugin = guard.who(registry, "samplers", sampler_name)
    plan = guard.call(plugin, "plan", sampler.plan, labels, options, context, run=run_id)
    if not isinstance(plan, Plan) or not plan.phases or not all(
            isinstance(p, Phase) for p in plan.phases):
        raise guard.broken(plugin, "plan", f"returned {type(plan).__name__}, expected a "
                                           "Plan with one or more Phases", run_id)
    for i, phase in enumerate(plan.phases):
        guard.check_indices(phase.indices, len(labels), plugin, "plan",
                            f"phases[{i}].indices", run_id)
    return plan


def selection_evaluations(run: ResolvedRun, plan: Plan, n_train: int) -> int | None:
    """How often a run scores the selection split, fixed by what its run id covers.

    ``training.select_evaluations: N`` asks for N. Under ``budget: equal`` without it, N is
    the number of passes over the fold's training images that the budget pays for
    (``ceil(budget / training images)``): equal images seen is not equal exposure, and a
    strategy that trains over few images for many epochs would otherwise be scored (and
    could be picked) after each of them. Budget and training images are the fold's, so
    every strategy gets the same N whatever else the suite holds. A run with fewer
    selectable epochs (``Phase.selectable``) than N is scored after each of them. ``None``:
    the ``select_every`` schedule.
    """
    epochs_per_phase = run.training.epochs_per_phase
    asked = run.training.select_evaluations
    if asked is None:
        if run.plan_rules.budget != "equal" or n_train <= 0:
            return None
        asked = math.ceil(plan.budget(epochs_per_phase) / n_train)
    return max(1, min(int(asked), plan.selectable_epochs(epochs_per_phase)))


def class_counts(classes: list[str], labels: np.ndarray, indices) -> dict[str, int]:
    """Images per class of ``labels[indices]``, classes in order of first appearance."""
    values, first, counts = np.unique(labels[np.asarray(indices, dtype=np.int64)],
                                      return_index=True, return_counts=True)
    return {classes[int(values[i])]: int(counts[i]) for i in np.argsort(first)}


def plan_for(resolved: ResolvedRun, records, fold: Fold, registry: Registry,
             memo: dict | None = None) -> dict:
    """What ``plan.json`` holds: the sampler's plan and the images of every part.

    ``memo`` (one dict per suite's planning) keeps what every run of a fold shares (its
    labels and parts), computed once per fold instead of once per run."""
    classes, run = list(resolved.classes), resolved.run
    epochs_per_phase = run.training.epochs_per_phase
    memo = {} if memo is None else memo

    def shared(key, make):
        key = (id(records), run.fold, tuple(classes), *key)
        if key not in memo:
            memo[key] = make()
        return memo[key]

    train_labels = shared(("labels",), lambda: np.array(
        [classes.index(c) for c in records["label"].to_numpy()[fold.train]]))
    phases = None
    if fold.phases is not None:
        position = {int(r): i for i, r in enumerate(fold.train)}
        phases = [[position[int(r)] for r in phase] for phase in fold.phases]
    plan = make_plan(registry, resolved.plan_rules, resolved.classes, run.sampler,
                     resolved.sampler_options, train_labels,
                     [resolved.split.seed, run.fold, run.seed], phases, epochs_per_phase,
                     run.fold, run.run_id)
    select = selection_indices(resolved, fold, records)
    per_phase = [class_counts(classes, train_labels, p.indices) for p in plan.phases]
    extra = {}
    evaluations = selection_evaluations(resolved, plan, len(fold.train)) if len(select) \
        else None
    if evaluations is not None:
        extra["select_evaluations"] = evaluations
    return {
        "sampler": run.sampler,
        "budget": plan.budget(epochs_per_phase),
        **extra,
        "phase_class_counts": per_phase,
        "plan": plan.to_json(),
        "train": shared(("train",), lambda: _fold_part(records, fold.train)),
        "select": shared(("select", select.tobytes()), lambda: _fold_part(records, select)),
        "test": shared(("test",), lambda: _fold_part(records, fold.test)),
    }


def resolve_runs(suite: Suite, checked: CheckedSuite, runs: list[RunSpec],
                 overrides: list[str] = ()) -> dict[str, ResolvedRun]:
    """run id -> the resolved run of each of ``runs`` (built once per ``harness run``)."""
    return {r.run_id: dataclasses.replace(resolve(suite, checked, r), overrides=tuple(overrides))
            for r in runs}


def current_fingerprints(suite: Suite, registry: Registry,
                         runs: list[ResolvedRun]) -> dict[str, dict[str, str]]:
    """What each run's ``config.json`` fingerprint would be if it were planned now."""
    if not runs:
        return {}
    data = staleness.current_data_versions(suite, registry, runs[0].dataset_options)
    return {r.run_id: staleness.fingerprint(r.run.to_json(), r.suite_section(),
                                            staleness.code_versions(suite, registry, r.run),
                                            data)
            for r in runs}


def write_run_files(suite: Suite, resolved: ResolvedRun, prepared: Prepared,
                    registry: Registry, run_dir: Path, memo: dict | None = None) -> None:
    """``config.json`` (``resolved`` with what preparing the data recorded) and
    ``plan.json``; kept as they are when a run resumes.

    When either is missing or damaged, the run starts over: its outputs are removed and
    both files written anew.
    """
    folder = RunFolder(run_dir)
    if folder.has_run_files():
        return
    folder.clear(plan_too=True)
    run = resolved.run
    plan_json = plan_for(resolved, prepared.records, prepared.folds[run.fold - 1], registry,
                         memo)
    code = staleness.code_versions(suite, registry, run)
    resolved = dataclasses.replace(
        resolved, cache=str(prepared.cache.path), data=prepared.provenance,
        data_notes=prepared.notes, dropped_images=prepared.dropped,
        versions={"harness": __version__, "python": platform.python_version(),
                  "numpy": np.__version__, "git": git_revision(),
                  "platform": platform.platform(), "plugins": code["plugins"],
                  "framework": code["framework"], "libraries": code["libraries"]})
    resolved = dataclasses.replace(resolved, fingerprint=staleness.fingerprint(
        run.to_json(), resolved.suite_section(), code,
        staleness.data_versions(prepared.provenance)))
    run_dir.mkdir(parents=True, exist_ok=True)
    folder.write_plan(PlanFile.from_json(plan_json))
    # written last: marks the files complete
    folder.write_config(RunConfig.from_json(resolved.to_json()))


def run_worker(run_dir: Path, env: dict[str, str] | None = None) -> int:
    """Run one run in a fresh Python process (frameworks never share a process)."""
    return launch.run_worker(run_dir, env)


def outcome_of(run_dir: Path, run: RunSpec, seconds: float = 0.0) -> RunOutcome:
    """What a run folder says about its run (the folder is the only truth, on any executor)."""
    folder = RunFolder(run_dir)
    status = folder.status()
    if status.attempts:  # every attempt's time, as the worker recorded it
        seconds = status.total_seconds
    return RunOutcome(run, folder.state(), seconds or status.seconds, status.error,
                      max(status.attempts, 1))


RERUN = ("stale", "failed", "all")


@dataclass
class Triage:
    """Which runs are done, which go to the executor, which start over, which are stale."""

    done: list[RunSpec] = field(default_factory=list)
    pending: list[RunSpec] = field(default_factory=list)
    #: run id -> whether config.json and plan.json are written anew too.
    restart: dict[str, bool] = field(default_factory=dict)
    #: Done runs kept although planned by an older suite (``--rerun stale`` redoes them).
    stale: list[RunSpec] = field(default_factory=list)


def stale_of(folder: RunFolder, current: dict[str, str] | None) -> list[str]:
    if current is None:
        return []
    try:
        return staleness.stale_parts(folder.config(), current)
    except DamagedFile:
        return []


def triage(runs: list[RunSpec], runs_root: Path, echo: Callable[[str], None],
           rerun: str | None = None,
           current: dict[str, dict[str, str]] | None = None) -> Triage:
    """Sort runs by what their folders say; name every damaged file and every re-plan.

    A done run counts only when its files parse and agree (``RunFolder.verify``); a run not
    done that was planned by an older suite starts over with a new plan rather than resume
    an old one. ``rerun``: ``stale`` (also redo done stale runs), ``failed`` (failed runs
    start over instead of resuming) or ``all``.
    """
    out = Triage()
    current = current or {}
    for r in runs:
        folder = RunFolder(run_dir_for(runs_root, r))
        stale = stale_of(folder, current.get(r.run_id)) if folder.has_config() else []
        state = folder.state()
        damage = folder.status_damage()
        if rerun == "all" and (state != "pending" or folder.has_config()):
            out.restart[r.run_id] = True
        elif damage is None and state != "done":
            if state == "failed" and rerun == "failed":
                out.restart[r.run_id] = True
            elif stale:
                why = staleness.why_stale(folder.config(), stale)
                echo(f"{r.run_id}: planned by an older suite ({', '.join(stale)} changed); "
                     f"planning it again ({why})")
                out.restart[r.run_id] = True
        else:
            damage = damage or folder.verified()
            if damage is not None:
                echo(f"{r.run_id}: {damage.path.name} is damaged ({damage.problem}); "
                     "training this run again")
                out.restart[r.run_id] = folder.is_run_file(damage)
            elif stale and rerun == "stale":
                out.restart[r.run_id] = True
            else:
                out.done.append(r)
                if stale:
                    out.stale.append(r)
                continue
        out.pending.append(r)
    return out


def stale_why(runs: list[RunSpec], ids: list[str], runs_root: Path,
              current: dict[str, dict[str, str]]) -> list[str]:
    """One line per distinct reason the runs ``ids`` are stale, with how many runs it has."""
    counts: Counter[str] = Counter()
    for r in runs:
        if r.run_id in ids:
            folder = RunFolder(run_dir_for(runs_root, r))
            counts[staleness.why_stale(folder.config(), stale_of(folder, current[r.run_id]))] += 1
    return [f"  {why} ({n} run{'s' if n != 1 else ''})" for why, n in counts.items() if why]


def stale_line(n: int) -> str:
    return (f"{n} run{'s were' if n != 1 else ' was'} planned by an older suite: "
            "`--rerun stale` to redo them")


def restart_runs(runs: list[RunSpec], restart: dict[str, bool], runs_root: Path,
                 echo: Callable[[str], None]) -> None:
    """Remove what restarted runs produced, each under its lock (a busy run is left alone)."""
    for r in runs:
        if r.run_id not in restart:
            continue
        folder = RunFolder(run_dir_for(runs_root, r))
        lock = folder.lock()
        try:
            lock.acquire(timeout=0)
        except lock.Busy as exc:
            echo(f"{exc}; leaving it to that process")
            continue
        try:
            folder.clear(plan_too=restart[r.run_id])
        finally:
            lock.release()


class Work:
    """What an executor does with the pending runs of one ``harness run``.

    The simple executor calls ``work(run, env)``: start the worker here and wait for it.
    Executors that start workers elsewhere (Ray tasks, Slurm jobs) use the parts:
    ``run_dir(run)`` is what the remote side needs (``python -m harness.runs.worker
    RUN_DIR``, see ``harness.runs.launch``), ``started(run)`` when it is handed over and
    ``finished(run, code, seconds)`` when its worker has exited: the outcome is read back
    from the run folder. ``finished`` raises ``StopSuite`` under ``--fail-fast`` and
    ``KeyboardInterrupt`` when the run was interrupted; the executor then cancels what is
    still pending and lets the exception go on.
    """

    def __init__(self, runs_root: Path, fail_fast: bool, total: int,
                 echo: Callable[[str], None]):
        self.runs_root = Path(runs_root)
        self.fail_fast = fail_fast
        self.total = total
        self.echo = echo
        self._numbers: dict[str, int] = {}
        self._lock = threading.Lock()
        #: Warm hosts (``harness.runs.warm``) and what each engine's host preloads; an
        #: engine missing here (TensorFlow) gets a fresh worker process per run.
        self.pool = None
        self.preload: dict[str, list[str]] = {}
        #: Runs whose folder another process held (the worker did not wait): run again,
        #: waiting this time, once every other run had its turn.
        self.deferred: list[RunSpec] = []
        self.wait_for_locks = False
        #: ``harness run --detach``: the executor submits the runs and returns.
        self.detach = False
        #: run id -> where it was handed over (``slurm job 1234``), in submission order.
        self.jobs: dict[str, str] = {}

    def warm(self, registry: Registry, engines: list[str]) -> None:
        """Train the runs of engines whose framework forks safely in warm hosts."""
        from harness.runs import warm

        for name in engines:
            spec = registry.get("engines", name)
            modules = warm.preload_for(spec.framework, spec.build.__module__)
            if modules is not None:
                self.preload[name] = modules
        if self.preload and os.environ.get("HARNESS_WARM_WORKERS", "1") != "0":
            self.pool = warm.Pool()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()

    def run_dir(self, run: RunSpec) -> Path:
        return run_dir_for(self.runs_root, run)

    def _number(self, run: RunSpec) -> int:
        with self._lock:
            return self._numbers.setdefault(run.run_id, min(len(self._numbers) + 1, self.total))

    def started(self, run: RunSpec, where: str = "training") -> None:
        if where == "training":
            where = resume_point(self.run_dir(run)) or where
        self.echo(f"[{self._number(run)}/{self.total}] {run.run_id}: {where}")

    def submitted(self, run: RunSpec, job: str) -> None:
        """A scheduler holds the run: say so in its folder until its worker starts."""
        with self._lock:
            self.jobs[run.run_id] = job
        from harness.runs.attempts import carried

        folder = RunFolder(self.run_dir(run))
        folder.write_status("pending", job=job, **carried(folder))

    def finished(self, run: RunSpec, code: int | None, seconds: float,
                 error: str = "") -> RunOutcome:
        """Record how the run ended; ``error`` says why when the executor knows better than
        the folder (a task or job that never got to start its worker)."""
        run_dir = self.run_dir(run)
        outcome = outcome_of(run_dir, run, seconds)
        if code == BUSY:
            with self._lock:
                self.deferred.append(run)
            self.echo(f"[{self._number(run)}/{self.total}] {run.run_id}: another process is "
                      "training it; coming back to it after the others")
            return outcome
        if outcome.state in ("running", "pending") or (code not in (0, None, ALREADY_DONE)
                                                        and outcome.state == "done"):
            # The worker died without saying why (killed, out of memory, segfault).
            outcome.state = "failed"
            outcome.error = error or f"worker exited with code {code}"
            from harness.runs.attempts import carried

            RunFolder(run_dir).write_status("failed", error=outcome.error,
                                            **carried(RunFolder(run_dir)))
        if code == ALREADY_DONE and outcome.state == "done":
            self.echo(f"[{self._number(run)}/{self.total}] {run.run_id}: done by another "
                      "harness process")
            return outcome
        tries = f" ({outcome.attempts} attempts)" if outcome.attempts > 1 else ""
        self.echo(f"[{self._number(run)}/{self.total}] {run.run_id}: {outcome.state} in "
                  f"{outcome.seconds:.0f} s{tries}"
                  + (f" — {outcome.error}" if outcome.error else ""))
        if outcome.state == "failed" and os.environ.get("HARNESS_VERBOSE") == "1":
            trace = RunFolder(run_dir).status().traceback  # harness -v: where it failed
            if trace:
                self.echo(trace.rstrip())
        if outcome.state == "interrupted":
            raise KeyboardInterrupt
        if outcome.state != "done" and self.fail_fast:
            raise StopSuite(f"run {run.run_id} failed (--fail-fast): {outcome.error}")
        return outcome

    def __call__(self, run: RunSpec, env: dict[str, str] | None = None) -> None:
        self.started(run)
        started = time.time()
        env = {**(env or {}), LOCK_WAIT_ENV: "1" if self.wait_for_locks else "0"}
        if self.pool is not None and run.engine in self.preload:
            code = self.pool.run(self.preload[run.engine], self.run_dir(run), env)
        else:
            code = run_worker(self.run_dir(run), env)
        self.finished(run, code, time.time() - started)


def resume_point(run_dir: Path) -> str | None:
    """``resuming at phase 2 epoch 3`` (1-based) when the run left a checkpoint."""
    from harness.training import checkpoint

    pos = checkpoint.position(RunFolder(run_dir).checkpoints_path / checkpoint.FILE)
    if not pos:
        return None
    return f"resuming at phase {int(pos.get('phase', 0)) + 1} epoch {int(pos.get('epoch', 0)) + 1}"


def make_work(runs_root: Path, fail_fast: bool, total: int,
              echo: Callable[[str], None]) -> Work:
    return Work(runs_root, fail_fast, total, echo)


def run_suite(
    suite_path: str | Path | Suite,
    only: list[str] = (),
    dry_run: bool = False,
    fail_fast: bool = False,
    runs_root: str | Path = "runs",
    reports_root: str | Path = "reports",
    render: bool = True,
    echo: Callable[[str], None] = print,
    show_progress: bool = True,
    rerun: str | None = None,
    overrides: list[str] = (),
    detach: bool = False,
) -> SuiteResult:
    """Run a suite file (or a shipped suite by name, or a parsed ``Suite``) with the
    command line's ``key.path=value`` ``overrides`` (for a ``Suite``: the overrides it was
    parsed with), recorded in every new run's ``config.json``. ``detach``: the executor
    submits the pending runs and this returns at once (no report); ``SuiteResult.jobs``
    says where each run went."""
    if rerun is not None and rerun not in RERUN:
        raise HarnessError(f"--rerun {rerun!r}: expected one of {', '.join(RERUN)}")
    overrides = list(overrides)
    suite = suite_path if isinstance(suite_path, Suite) else load_suite(suite_path, overrides)
    registry = build_registry(suite.plugins)
    try:  # plugin options and folds are checked here: name the override that set them
        # the backbone contract starts each framework: only for runs left to train (below)
        checked = check_suite(suite, registry, backbones=False)
        # resolved: threads counted, normalization: auto the weights' own (ids unchanged)
        resolved = resolve_runs(suite, checked, filter_runs(expand(suite), list(only)),
                                overrides)
        runs = [r.run for r in resolved.values()]
    except HarnessError as exc:
        raise blame_override(exc, overrides, suite.source) from None
    if detach and not registry.get("executors", suite.executor.name).detach:
        raise HarnessError(f"{suite.source or suite.name}: executor.name: --detach needs an "
                           f"executor that submits to a scheduler; executor "
                           f"{suite.executor.name!r} runs the jobs itself")
    runs_root = Path(runs_root)
    result = SuiteResult(suite, runs)
    if dry_run:  # everything a run would refuse, before it decodes an image
        check_inputs(suite, registry, checked, runs, overrides)
        result.cache = cache_status(suite, registry, checked)
    current = current_fingerprints(suite, registry, list(resolved.values()))
    if dry_run:
        result.stale = [r.run_id for r in runs if RunFolder(run_dir_for(runs_root, r)).has_config()
                        and stale_of(RunFolder(run_dir_for(runs_root, r)), current[r.run_id])]
        result.stale_why = stale_why(runs, result.stale, runs_root, current)
        return result
    check_output_folders([store.child(runs_root, suite.name)]
                         + [run_dir_for(runs_root, r) for r in runs])
    SuiteRuns(store.child(runs_root, suite.name)).write_manifest(
        suite.name, suite.source, [r.run_id for r in expand(suite)])
    sorted_runs = triage(runs, runs_root, echo, rerun, current)
    done, pending = sorted_runs.done, sorted_runs.pending
    result.stale = [r.run_id for r in sorted_runs.stale]
    result.outcomes = [RunOutcome(r, "done") for r in done]
    echo(f"suite {suite.name!r}: {len(runs)} runs, {len(done)} already done, "
         f"{len(pending)} to run")
    if result.stale:
        result.stale_why = stale_why(runs, result.stale, runs_root, current)
        echo(stale_line(len(result.stale)))
        for line in result.stale_why:
            echo(line)
    if pending:  # what a run would refuse, before a tracker or the cache hears of it
        check_inputs(suite, registry, checked, pending, overrides)
    suite_runs = store.child(runs_root, suite.name)
    trackers = start_trackers(suite, registry, suite_runs, pending, done, echo)
    try:
        if pending:
            prepared = prepare(suite, registry, checked, show_progress=show_progress)
            # Only now, with every input known good (records, cache, folds), may the runs
            # that start over lose what they produced: a data problem never erases a run.
            restart_runs(pending, sorted_runs.restart, runs_root, echo)
            dropped = prepared.dropped
            for line in dropped_lines(dropped):
                echo(line)
            planned, memo = [], {}
            for run in pending:
                try:
                    write_run_files(suite, resolved[run.run_id], prepared, registry,
                                    run_dir_for(runs_root, run), memo)
                except guard.PluginFailure as exc:  # this run only: the others go on
                    RunFolder(run_dir_for(runs_root, run)).write_status("failed", error=str(exc))
                    echo(f"{run.run_id}: failed — {exc}")
                    if fail_fast:
                        raise StopSuite(f"run {run.run_id} failed (--fail-fast): {exc}") \
                            from None
                    result.outcomes.append(RunOutcome(run, "failed", error=str(exc)))
                    continue
                planned.append(run)
            pending = planned
            executor = registry.get("executors", suite.executor.name)
            work = make_work(runs_root, fail_fast, len(pending), echo)
            work.detach = detach
            if not detach:
                work.warm(registry, sorted({r.engine for r in pending}))
            try:
                executor.execute(pending, work, checked.executor)
                result.jobs = dict(work.jobs)
                if work.deferred and not detach:  # runs another process held: now wait for it, then skip
                    deferred, work.deferred, work.wait_for_locks = work.deferred, [], True
                    executor.execute(deferred, work, checked.executor)
            finally:
                work.close()
                result.outcomes += [outcome_of(run_dir_for(runs_root, r), r) for r in pending]
        else:  # nothing read the data this time: say again what the runs left out
            for line in dropped_lines(dropped_in(done, runs_root)):
                echo(line)
        if render and not detach:
            out = store.child(reports_root, suite.name)
            report = out / "index.html"
            if pending or not report_is_current(report, suite_runs):
                from harness.analysis.report import render_report

                report = render_report(suite_runs, out)
            result.report = report
            echo(f"report: {report}")
    finally:
        if trackers and detach:
            trackers.close()
        elif trackers:
            tracking.refresh(suite_runs, trackers)  # what the workers learnt of them
            trackers.suite_end(tracking.suite_end(
                suite_runs, suite.name, {o.run.run_id: o.state for o in result.outcomes},
                result.report.parent if result.report else None))
            trackers.close()
    return result


def check_inputs(suite: Suite, registry: Registry, checked: CheckedSuite,
                 runs: list[RunSpec], overrides: list[str]) -> None:
    """What ``runs`` need before they start: the backbone contract of their (backbone,
    engine) pairs, the data on disk and their weights files. Only for runs left to train:
    the contract starts each framework (TensorFlow alone takes seconds to import), which a
    suite whose runs are all done never needs."""
    pairs = [(r.backbone, r.engine) for r in runs]
    try:
        check_backbones(suite, registry, checked, pairs)
    except HarnessError as exc:
        raise blame_override(exc, overrides, suite.source) from None
    check_data(suite, registry, checked)
    check_weight_files(suite, checked.weights, pairs)


def check_output_folders(paths: list[Path]) -> None:
    """Refuse, before anything is written, a file where a folder must go."""
    for path in paths:
        for folder in (path, *path.parents):
            if folder.exists() and not folder.is_dir():
                raise HarnessError(f"{folder}: a file is in the way where the harness writes "
                                   "a folder; move it away or choose another --runs-dir")


def dropped_in(done: list[RunSpec], runs_root: Path) -> list[dict[str, str]]:
    """The dropped images the done runs recorded (each once, as the first run lists them)."""
    seen: dict[str, dict[str, str]] = {}
    for run in done:
        try:
            images = RunFolder(run_dir_for(runs_root, run)).config().dropped_images
        except DamagedFile:
            continue
        for image in images:
            seen.setdefault(image.get("file", ""), image)
    return list(seen.values())


def start_trackers(suite: Suite, registry: Registry, suite_runs: Path,
                   pending: list[RunSpec], done: list[RunSpec] = (),
                   echo: Callable[[str], None] = print) -> tracking.Trackers:
    """Tell the suite's trackers it starts, and replay the finished runs they lack
    (``Tracker.recorded``); ``trackers.json`` tells every worker of them."""
    from harness.plugin.trackers import SuiteInfo

    refs = [dataclasses.asdict(t) for t in suite.trackers]
    trackers = tracking.build(registry, refs)
    if trackers:
        info = SuiteInfo(name=suite.name, source=suite.source, runs_dir=suite_runs.resolve(),
                         pending=tuple(r.run_id for r in pending),
                         run_ids=tuple(r.run_id for r in expand(suite)))
        trackers.suite_start(info)
        counts = trackers.backfill(info, [suite_runs / r.run_id for r in done])
        for name, n in counts.items():
            if n:
                echo(f"tracker {name}: recording {n} finished run{'s' * (n != 1)} it lacks")
    tracking.write_settings(suite_runs, refs, suite.plugins, trackers)
    return trackers


def report_is_current(report: Path, suite_runs: Path) -> bool:
    """A report newer than every run folder's status needs no re-rendering."""
    if not report.exists():
        return False
    return SuiteRuns(suite_runs).last_status_change() <= report.stat().st_mtime


def dry_run_table(result: SuiteResult, runs_root: str | Path = "runs") -> list[dict[str, Any]]:
    return [{"run_id": r.run_id, **r.key(),
             "state": RunFolder(run_dir_for(Path(runs_root), r)).state()} for r in result.runs]


def summary_rows(result: SuiteResult, runs_root: str | Path = "runs") -> list[dict[str, Any]]:
    """Per combination, the mean over its finished runs of a few headline figures.

    Read from each run's ``metrics.json``: the terminal summary of ``harness run``; the
    report has everything else.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for outcome in result.outcomes:
        if outcome.state != "done":
            continue
        try:
            metrics = RunFolder(run_dir_for(Path(runs_root), outcome.run)).metrics()
        except DamagedFile:
            continue
        groups.setdefault(outcome.run.combination(), []).append(metrics)
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
