"""The Ray and Slurm executors on this machine: a local Ray instance (``ray.init`` with two
CPUs) and submitit's local executor, with the framework-free fake engine.

The fakes' ``trace`` tracker appends each epoch a worker logs to a file (run folder, phase,
epoch, the worker's pid and its parent's pid), so a test can kill a worker's parent midway
and then see which process trained which epoch. Runs checkpoint after every epoch here: a
killed run may train again only the epoch it was in when it died.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from harness.rundir.folder import RunFolder
from harness.runs.runner import StopSuite, run_suite

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

EPOCHS = 8


def run(suite, tmp_path, **kw):
    kw.setdefault("render", False)
    return run_suite(suite, runs_root=tmp_path / "runs", reports_root=tmp_path / "reports",
                     echo=lambda m: None, show_progress=False, **kw)


def traced(trace: Path, suite: str) -> list[dict]:
    if not trace.exists():
        return []
    lines = [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]
    return [t for t in lines if Path(t["run_dir"]).parent.name == suite]


def kill_midway(trace: Path, suite: str, sig: int, after: int = 3) -> dict:
    """In a thread: once a run has finished ``after`` epochs, send ``sig`` to its worker's
    parent (the Ray worker process, or the submitit job); returns what was killed."""
    killed: dict = {}

    def watch():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for t in traced(trace, suite):
                if t["epoch"] >= after:
                    killed.update(t)
                    os.kill(t["ppid"], sig)
                    return
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()
    return killed


def assert_complete(trace: Path, tmp_path: Path, suite: str,
                    killed: str = "") -> dict[str, list[dict]]:
    """Every run done with its whole history; no epoch trained twice, except by the run
    ``killed`` midway (``*``: any run): at most the one epoch it was in, not checkpointed."""
    folders = sorted(p for p in (tmp_path / "runs" / suite).iterdir()
                     if p.is_dir() and (p / "config.json").exists())
    by_run: dict[str, list[dict]] = {}
    for t in traced(trace, suite):
        by_run.setdefault(Path(t["run_dir"]).name, []).append(t)
    for d in folders:
        assert RunFolder(d).state() == "done", d.name
        with open(d / "history.csv", newline="") as fh:
            rows = [(r["phase"], r["epoch"]) for r in csv.DictReader(fh)]
        assert len(rows) == len(set(rows)) == EPOCHS, d.name
        epochs = [(t["phase"], t["epoch"]) for t in by_run[d.name]]
        twice = len(epochs) - len(set(epochs))
        assert twice <= (1 if killed in (d.name, "*") else 0), f"{d.name} again: {epochs}"
    return by_run


def assert_resumed(attempts: list[dict]) -> None:
    """Two worker processes trained the run, the second from a checkpoint of the first."""
    pids = list(dict.fromkeys(t["pid"] for t in attempts))
    assert len(pids) == 2
    first = [t["epoch"] for t in attempts if t["pid"] == pids[0]]
    second = [t["epoch"] for t in attempts if t["pid"] == pids[1]]
    assert 1 < second[0] <= first[-1] + 1


def executor_suite(make_suite, name: str, executor: dict, **overrides):
    overrides.setdefault("matrix", {"seed": [0, 1]})
    return make_suite(name, budget="natural", trackers=["trace"], executor=executor,
                      training={"epochs_per_phase": EPOCHS, "checkpoint_minutes": 0.0001},
                      **overrides)


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    ray = pytest.importorskip("ray")
    trace = tmp_path_factory.mktemp("ray") / "trace.jsonl"
    env = {"HARNESS_FAKE_EPOCH_SECONDS": "0.25", "HARNESS_FAKE_TRACE": str(trace),
           "HARNESS_FAKE_FAIL_SEED": "7", "HARNESS_QUIET": "1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the Ray workers inherit it
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    # One GPU as Ray sees it (a logical resource: no device is touched by the fake engine).
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    yield trace
    ray.shutdown()
    for sig, handler in handlers.items():  # ray.init installs its own; later tests expect ours
        signal.signal(sig, handler)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


RAY = {"name": "ray", "options": {"gpus_per_run": 0, "cpus_per_run": 1, "max_retries": 2}}


def test_ray_retries_a_killed_worker_and_trains_nothing_twice(make_suite, tmp_path, local_ray):
    trace = local_ray
    suite = executor_suite(make_suite, "ray4", RAY)
    killed = kill_midway(trace, "ray4", signal.SIGKILL)
    result = run(suite, tmp_path)
    assert [o.state for o in result.outcomes] == ["done"] * 4
    assert killed, "no worker was killed"
    name = Path(killed["run_dir"]).name
    by_run = assert_complete(trace, tmp_path, "ray4", killed=name)
    assert len(by_run) == 4
    assert_resumed(by_run[name])
    assert all(len({t["pid"] for t in runs}) == 1 for n, runs in by_run.items() if n != name)
    # status.json counts both attempts of the killed run, and the time of both.
    status = RunFolder(tmp_path / "runs" / "ray4" / name).status()
    assert status.attempts == 2 and status.total_seconds > status.seconds
    # CPU-only runs (gpus_per_run: 0) see no GPU, although the cluster has one.
    assert {t["gpu"] for runs in by_run.values() for t in runs} == {""}


def test_ray_fail_fast_cancels_the_runs_not_finished(make_suite, tmp_path, local_ray):
    # One run at a time (two CPUs each); the runs of seed 7 fail as they start.
    suite = executor_suite(make_suite, "rayfail", {**RAY, "options": {
        **RAY["options"], "cpus_per_run": 2}}, matrix={"seed": [7, 8]})
    with pytest.raises(StopSuite, match="fake failure"):
        run(suite, tmp_path, fail_fast=True)
    states = [RunFolder(d).state() for d in (tmp_path / "runs" / "rayfail").iterdir()
              if d.is_dir()]
    # Ray need not start the tasks in order: a seed-8 run may finish before the failure.
    assert len(states) == 4 and states.count("failed") == 1
    assert states.count("pending") >= 2  # cancelled before they started


def test_ray_ctrl_c_interrupts_the_runs_and_they_resume(make_suite, tmp_path, local_ray):
    trace = local_ray
    suite = executor_suite(make_suite, "rayint", RAY)

    def press_ctrl_c():  # in the driver, once a run is under way
        wait_for_epoch(trace, "rayint", 2)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run(suite, tmp_path)
    states = [RunFolder(d).state() for d in (tmp_path / "runs" / "rayint").iterdir()
              if d.is_dir()]
    assert "running" not in states  # every started worker recorded its interruption
    assert states.count("interrupted") >= 1 and "done" not in states
    again = run(suite, tmp_path)
    assert [o.state for o in again.outcomes] == ["done"] * 4
    assert_complete(trace, tmp_path, "rayint")  # interrupted runs checkpoint before they stop


def wait_for_epoch(trace: Path, suite: str, epoch: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(t["epoch"] >= epoch
                                                  for t in traced(trace, suite)):
        time.sleep(0.05)


def test_ray_runs_share_a_gpu(make_suite, tmp_path, local_ray):
    trace = local_ray
    suite = executor_suite(make_suite, "rayhalf", {"name": "ray", "options": {
        "gpus_per_run": 0.5, "cpus_per_run": 1}}, matrix={"seed": [0]})
    assert [o.state for o in run(suite, tmp_path).outcomes] == ["done"] * 2
    by_run = assert_complete(trace, tmp_path, "rayhalf")
    assert {t["gpu"] for runs in by_run.values() for t in runs} == {"0"}  # Ray's GPU 0


def test_ray_keeps_to_parallel(make_suite, tmp_path, local_ray):
    from test_executor_limits import overlapping

    trace = local_ray
    suite = executor_suite(make_suite, "raypar", {"name": "ray", "options": {
        **RAY["options"], "parallel": 1}}, matrix={"seed": [0]})
    assert [o.state for o in run(suite, tmp_path).outcomes] == ["done"] * 2
    mine = tmp_path / "raypar.jsonl"
    mine.write_text("".join(json.dumps(t) + "\n" for t in traced(trace, "raypar")))
    assert overlapping(mine) == 1  # two CPUs, one each: two at once without parallel


def test_ray_asking_more_gpus_than_the_cluster_has_says_what_to_do(make_suite, tmp_path,
                                                                    local_ray):
    from harness.errors import HarnessError

    suite = executor_suite(make_suite, "raygpu", {"name": "ray", "options": {"gpus_per_run": 2}})
    with pytest.raises(HarnessError, match="cluster has 1.*gpus_per_run: 0"):
        run(suite, tmp_path)


def test_slurm_local_requeues_a_preempted_job_which_resumes(make_suite, tmp_path,
                                                            monkeypatch):
    pytest.importorskip("submitit")
    trace = tmp_path / "trace.jsonl"
    monkeypatch.setenv("HARNESS_FAKE_EPOCH_SECONDS", "0.25")
    monkeypatch.setenv("HARNESS_FAKE_TRACE", str(trace))
    suite = executor_suite(make_suite, "slurm2", {"name": "slurm", "options": {
        "cluster": "local", "gpus_per_run": 0, "cpus_per_run": 1, "poll_seconds": 0.2,
        "time_min": 10}}, matrix={"seed": [0]})
    # Slurm warns a job with SIGUSR2 before preempting it or at its time limit.
    killed = kill_midway(trace, "slurm2", signal.SIGUSR2)
    result = run(suite, tmp_path)
    assert [o.state for o in result.outcomes] == ["done"] * 2
    assert killed, "no job was signalled"
    name = Path(killed["run_dir"]).name
    # Requeued, not killed: the worker finished its epoch and checkpointed before it stopped.
    by_run = assert_complete(trace, tmp_path, "slurm2")
    assert_resumed(by_run[name])
    status = RunFolder(tmp_path / "runs" / "slurm2" / name).status()
    assert status.attempts == 2 and status.total_seconds > status.seconds
    logs = list((tmp_path / "runs" / "slurm2" / "slurm").glob("*/*_log.out"))
    assert logs  # submitit's logs lie beside the run folders


def test_slurm_without_slurm_says_so(make_suite, tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    from harness.errors import HarnessError

    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch
    suite = make_suite("noslurm", executor={"name": "slurm"})
    with pytest.raises(HarnessError, match="sbatch not found.*cluster: local"):
        run(suite, tmp_path)


def test_slurm_local_ctrl_c_cancels_the_jobs(make_suite, tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    trace = tmp_path / "trace.jsonl"
    monkeypatch.setenv("HARNESS_FAKE_EPOCH_SECONDS", "0.25")
    monkeypatch.setenv("HARNESS_FAKE_TRACE", str(trace))
    suite = executor_suite(make_suite, "slurmint", {"name": "slurm", "options": {
        "cluster": "local", "gpus_per_run": 0, "poll_seconds": 0.2}}, matrix={"seed": [0]})

    def press_ctrl_c():
        wait_for_epoch(trace, "slurmint", 2)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run(suite, tmp_path)
    time.sleep(3)  # a job that was not cancelled would go on training meanwhile
    seen = len(traced(trace, "slurmint"))
    time.sleep(2)
    assert len(traced(trace, "slurmint")) == seen
    states = [RunFolder(d).state() for d in (tmp_path / "runs" / "slurmint").iterdir()
              if d.is_dir() and (d / "config.json").exists()]
    assert "done" not in states
    monkeypatch.setenv("HARNESS_FAKE_EPOCH_SECONDS", "0")
    again = run(suite, tmp_path)
    assert [o.state for o in again.outcomes] == ["done"] * 2
    assert_complete(trace, tmp_path, "slurmint", killed="*")  # the jobs were killed


def test_local_executor_trains_one_run_per_gpu_at_a_time(make_suite, tmp_path, monkeypatch):
    trace = tmp_path / "trace.jsonl"
    monkeypatch.setenv("HARNESS_FAKE_EPOCH_SECONDS", "0.25")
    monkeypatch.setenv("HARNESS_FAKE_TRACE", str(trace))
    suite = executor_suite(make_suite, "lanes", {"name": "local", "options": {"gpus": [0, 1]}})
    result = run(suite, tmp_path)
    assert [o.state for o in result.outcomes] == ["done"] * 4
    by_run = assert_complete(trace, tmp_path, "lanes")
    gpus = {name: {t["gpu"] for t in runs} for name, runs in by_run.items()}
    assert all(len(g) == 1 for g in gpus.values())  # a run keeps its GPU
    assert sorted(g for gs in gpus.values() for g in gs) == ["0", "0", "1", "1"]
    for gpu in ("0", "1"):  # the two runs of a GPU trained one after the other
        first, second = sorted((runs[0]["time"], runs[-1]["time"]) for runs in by_run.values()
                               if runs[0]["gpu"] == gpu)
        assert first[1] <= second[0]


def test_local_fail_fast_starts_no_new_run_on_any_gpu(make_suite, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_FAKE_FAIL_SEED", "7")
    suite = executor_suite(make_suite, "lanesfail", {"name": "local", "options": {
        "gpus": [0, 1]}}, matrix={"seed": [7, 8]})
    with pytest.raises(StopSuite, match="fake failure"):
        run(suite, tmp_path, fail_fast=True)
    states = [RunFolder(d).state() for d in (tmp_path / "runs" / "lanesfail").iterdir()
              if d.is_dir()]
    assert states.count("failed") == 1 and states.count("pending") == 2
