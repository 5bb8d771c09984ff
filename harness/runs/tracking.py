"""Calling the suite's trackers without letting them fail or slow a run.

Each tracker gets its own daemon thread and a queue: the training thread only enqueues
(``run_start``, ``epoch``, ``run_end`` never wait), and the calls that wait (``suite_start``
for its result, ``recorded`` for the backfill, ``close`` to flush) draw on one budget of
``timeout`` seconds per tracker and suite, charged while the tracker finishes no call and
its thread does not run (a long backfill that keeps answering, or an import or a local store
slowed by a busy machine, is waited for; a server that does not answer costs the budget):
every process adds what it was charged
to ``trackers.json``, and the next process gets what is left. A tracker that raises or runs
out of budget is switched off with one ``TrackerWarning``, marked ``off`` in
``trackers.json`` so that no later worker of the suite waits for it again, and the run goes
on; an abandoned thread is a daemon and cannot keep the process alive.

What a tracker writes to stdout goes to stderr (``TrackerStdout``; a worker's whole stdout
goes there too), so ``harness run --json`` prints JSON only.

The runner writes the suite's tracker settings to ``runs/<suite>/trackers.json`` (with what
each tracker's ``suite_start`` returned), and every worker reads it from beside its run
folder: a run on any node of a cluster reports to the same trackers with no extra argument.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import queue
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessWarning
from harness.plugin.options import validate_options
from harness.plugin.trackers import RunEnd, RunInfo, SuiteEnd, SuiteInfo
from harness.rundir.folder import DamagedFile, RunFolder, SuiteRuns

#: Seconds a tracker may hold up one process in all (``trackers[].timeout`` in a suite).
DEFAULT_TIMEOUT = 30.0


class TrackerWarning(HarnessWarning):
    """A tracker failed or was too slow and is off for the rest of this suite."""


THREAD_PREFIX = "tracker-"

#: Share of a waiting window a tracker's thread must have run (CPU time) for the window to
#: count as work rather than waiting: a thread blocked on a server runs ~0 %, one that polls
#: far below 1 %, a working one on a machine with 50 busy processes per core still ~2 %.
WORKING = 0.01


def cpu_clock(thread: threading.Thread) -> Callable[[], float] | None:
    """The CPU seconds a running thread has used so far, where the system counts them per
    thread (Linux and most Unixes); ``None`` elsewhere (every wait is then charged)."""
    try:
        clock = time.pthread_getcpuclockid(thread.ident)
        time.clock_gettime(clock)
    except (AttributeError, OSError, TypeError):
        return None
    return functools.partial(time.clock_gettime, clock)


class TrackerStdout(io.TextIOBase):
    """``sys.stdout`` that sends what tracker threads write (MLflow's "View run" line) to
    stderr and everything else where it went before."""

    def __init__(self, stdout: Any):
        self.stdout = stdout

    def _target(self) -> Any:
        return sys.stderr if threading.current_thread().name.startswith(THREAD_PREFIX) \
            else self.stdout

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self.stdout.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stdout, name)


def tracker_output_to_stderr() -> None:
    if not isinstance(sys.stdout, TrackerStdout):
        sys.stdout = TrackerStdout(sys.stdout)


@dataclass
class _Call:
    method: str
    args: tuple[Any, ...]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None


class _Lane:
    """One tracker on its own thread; calls run in the order they were made."""

    def __init__(self, name: str, create: Callable[[], Any], timeout: float,
                 state: dict[str, Any] | None = None):
        self.name = name
        self.state = dict(state or {})
        self.budget = float(timeout)
        #: Seconds this process waited for the tracker while no call of it finished
        #: (charged to the suite's budget, ``spent`` in ``trackers.json``).
        self.waited = 0.0
        #: Calls finished so far (progress: a wait is charged only while it stands still).
        self.finished = 0
        self.off = False
        self.why = ""
        self._create = create
        self._tracker: Any = None
        self._error: BaseException | None = None
        self._queue: queue.Queue[_Call | None] = queue.Queue()
        tracker_output_to_stderr()
        self._thread = threading.Thread(target=self._loop, name=f"{THREAD_PREFIX}{name}",
                                        daemon=True)
        self._thread.start()
        # Taken while the thread surely runs: it ends only after ``close``.
        self._cpu = cpu_clock(self._thread)

    def _loop(self) -> None:
        while True:
            call = self._queue.get()
            if call is None:
                return
            if self._error is None:
                try:
                    if self._tracker is None:
                        self._tracker = self._create()
                    method = getattr(self._tracker, call.method, None)
                    if method is not None:
                        call.result = method(*call.args)
                except BaseException as exc:  # noqa: BLE001 - a tracker never fails a run
                    self._error = exc
            self.finished += 1
            call.done.set()

    def submit(self, method: str, *args: Any) -> _Call | None:
        self.check()
        if self.off:
            return None
        call = _Call(method, args)
        self._queue.put(call)
        return call

    def wait(self, call: _Call | None) -> Any:
        """The call's result, waiting at most what is left of this tracker's budget."""
        if call is None:
            return None
        # Only time in which no call finishes and the tracker's thread does not run is
        # charged: a slow backfill that goes on answering, or work that a busy machine
        # slows down (MLflow's import, an SQLite store), is waited for; a server that
        # answers nothing costs the budget once. (Windows of at least 0.1 s, so that a
        # working thread on a busy machine gets the CPU in every one.)
        while not call.done.is_set() and self.budget > 0 and self._error is None:
            done_before, ran_before = self.finished, self._ran()
            started = time.monotonic()
            call.done.wait(min(max(self.budget, 0.1), 1.0))
            spent = time.monotonic() - started
            ran_after = self._ran()
            working = None not in (ran_before, ran_after) \
                and ran_after - ran_before >= WORKING * spent
            if self.finished == done_before and not call.done.is_set() and not working:
                self.budget -= spent
                self.waited += spent
        finished = call.done.is_set()
        self.check()
        if not finished and not self.off:
            self.switch_off("no answer within its time limit (trackers[].timeout, one budget "
                            "per suite); the runs go on without it")
            return None
        return call.result

    def _ran(self) -> float | None:
        """CPU seconds the tracker's thread has run, or ``None`` where they are not known."""
        try:
            return self._cpu() if self._cpu is not None else None
        except OSError:
            return None

    def check(self) -> None:
        if self._error is not None and not self.off:
            exc = self._error
            self.switch_off(f"{type(exc).__name__}: {exc}")

    def switch_off(self, why: str) -> None:
        self.off = True
        self.why = why
        warnings.warn(TrackerWarning(f"tracker {self.name!r} is off for this suite: {why}"),
                      stacklevel=4)

    def close(self) -> None:
        call = self.submit("close")
        self.wait(call)
        self._queue.put(None)


class Trackers:
    """The trackers of one process; an empty one does nothing and starts no thread."""

    def __init__(self, lanes: Iterable[_Lane] = ()):
        self.lanes = list(lanes)

    def __bool__(self) -> bool:
        return bool(self.lanes)

    @property
    def off(self) -> list[str]:
        """Names of trackers switched off so far (failed or too slow)."""
        return [lane.name for lane in self.lanes if lane.off]

    def suite_start(self, info: SuiteInfo) -> dict[str, dict[str, Any]]:
        """Every tracker's state for the runs (what its ``suite_start`` returned)."""
        calls = [(lane, lane.submit("suite_start", info)) for lane in self.lanes]
        states = {}
        for lane, call in calls:
            result = lane.wait(call)
            lane.state = dict(result) if isinstance(result, Mapping) else {}
            states[lane.name] = lane.state
        return states

    def backfill(self, info: SuiteInfo, done: Iterable[Path]) -> dict[str, int]:
        """Replay the finished runs (their folders) that each tracker has no record of;
        returns how many each got. The replay is queued: ``close`` waits for it."""
        calls = [(lane, lane.submit("recorded", info)) for lane in self.lanes]
        counts = {}
        for lane, call in calls:
            held = lane.wait(call)
            if held is None or lane.off:
                continue
            held = set(held)
            missing = [d for d in done if Path(d).name not in held]
            for run_dir in missing:
                replay(lane, Path(run_dir))
            counts[lane.name] = len(missing)
        return counts

    def run_start(self, info: RunInfo) -> None:
        for lane in self.lanes:
            lane.submit("run_start", dataclasses.replace(info, suite_state=dict(lane.state)))

    def epoch(self, row: Mapping[str, Any], step: int) -> None:
        for lane in self.lanes:
            lane.submit("epoch", dict(row), int(step))

    def run_end(self, end: RunEnd) -> None:
        for lane in self.lanes:
            lane.submit("run_end", end)

    def suite_end(self, end: SuiteEnd) -> None:
        for lane in self.lanes:
            lane.submit("suite_end", end)

    def close(self) -> None:
        """Flush every tracker (each within its remaining budget) and stop the threads."""
        for lane in self.lanes:
            lane.close()


def live(ref: Mapping[str, Any]) -> bool:
    """Whether a tracker is still on for the suite: not switched off, budget left."""
    left = float(ref.get("timeout", DEFAULT_TIMEOUT)) - float(ref.get("spent", 0.0))
    return not ref.get("off") and left > 0


def build(registry: Any, refs: Iterable[Mapping[str, Any]]) -> Trackers:
    """Trackers from ``[{name, options, timeout, state, off, spent}]`` (a suite's
    ``trackers:``, as ``trackers.json`` keeps them).

    Names and options are checked before a suite runs (``harness.plugin.check``); a tracker
    found failing (``off``) or whose budget the suite has used up (``spent``) is left out,
    so a dead server costs one warning and one ``timeout`` per suite.
    """
    lanes = []
    for ref in refs:
        if not live(ref):
            continue
        left = float(ref.get("timeout", DEFAULT_TIMEOUT)) - float(ref.get("spent", 0.0))
        spec = registry.get("trackers", ref["name"])
        options = validate_options(spec.options, ref.get("options") or {},
                                   f"trackers.{ref['name']}.options", "trackers")
        lanes.append(_Lane(ref["name"], lambda spec=spec, options=options: spec.create(options),
                           left, ref.get("state")))
    return Trackers(lanes)


def write_settings(suite_runs: Path, refs: list[dict[str, Any]], plugins: list[str],
                   trackers: Trackers) -> None:
    """``runs/<suite>/trackers.json``: what every worker of the suite reports to."""
    lanes = {lane.name: lane for lane in trackers.lanes}
    SuiteRuns(suite_runs).write_trackers(plugins, [
        {**ref, "state": lanes[ref["name"]].state if ref["name"] in lanes else {},
         "off": ref["name"] not in lanes or lanes[ref["name"]].off,
         "spent": round(lanes[ref["name"]].waited, 3) if ref["name"] in lanes else 0.0}
        for ref in refs])
    for lane in trackers.lanes:
        lane.waited = 0.0  # recorded as spent


def settle(suite_runs: Path, trackers: Trackers) -> None:
    """Add what this process waited for each tracker, and which it switched off, to the
    suite's ``trackers.json`` (under a lock: workers on many nodes settle at once)."""
    from filelock import FileLock

    folder = SuiteRuns(suite_runs)
    if not trackers or not folder.trackers_path.is_file():
        return
    with FileLock(str(folder.trackers_path) + ".lock", timeout=10):
        settings = folder.trackers()
        if settings is None:
            return
        plugins, refs = settings
        lanes = {lane.name: lane for lane in trackers.lanes}
        for ref in refs:
            lane = lanes.get(ref.get("name"))
            if lane is None:
                continue
            ref["spent"] = round(float(ref.get("spent", 0.0)) + lane.waited, 3)
            lane.waited = 0.0
            if lane.off:
                ref["off"], ref["why"] = True, lane.why
        folder.write_trackers(plugins, refs)


def refresh(suite_runs: Path, trackers: Trackers) -> None:
    """Switch off, silently, the trackers that a worker of the suite switched off (it
    warned), and leave each the budget the suite has left."""
    try:
        settings = SuiteRuns(suite_runs).trackers()
    except DamagedFile:
        return
    refs = {ref.get("name"): ref for ref in (settings[1] if settings else [])}
    for lane in trackers.lanes:
        ref = refs.get(lane.name, {})
        lane.budget = min(lane.budget, float(ref.get("timeout", DEFAULT_TIMEOUT))
                          - float(ref.get("spent", 0.0)) - lane.waited)
        if ref.get("off") and not lane.off:
            lane.off, lane.why = True, str(ref.get("why", ""))


def for_run(run_dir: Path) -> Trackers:
    """The trackers a worker reports to, from ``trackers.json`` beside its run folder.

    Never raises: a run without trackers, or with settings that cannot be read, trains all
    the same (with a warning in the second case).
    """
    suite = SuiteRuns.of(run_dir)
    path = suite.trackers_path
    try:
        settings = suite.trackers()
        if settings is None or not settings[1]:
            return Trackers()
        from harness.plugin.registry import build_registry

        plugins, refs = settings
        if not any(live(ref) for ref in refs):  # all off: no registry, no thread
            return Trackers()
        return build(build_registry(plugins), refs)
    except Exception as exc:  # noqa: BLE001 - trackers never fail a run
        warnings.warn(TrackerWarning(f"{path}: trackers are off for this run: "
                                     f"{type(exc).__name__}: {exc}"), stacklevel=2)
        return Trackers()


def worker_close(run_dir: Path, trackers: Trackers) -> None:
    """In a worker: flush the trackers, then settle what they cost with the suite."""
    trackers.close()
    try:
        settle(SuiteRuns.of(run_dir).path, trackers)
    except Exception as exc:  # noqa: BLE001 - trackers never fail a run
        warnings.warn(TrackerWarning(f"{SuiteRuns.of(run_dir).trackers_path}: could not "
                                     f"record the trackers' time: {exc}"), stacklevel=2)


def replay(lane: _Lane, run_dir: Path) -> None:
    """One finished run told to one tracker as if it trained now, from its folder."""
    folder = RunFolder(run_dir)
    try:
        info = run_info(run_dir, folder.config().to_json())
        rows = folder.history() or []
        status = folder.status()
    except DamagedFile as exc:  # the report names the damage; the tracker skips the run
        warnings.warn(TrackerWarning(f"{exc}: not replayed to tracker {lane.name!r}"),
                      stacklevel=2)
        return
    lane.submit("run_start", dataclasses.replace(info, suite_state=dict(lane.state),
                                                 backfill=True))
    for step, row in enumerate(rows, start=1):
        lane.submit("epoch", dict(row), step)
    lane.submit("run_end", run_end(run_dir, "done", status.total_seconds or status.seconds))


def run_info(run_dir: Path, config: dict[str, Any]) -> RunInfo:
    """What trackers learn about a run when it starts, from its ``config.json``."""
    run = config.get("run", {})
    suite = config.get("suite", {})
    key = {k: run.get(k) for k in ("backbone", "sampler", "engine", "fold", "seed")}
    data = config.get("data") or {"datasets": suite.get("datasets", []),
                                  "image_size": suite.get("image_size"),
                                  "cache": suite.get("cache")}
    return RunInfo(
        run_id=run.get("run_id", Path(run_dir).name), run_dir=Path(run_dir),
        suite=run.get("suite", suite.get("name", "")), key=key,
        combination=f"{key['backbone']} / {key['sampler']} / {key['engine']}",
        config=config, data=data,
        resumed=RunFolder(run_dir).has_checkpoints(), attempt=_attempt(run_dir))


def _attempt(run_dir: Path) -> int:
    try:
        return max(RunFolder(run_dir).status().attempts, 1)
    except DamagedFile:
        return 1


def run_end(run_dir: Path, state: str, seconds: float, error: str = "") -> RunEnd:
    folder = RunFolder(run_dir)
    metrics = None
    if state == "done" and folder.metrics_path.is_file():
        try:
            metrics = folder.metrics()
        except DamagedFile:  # trackers never fail a run; the report names the damage
            metrics = None
    artifacts = folder.artifacts()
    return RunEnd(state=state, seconds=seconds, metrics=metrics, error=error,
                  artifacts=artifacts)


def suite_end(suite_runs: Path, name: str, states: dict[str, str],
              report_dir: Path | None) -> SuiteEnd:
    return SuiteEnd(name=name, runs_dir=suite_runs, states=states, report_dir=report_dir)
