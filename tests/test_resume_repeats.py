"""A run stopped and resumed gives the same predictions as one that ran through, byte for
byte, while another process keeps a core busy.

The session's ``interrupted_run`` (``tests/interrupted.py``): ``harness run`` trains a tiny
network twice into separate folders, once uninterrupted, once stopped by SIGTERM after a few
epochs and resumed by the same command with a busy-loop process running. The thread count is
fixed when the run is planned (``training.threads: 0`` is the machine's cores, never its idle
ones), so the load cannot change the numbers. The torch engine end to end (the keras
engine's resume is tested in ``tests/test_keras_engine.py``, in one process).
"""

from __future__ import annotations

import pytest
from interrupted import history

TIMING = ("seconds", "images_per_s", "select_seconds")


def untimed(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


@pytest.mark.slow
@pytest.mark.torch
def test_a_resumed_run_equals_an_uninterrupted_one_under_load(interrupted_run):
    run = interrupted_run
    assert run.stop_code == 143, run.stop_output
    assert 2 <= run.stop_epochs < run.planned_epochs
    assert "predictions.csv" not in run.stop_files
    assert run.resume_code == 0, run.resume_output
    assert run.whole.name == run.run_dir.name
    assert len(history(run.whole)) == run.planned_epochs
    assert untimed(history(run.run_dir)) == untimed(history(run.whole))
    assert (run.run_dir / "predictions.csv").read_bytes() == \
        (run.whole / "predictions.csv").read_bytes()
