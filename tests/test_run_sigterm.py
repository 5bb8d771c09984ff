"""SIGTERM to ``harness run`` (a scheduler's preemption, ``kill``) stops like Ctrl-C.

The running worker is asked to stop, writes its checkpoint and ``interrupted``, and the
command exits 143 (128 + SIGTERM) without a traceback; the same command then resumes the run
from its checkpoint and finishes it, every epoch recorded once. The run is the session's
``interrupted_run`` (``tests/interrupted.py``).
"""

from __future__ import annotations

import json

from interrupted import history


def test_sigterm_stops_the_run_with_a_checkpoint_exits_143_and_resumes(interrupted_run):
    run = interrupted_run
    assert run.stop_code == 143, run.stop_output
    assert "interrupted: finished runs are kept" in run.stop_output
    assert "Traceback" not in run.stop_output
    status = run.stop_status
    assert status["state"] == "interrupted"
    assert status["error"].startswith("stopped by SIGINT after phase 1 epoch ")
    assert status["error"].endswith("checkpoint written")
    assert status["seconds"] > 0
    assert status.get("traceback", "") == ""  # a clean stop is no bug: no traceback kept
    assert 3 <= run.stop_epochs < run.planned_epochs

    assert run.resume_code == 0, run.resume_output
    assert json.loads((run.run_dir / "status.json").read_text())["state"] == "done"
    rows = [(int(r["phase"]), int(r["epoch"])) for r in history(run.run_dir)]
    assert len(rows) == run.planned_epochs
    assert rows == sorted(set(rows))  # resumed, not restarted: each epoch once, in order
