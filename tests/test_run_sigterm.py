"""SIGTERM to ``harness run`` (a scheduler's preemption, ``kill``) stops like Ctrl-C.

The running worker is asked to stop, writes its checkpoint and ``interrupted``, and the
command exits 143 (128 + SIGTERM) without a traceback; the same command then resumes the run
from its checkpoint and finishes it, every epoch recorded once.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("torch")

EPOCHS = 40


def history_rows(run_dir) -> list[dict[str, str]]:
    path = run_dir / "history.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_sigterm_stops_the_run_with_a_checkpoint_exits_143_and_resumes(make_suite, tmp_path):
    suite = make_suite("term", image_size=32,
                       matrix={"backbone": ["tiny"], "sampler": ["none"], "engine": ["torch"]},
                       training={"epochs_per_phase": EPOCHS, "max_steps_per_epoch": 1,
                                 "batch_size": 8})
    command = [sys.executable, "-c", "from harness.cli import main; main()", "run", str(suite),
               "--only", "fold=1", "--runs-dir", str(tmp_path / "runs"), "--no-report"]
    env = {**os.environ, "HARNESS_QUIET": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)
    runs = tmp_path / "runs" / "term"
    deadline = time.monotonic() + 240
    while not any(len(history_rows(d)) >= 3 for d in runs.glob("*/")):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "no epoch was trained in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # the parent only, as `kill PID` does
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 143, output
    assert "interrupted: finished runs are kept" in output
    assert "Traceback" not in output
    (run_dir,) = [d for d in runs.iterdir() if d.is_dir()]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "interrupted"
    assert status["error"].startswith("stopped by SIGINT after phase 1 epoch ")
    assert status["error"].endswith("checkpoint written")
    assert status["seconds"] > 0
    assert status.get("traceback", "") == ""  # a clean stop is no bug: no traceback kept
    planned = json.loads((run_dir / "plan.json").read_text())["plan"]["phases"]
    total = sum(p["epochs"] for p in planned)
    assert 3 <= len(history_rows(run_dir)) < total

    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600,
                           check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads((run_dir / "status.json").read_text())["state"] == "done"
    rows = [(int(r["phase"]), int(r["epoch"])) for r in history_rows(run_dir)]
    assert len(rows) == total
    assert rows == sorted(set(rows))  # resumed, not restarted: each epoch once, in order
