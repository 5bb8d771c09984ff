"""Executors that say what is wrong and keep to their limits: a Ray cluster that cannot be
reached is one line, ``parallel`` bounds every executor, attempts are counted in
``status.json``, and a Slurm suite can be submitted and left (``--detach``, with ``sbatch``
faked on PATH) and followed with ``harness status`` from the run folders alone."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.rundir.folder import RunFolder

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def overlapping(trace: Path) -> int:
    """The most runs that trained at the same moment, from the fake engine's trace."""
    spans: dict[str, list[float]] = {}
    for line in trace.read_text().splitlines():
        t = json.loads(line)
        spans.setdefault(t["run_dir"], []).append(t["time"])
    events = sorted([(min(v), 1) for v in spans.values()] + [(max(v), -1) for v in spans.values()])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ray_cluster_that_cannot_be_reached_is_one_line_within_seconds(make_suite, tmp_path,
                                                                      run_harness):
    ray = pytest.importorskip("ray")
    from harness_plugins.executors.ray_executor import RayOptions, connect

    from harness.errors import HarnessError

    port = closed_port()
    expected = (f"executor 'ray': cannot reach the Ray cluster at 127.0.0.1:{port}: "
                "Connection refused; set executor.options.address (or RAY_ADDRESS) to a "
                "running cluster")
    started = time.monotonic()
    with pytest.raises(HarnessError) as caught:
        connect(ray, RayOptions(address=f"127.0.0.1:{port}"))
    assert time.monotonic() - started < 5  # Ray itself would retry for about 30 s
    assert str(caught.value) == expected
    suite = make_suite("rayaddr", executor={"name": "ray", "options": {
        "address": f"127.0.0.1:{port}", "gpus_per_run": 0}})
    result = run_harness("run", suite, "--runs-dir", tmp_path / "runs", "--no-report")
    assert result.exit_code == 2
    assert [ln for ln in result.stderr.splitlines() if ln.strip()][-1] == f"error: {expected}"
    assert "Traceback" not in result.output


