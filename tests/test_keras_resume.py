"""The keras engine end to end: SIGTERM to ``harness run`` stops its TensorFlow worker after
the current epoch (checkpoint written, ``interrupted``, exit 143), and the same command,
run beside a busy process, resumes it to the predictions of a run that went through, byte
for byte. (``tests/test_keras_engine.py`` checks the same in one process; this is the
command, separate processes and a fresh TensorFlow for each.)

To keep TensorFlow start-ups few, the uninterrupted reference is the same run's files
(``config.json``, the plan) trained by a worker of its own, beside the stopped run.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TIMING = ("seconds", "images_per_s", "select_seconds")
#: Epochs of one step each: TensorFlow trains one in milliseconds, so enough of them that
#: the run is still training when the stop arrives.
EPOCHS = 150


def history(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / "history.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(fh)]


def wait_for(condition, proc: subprocess.Popen, what: str, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, f"{what} did not happen in time"
        time.sleep(0.05)


@pytest.mark.keras
def test_keras_run_stopped_by_sigterm_resumes_to_the_uninterrupted_result(make_suite,
                                                                            tmp_path):
    if importlib.util.find_spec("tensorflow") is None:  # not imported here: torch may follow
        pytest.skip("TensorFlow is not installed")
    suite = make_suite("kres", image_size=16,
                       datasets=[{"name": "synthetic", "options": {"n": 60, "seed": 2}}],
                       matrix={"backbone": ["tiny"], "sampler": ["none"], "engine": ["keras"],
                               "fold": [1]},
                       budget="natural",
                       training={"epochs_per_phase": EPOCHS, "max_steps_per_epoch": 1,
                                 "batch_size": 8, "checkpoint_minutes": 0, "threads": 1,
                                 "backbone_options": {"channels": [4]}})
    command = [sys.executable, "-c", "from harness.cli import main; main()", "run", str(suite),
               "--runs-dir", str(tmp_path / "stopped"), "--no-report"]
    env = {**os.environ, "HARNESS_QUIET": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    stopped = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env, start_new_session=True)
    runs = tmp_path / "stopped" / "kres"
    wait_for(lambda: any((d / "config.json").is_file() for d in runs.glob("*/")), stopped,
             "planning the run")
    (run_dir,) = [d for d in runs.iterdir() if d.is_dir()]
    reference = tmp_path / "whole" / "kres" / run_dir.name
    reference.mkdir(parents=True)
    for name in ("plan.json", "plan.npz", "config.json"):  # config.json last, as planned
        shutil.copy2(run_dir / name, reference / name)
    whole = subprocess.Popen([sys.executable, "-m", "harness.runs.worker", str(reference)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=env)
    try:
        wait_for(lambda: len(history(run_dir)) >= 2, stopped, "the second epoch")
        stopped.send_signal(signal.SIGTERM)  # the parent only, as `kill PID` does
        output = stopped.communicate(timeout=300)[0]
        assert stopped.returncode == 143, output
        status = json.loads((run_dir / "status.json").read_text())
        assert status["state"] == "interrupted", status
        assert status["error"].startswith("stopped by SIGINT after phase 1 epoch "), status
        assert status["error"].endswith("checkpoint written")
        phases = json.loads((run_dir / "plan.json").read_text())["plan"]["phases"]
        total = sum(p["epochs"] or EPOCHS for p in phases)
        assert 2 <= len(history(run_dir)) < total, output
        assert not (run_dir / "predictions.csv").exists()

        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            resumed = subprocess.run(command, capture_output=True, text=True, env=env,
                                     timeout=600, check=False)
        finally:
            busy.kill()
            busy.wait()
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert whole.wait(timeout=600) == 0, whole.communicate()[0]
    finally:
        whole.kill()
        whole.wait()
    assert len(history(reference)) == total
    assert history(run_dir) == history(reference)
    assert (run_dir / "predictions.csv").read_bytes() == \
        (reference / "predictions.csv").read_bytes()
