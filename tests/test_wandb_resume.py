"""W&B offline: a run interrupted and resumed by a second ``harness run`` ends with one
offline record, whose history holds each epoch once (the first attempt's partial record is
replaced, the rows the run resumed with are logged again). No network."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from wandb_files import offline_history


def test_an_interrupted_run_resumed_offline_has_one_record_with_each_step_once(make_suite,
                                                                               tmp_path):
    pytest.importorskip("wandb")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nobody = s.getsockname()[1]
    wandb_dir = tmp_path / "wandb_dir"
    wandb_dir.mkdir()
    suite = make_suite("wbr", trackers=["wandb"], budget="natural", matrix={"fold": [1]},
                       training={"epochs_per_phase": 6, "checkpoint_minutes": 0.001})
    command = [sys.executable, "-m", "harness.cli.main", "run", str(suite), "--runs-dir",
               str(tmp_path / "runs"), "--no-report"]
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(wandb_dir),
           "WANDB_BASE_URL": f"http://127.0.0.1:{nobody}", "HARNESS_QUIET": "1",
           "HARNESS_FAKE_EPOCH_SECONDS": "0.3"}
    proc = subprocess.Popen(command, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    runs = tmp_path / "runs" / "wbr"
    deadline = time.monotonic() + 120
    while not any(len(h.read_text().splitlines()) >= 4 for h in runs.glob("*/history.csv")):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "no epoch was trained in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 143, output
    (run_dir,) = [d for d in runs.iterdir() if d.is_dir()]
    wandb_id = (run_dir / "wandb_id.txt").read_text().strip()
    first = list((wandb_dir / "wandb").glob(f"offline-run-*-{wandb_id}"))
    assert len(first) == 1  # the interrupted attempt's partial record

    env["HARNESS_FAKE_EPOCH_SECONDS"] = "0"
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300,
                           check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming at phase" in again.stdout
    assert (run_dir / "wandb_id.txt").read_text().strip() == wandb_id
    records = list((wandb_dir / "wandb").glob(f"offline-run-*-{wandb_id}"))
    assert len(records) == 1 and records != first  # one record, the resumed one
    [run_file] = records[0].glob("*.wandb")
    with open(run_dir / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) > 4
    logged = [(step, h["images"]) for step, h in offline_history(run_file) if "images" in h]
    assert logged == [(i, float(row["images"])) for i, row in enumerate(rows, start=1)]
