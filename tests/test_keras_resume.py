"""The keras engine end to end: SIGTERM to ``harness run`` stops its TensorFlow worker after
the current epoch (checkpoint written, ``interrupted``, exit 143), and the same command,
run beside a busy process, resumes it to the predictions of a run that went through, byte
for byte. (``tests/test_keras_engine.py`` checks the same in one process; this is the
command, separate processes and a fresh TensorFlow for each.)

To keep TensorFlow start-ups few, the uninterrupted reference is the same run's files
(``config.json``, the plan) trained by a worker of its own, beside the stopped run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from interrupted import busy_core, command, history, wait_for

TIMING = ("seconds", "images_per_s", "select_seconds")
#: Epochs of one step each: TensorFlow trains one in milliseconds, so enough of them that
#: the run is still training when the stop arrives.
EPOCHS = 150


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
    run = command(suite, tmp_path / "stopped")
    env = {**os.environ, "HARNESS_QUIET": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    stopped = subprocess.Popen(run, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
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
        wait_for(lambda: len(history(run_dir, TIMING)) >= 2, stopped, "the second epoch")
        stopped.send_signal(signal.SIGTERM)  # the parent only, as `kill PID` does
        output = stopped.communicate(timeout=300)[0]
        assert stopped.returncode == 143, output
        status = json.loads((run_dir / "status.json").read_text())
        assert status["state"] == "interrupted", status
        assert status["error"].startswith("stopped by SIGINT after phase 1 epoch "), status
        assert status["error"].endswith("checkpoint written")
        phases = json.loads((run_dir / "plan.json").read_text())["plan"]["phases"]
        total = sum(p["epochs"] or EPOCHS for p in phases)
        assert 2 <= len(history(run_dir, TIMING)) < total, output
        assert not (run_dir / "predictions.csv").exists()

        with busy_core():
            resumed = subprocess.run(run, capture_output=True, text=True, env=env,
                                     timeout=600, check=False)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert whole.wait(timeout=600) == 0, whole.communicate()[0]
    finally:
        whole.kill()
        whole.wait()
    assert len(history(reference, TIMING)) == total
    assert history(run_dir, TIMING) == history(reference, TIMING)
    assert (run_dir / "predictions.csv").read_bytes() == \
        (reference / "predictions.csv").read_bytes()
