"""A clean Ctrl-C / SIGTERM keeps no traceback in ``status.json`` (a failure does), and the
run that resumes says where: ``resuming at phase P epoch E``."""

from __future__ import annotations

import json
import re

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


def test_clean_interrupt_has_no_traceback_and_the_rerun_says_where_it_resumes(
        interrupted_run):
    """The session's SIGTERM-stopped run (``tests/interrupted.py``), resumed not quiet."""
    run = interrupted_run
    assert run.stop_code == 143, run.stop_output
    status = run.stop_status
    assert status["state"] == "interrupted" and status["error"].startswith("stopped by SIGINT")
    assert status.get("traceback", "") == ""

    assert run.resume_code == 0, run.resume_output
    position = re.search(r"\[1/1\] \S+: resuming at phase 1 epoch (\d+)\n", run.resume_output)
    assert position, run.resume_output
    # a checkpoint after every epoch (checkpoint_minutes: 0): on from the first epoch not run
    assert int(position.group(1)) == run.stop_epochs + 1


def test_a_failed_run_keeps_its_traceback(make_suite, run_harness, tmp_path, monkeypatch):
    suite = make_suite("fails", matrix={"fold": [1]})
    monkeypatch.setenv("HARNESS_FAKE_FAIL_SEED", "0")  # reaches the worker process
    result = run_harness("run", suite, "--runs-dir", tmp_path / "runs", "--no-report")
    assert result.exit_code != 0, result.output
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
