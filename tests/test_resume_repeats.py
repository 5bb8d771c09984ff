"""A run stopped and resumed gives the same predictions as one that ran through, byte for
byte, while another process keeps a core busy.

``harness run`` trains a tiny network twice into separate folders: once uninterrupted, once
stopped by SIGTERM after a few epochs (checkpoint written, run ``interrupted``) and resumed
by the same command with a busy-loop process started in between. The thread count is fixed
when the run is planned (``training.threads: 0`` is the machine's cores, never its idle
ones), so the load cannot change the numbers.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TIMING = ("seconds", "images_per_s", "select_seconds")


def history(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / "history.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(fh)]


def busy_loop() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


@pytest.mark.slow
@pytest.mark.torch
def test_a_resumed_run_equals_an_uninterrupted_one_under_load(make_suite, tmp_path):
    """The torch engine end to end (the keras engine's resume is tested in
    ``tests/test_keras_engine.py``, in one process)."""
    engine = "torch"
    pytest.importorskip("torch")
    suite = make_suite("resume", image_size=24,
                       datasets=[{"name": "synthetic", "options": {"n": 90, "seed": 2}}],
                       matrix={"backbone": ["tiny"], "sampler": ["none"], "engine": [engine],
                               "fold": [1]},
                       budget="natural",
                       training={"epochs_per_phase": 40, "max_steps_per_epoch": 1,
                                 "batch_size": 8, "checkpoint_minutes": 0,
                                 "backbone_options": {"channels": [4, 8]}})

    def command(runs: Path) -> list[str]:
        return [sys.executable, "-c", "from harness.cli import main; main()", "run",
                str(suite), "--runs-dir", str(runs), "--no-report"]

    env = {**os.environ, "HARNESS_QUIET": "1"}
    whole = subprocess.run(command(tmp_path / "whole"), capture_output=True, text=True,
                           env=env, timeout=600, check=False)
    assert whole.returncode == 0, whole.stdout + whole.stderr

    stopped = subprocess.Popen(command(tmp_path / "stopped"), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env,
                               start_new_session=True)
    runs = tmp_path / "stopped" / "resume"
    deadline = time.monotonic() + 300
    while not any(len(history(d)) >= 2 for d in runs.glob("*/")):
        assert stopped.poll() is None, stopped.communicate()[0]
        assert time.monotonic() < deadline, "no epoch was trained in time"
        time.sleep(0.05)
    stopped.send_signal(signal.SIGTERM)
    output = stopped.communicate(timeout=300)[0]
    assert stopped.returncode == 143, output
    (run_dir,) = [d for d in runs.iterdir() if d.is_dir()]
    phases = json.loads((run_dir / "plan.json").read_text())["plan"]["phases"]
    total = sum(p["epochs"] or 40 for p in phases)
    assert 2 <= len(history(run_dir)) < total
    assert not (run_dir / "predictions.csv").exists()

    busy = busy_loop()
    try:
        resumed = subprocess.run(command(tmp_path / "stopped"), capture_output=True,
                                 text=True, env=env, timeout=600, check=False)
    finally:
        busy.kill()
        busy.wait()
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    (reference,) = [d for d in (tmp_path / "whole" / "resume").iterdir() if d.is_dir()]
    assert reference.name == run_dir.name
    assert history(run_dir) == history(reference)
    assert (run_dir / "predictions.csv").read_bytes() == \
        (reference / "predictions.csv").read_bytes()
