"""Family "processes": settings that cannot train are refused before any process starts,
and a run another process holds is waited for, then not trained twice (see also
``tests/test_robust_runs.py``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.runs.worker import ALREADY_DONE
from hostile.hostile_kit import harness, refused


def test_all_zero_quotas_are_refused_by_dry_run(space):
    space.write_suite(matrix={"sampler": ["phased"]},
                      samplers={"phased": {"quotas": {"normal": 0, "pneumonia": 0,
                                                      "covid19": 0}}})
    refused(harness("run", space.suite, "--dry-run"), "samplers.phased.quotas",
            "every quota is 0")


@pytest.mark.parametrize("only, words", [
    (["sampler="], ["sampler=", "no value"]),
    (["seed= ,"], ["no value"]),
    (["fold=9"], ["fold=9", "no run of the suite"]),
])
def test_an_only_filter_that_selects_nothing_exits_2(space, only, words):
    args = [a for o in only for a in ("--only", o)]
    refused(harness("run", space.suite, "--dry-run", *args), "--only", *words)


def test_a_run_done_while_a_worker_waited_for_its_lock_is_not_trained_again(space):
    """The worker says it waits (an event on its stderr), the owner finishes, the worker
    finds the run done: no sleep, no timing."""
    folder = space.folders()[0]
    started = folder.status().started
    folder.status_path.rename(folder.path / "status.saved")
    lock = folder.lock().acquire()
    try:
        worker = subprocess.Popen([sys.executable, "-m", "harness.runs.worker",
                                   str(folder.path)], stderr=subprocess.PIPE, text=True)
        first = worker.stderr.readline()  # blocks until the worker reports that it waits
        assert "waiting for it" in first
        (folder.path / "status.saved").rename(folder.status_path)  # the owner finishes
    finally:
        lock.release()
    _, rest = worker.communicate(timeout=120)
    assert worker.returncode == ALREADY_DONE, first + rest
    assert folder.status().started == started
