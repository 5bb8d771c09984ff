"""A clean Ctrl-C / SIGTERM keeps no traceback in ``status.json`` (a failure does), and the
run that resumes says where: ``resuming at phase P epoch E``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

from harness.runs.runner import Work, resume_point
from harness.training import checkpoint


def test_resume_point_reads_the_checkpoint_position(make_suite, tmp_path):
    run_dir = tmp_path / "run"
    assert resume_point(run_dir) is None
    (run_dir / "checkpoints").mkdir(parents=True)
    checkpoint.save(run_dir / "checkpoints" / checkpoint.FILE, {"state/w": [1.0]},
                    {"run_id": "r", "position": {"phase": 1, "epoch": 2}})
    assert resume_point(run_dir) == "resuming at phase 2 epoch 3"
    (run_dir / "checkpoints" / checkpoint.FILE).write_bytes(b"not a checkpoint")
    assert resume_point(run_dir) is None  # the worker names a damaged one


def test_clean_interrupt_has_no_traceback_and_the_rerun_says_where_it_resumes(make_suite,
                                                                               tmp_path):
    suite = make_suite("ctrlc", training={"epochs_per_phase": 8, "checkpoint_minutes": 0.001},
                       budget="natural", matrix={"fold": [1]})
    command = [sys.executable, "-m", "harness.cli.main", "run", str(suite), "--runs-dir",
               str(tmp_path / "runs"), "--no-report"]
    env = {**os.environ, "HARNESS_FAKE_EPOCH_SECONDS": "0.3", "HARNESS_QUIET": "1"}
    proc = subprocess.Popen(command, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    runs = tmp_path / "runs" / "ctrlc"
    deadline = time.monotonic() + 120
    while not any(len(h.read_text().splitlines()) >= 3 for h in runs.glob("*/history.csv")):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "no epoch was trained in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 143, output
    (run_dir,) = [d for d in runs.iterdir() if d.is_dir()]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "interrupted" and status["error"].startswith("stopped by SIGINT")
    assert status.get("traceback", "") == ""

    env.pop("HARNESS_QUIET")
    env["HARNESS_FAKE_EPOCH_SECONDS"] = "0"
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300,
                           check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    position = re.search(r"\[1/1\] \S+: resuming at phase 1 epoch (\d+)\n", again.stdout)
    assert position, again.stdout
    assert 2 <= int(position.group(1)) <= 8


def test_a_failed_run_keeps_its_traceback(make_suite, tmp_path):
    suite = make_suite("fails", matrix={"fold": [1]})
    env = {**os.environ, "HARNESS_FAKE_FAIL_SEED": "0"}
    subprocess.run([sys.executable, "-m", "harness.cli.main", "run", str(suite), "--runs-dir",
                    str(tmp_path / "runs"), "--no-report"], env=env, capture_output=True,
                   timeout=300, check=False)
    (run_dir,) = [d for d in (tmp_path / "runs" / "fails").iterdir() if d.is_dir()]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "failed"
    assert "Traceback" in status["traceback"] and "fake failure" in status["traceback"]


def test_the_run_line_of_a_fresh_run_says_training(tmp_path):
    lines = []
    work = Work(tmp_path, fail_fast=False, total=1, echo=lines.append)

    class Run:
        run_id = "r1"
        suite = "s"

    work.started(Run())
    assert lines == ["[1/1] r1: training"]
