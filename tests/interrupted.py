"""One torch run stopped by SIGTERM and resumed, next to the same run trained through: built
once per session, read by the tests of SIGTERM, of the resume line and of exact resume. The
helpers (the command, waiting on a run, reading its history, a busy core) serve the keras
twin of this run too (``tests/test_keras_resume.py``).

``harness run`` (a real subprocess: signals, exit codes, the worker process) trains a tiny
network three times: through into ``whole/``; into ``stopped/`` until SIGTERM after a few
epochs (checkpoint written, run ``interrupted``, exit 143); then the same command again into
``stopped/`` with a busy-loop process keeping a core busy, which resumes the run. What each
step leaves (exit codes, output, status and history at the stop) is kept for the tests.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness.testing import write_suite

#: Enough epochs that the run is still training when SIGTERM, sent after the third, reaches
#: the worker (an epoch of this run takes ~20 ms on an idle CPU).
EPOCHS = 80


def history(run_dir: Path, leave_out: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """``history.csv``'s rows (without the columns ``leave_out``); none before it exists."""
    path = run_dir / "history.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return [{k: v for k, v in row.items() if k not in leave_out}
                for row in csv.DictReader(fh)]


def wait_for(condition, proc: subprocess.Popen, what: str, seconds: float = 300) -> None:
    """Until ``condition()``, while ``proc`` runs (its output in the failure otherwise)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, f"{what} did not happen in time"
        time.sleep(0.05)


@contextlib.contextmanager
def busy_core():
    """A busy-loop process keeps one core busy while the block runs."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        busy.kill()
        busy.wait()


@dataclass
class Interrupted:
    suite: Path
    whole: Path  #: the uninterrupted run's folder
    run_dir: Path  #: the stopped, then resumed run's folder
    stop_code: int
    stop_output: str
    stop_status: dict  #: status.json right after the stop
    stop_epochs: int  #: history rows right after the stop
    stop_files: set[str]  #: the run folder's entries right after the stop
    planned_epochs: int
    resume_code: int
    resume_output: str  #: stdout + stderr of the resuming command (not quiet)


def command(suite: Path, runs: Path) -> list[str]:
    return [sys.executable, "-c", "from harness.cli import main; main()", "run", str(suite),
            "--runs-dir", str(runs), "--no-report"]


def interrupted_torch_run(root: Path) -> Interrupted:
    suite = write_suite(root / "term.yaml", "term", plugins=[], image_size=24,
                        cache_dir=str(root / "cache"),
                        datasets=[{"name": "synthetic", "options": {"n": 90, "seed": 2}}],
                        matrix={"backbone": ["tiny"], "sampler": ["none"], "engine": ["torch"],
                                "fold": [1]},
                        budget="natural",
                        training={"epochs_per_phase": EPOCHS, "max_steps_per_epoch": 1,
                                  "batch_size": 8, "checkpoint_minutes": 0,
                                  "backbone_options": {"channels": [4, 8]}})
    quiet = {**os.environ, "HARNESS_QUIET": "1"}
    whole = subprocess.run(command(suite, root / "whole"), capture_output=True, text=True,
                           env=quiet, timeout=600, check=False)
    assert whole.returncode == 0, whole.stdout + whole.stderr

    proc = subprocess.Popen(command(suite, root / "stopped"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=quiet,
                            start_new_session=True)
    runs = root / "stopped" / "term"
    wait_for(lambda: any(len(history(d)) >= 3 for d in runs.glob("*/")), proc,
             "the third epoch")
    proc.send_signal(signal.SIGTERM)  # the parent only, as `kill PID` does
    stop_output = proc.communicate(timeout=300)[0]
    (run_dir,) = [d for d in runs.iterdir() if d.is_dir()]
    stop_status = json.loads((run_dir / "status.json").read_text())
    stop_epochs = len(history(run_dir))
    stop_files = {p.name for p in run_dir.iterdir()}
    phases = json.loads((run_dir / "plan.json").read_text())["plan"]["phases"]

    loud = {k: v for k, v in os.environ.items() if k != "HARNESS_QUIET"}
    with busy_core():
        resumed = subprocess.run(command(suite, root / "stopped"), capture_output=True,
                                 text=True, env=loud, timeout=600, check=False)
    (reference,) = [d for d in (root / "whole" / "term").iterdir() if d.is_dir()]
    return Interrupted(suite=suite, whole=reference, run_dir=run_dir, stop_code=proc.returncode,
                       stop_output=stop_output, stop_status=stop_status,
                       stop_epochs=stop_epochs, stop_files=stop_files,
                       planned_epochs=sum(p["epochs"] or EPOCHS for p in phases),
                       resume_code=resumed.returncode,
                       resume_output=resumed.stdout + resumed.stderr)