def test_ray_init_that_hangs_or_fails_is_one_line(monkeypatch):
    pytest.importorskip("ray")
    import threading

    from harness_plugins.executors.ray_executor import RayOptions, connect

    from harness.errors import HarnessError

    release = threading.Event()

    class Hanging:
        def init(self, **kw):
            release.wait(30)

    class Refusing:
        def init(self, **kw):
            raise ConnectionError("Authentication failed: invalid token\n  more detail")

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    options = RayOptions(connect_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(HarnessError, match=r"no answer from a local Ray instance within 0.5 s"):
        connect(Hanging(), options)
    assert time.monotonic() - started < 5
    release.set()
    with pytest.raises(HarnessError) as caught:
        connect(Refusing(), options)
    assert str(caught.value).splitlines() == [
        ("executor 'ray': cannot connect to a local Ray instance: ConnectionError: "
        "Authentication failed: invalid token; set executor.options.address (or RAY_ADDRESS) "
        "to a running cluster")]


def test_local_executor_runs_parallel_runs_at_once_on_a_cpu(make_suite, tmp_path, monkeypatch):
    parallel = 2  # one at a time without it (test_executors: one run per GPU)
    from harness.runs.runner import run_suite

    trace = tmp_path / "trace.jsonl"
    monkeypatch.setenv("HARNESS_FAKE_EPOCH_SECONDS", "0.3")
    monkeypatch.setenv("HARNESS_FAKE_TRACE", str(trace))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    suite = make_suite("par", budget="natural", trackers=["trace"],
                       training={"epochs_per_phase": 3},
                       executor={"name": "local", "options": {"parallel": parallel}})
    result = run_suite(suite, runs_root=tmp_path / "runs", render=False, echo=lambda m: None,
                       show_progress=False)
    assert [o.state for o in result.outcomes] == ["done"] * 2
    assert overlapping(trace) == parallel


def test_slurm_local_keeps_to_parallel(make_suite, tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    from harness.runs.runner import run_suite

    trace = tmp_path / "trace.jsonl"
    monkeypatch.setenv("HARNESS_FAKE_EPOCH_SECONDS", "0.3")
    monkeypatch.setenv("HARNESS_FAKE_TRACE", str(trace))
    suite = make_suite("slurmpar", budget="natural", trackers=["trace"],
                       training={"epochs_per_phase": 3},
                       executor={"name": "slurm", "options": {
                           "cluster": "local", "gpus_per_run": 0, "cpus_per_run": 1,
                           "parallel": 1, "poll_seconds": 0.2}})
    result = run_suite(suite, runs_root=tmp_path / "runs", render=False, echo=lambda m: None,
                       show_progress=False)
    assert [o.state for o in result.outcomes] == ["done"] * 2
    assert overlapping(trace) == 1


def test_attempts_and_their_time_add_up_across_workers(make_suite, tmp_path, monkeypatch):
    """One attempt's total is its time; after a killed attempt, the next counts both."""
    from harness.runs.runner import run_suite

    suite = make_suite("tries", budget="natural", matrix={"seed": [0]}, split={"folds": 2},
                       training={"epochs_per_phase": 2})
    run_suite(suite, runs_root=tmp_path / "runs", render=False, echo=lambda m: None,
              show_progress=False, only=["fold=1"], dry_run=False)
    folder = next(RunFolder(p) for p in (tmp_path / "runs" / "tries").iterdir()
                  if p.is_dir() and (p / "status.json").exists())
    first = folder.status()
    assert (first.state, first.attempts) == ("done", 1)
    assert first.total_seconds == pytest.approx(first.seconds, abs=0.01)
    # The record a killed attempt leaves: "running" written when it started, 5 s before
    # its last write (the history and checkpoints it wrote since stay).
    (folder.path / "predictions.csv").unlink()
    status = json.loads(folder.status_path.read_text())
    folder.status_path.unlink()
    last = max(p.stat().st_mtime for p in folder.path.rglob("*") if p.is_file())
    status.update(state="running", started=last - 5.0, attempts=2, total_seconds=first.seconds)
    folder.status_path.write_text(json.dumps(status))
    os.utime(folder.status_path, (last - 5.0, last - 5.0))
    from harness.runs.attempts import begin

    attempt = begin(folder, time.time())
    assert attempt.number == 3
    assert attempt.earlier == pytest.approx(first.seconds + 5.0, abs=0.01)


def test_detach_submits_prints_the_jobs_and_status_follows_the_folders(make_suite, tmp_path,
                                                                       monkeypatch,
                                                                       run_harness):
    pytest.importorskip("submitit")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("sbatch", "srun"):  # a scheduler that accepts every job and runs none
        script = bin_dir / name
        script.write_text('#!/bin/sh\necho "$@" >> "$(dirname "$0")/submitted.log"\n'
                          'echo "Submitted batch job 4242"\n')
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    suite = make_suite("detached", executor={"name": "slurm", "options": {"gpus_per_run": 0}})
    runs = tmp_path / "runs"
    result = run_harness("run", suite, "--detach", "--json", "--runs-dir", runs)
    assert result.exit_code == 0, result.output
    submitted = json.loads(result.stdout)["submitted"]
    assert sorted(s["job"] for s in submitted) == ["slurm job 4242_0", "slurm job 4242_1"]
    assert len((bin_dir / "submitted.log").read_text().splitlines()) == 1  # one job array
    assert not (tmp_path / "reports").exists()

    def status():
        out = run_harness("status", suite, "--runs-dir", runs, "--json")
        assert out.exit_code == 0, out.output
        return {r["run_id"]: r for r in json.loads(out.stdout)["runs"]}

    assert {(r["state"], r["job"]) for r in status().values()} == {
        ("pending", "slurm job 4242_0"), ("pending", "slurm job 4242_1")}
    # Slurm starts the first job: it is what the job script runs.
    first = submitted[0]["run_id"]
    subprocess.run([sys.executable, "-m", "harness.runs.worker", str(runs / "detached" / first)],
                   check=True, capture_output=True)
    now = status()
    assert (now[first]["state"], now[first]["attempts"], now[first]["job"]) == (
        "done", 1, submitted[0]["job"])
    assert now[first]["seconds"] > 0
    other = submitted[1]["run_id"]
    assert now[other]["state"] == "pending"
    table = run_harness("status", suite, "--runs-dir", runs).stdout
    assert "queued" in table and "suite 'detached': 2 runs: 1 done, 1 queued" in table


def test_detach_with_an_executor_that_runs_jobs_itself_is_refused(make_suite, run_harness,
                                                                  tmp_path):
    result = run_harness("run", make_suite("nodetach"), "--detach", "--runs-dir",
                         tmp_path / "runs")
    assert result.exit_code == 2
    assert "--detach needs an executor that submits to a scheduler; executor 'local'" \
        in result.output
