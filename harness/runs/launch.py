"""Start one run's worker process: ``python -m harness.runs.worker RUN_DIR``.

Every executor ends here, on whatever machine the run trains (this one, a Ray node, a Slurm
node), so this module imports nothing but the standard library. The worker is tied to the
process that started it: when that process dies (a Ray worker killed with its node, a Slurm
job cancelled), the worker dies too and never trains beside the retry that resumes its run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

#: Set in a worker's environment: the pid whose death ends the worker (Linux).
PARENT_ENV = "HARNESS_WORKER_PARENT"


def worker_command(run_dir: str | Path) -> list[str]:
    return [sys.executable, "-m", "harness.runs.worker", str(run_dir)]


def run_worker(run_dir: str | Path, env: dict[str, str] | None = None,
               grace: float = 30.0) -> int:
    """Run the worker to its end and return its exit code (negative: killed by that signal).

    When the caller is interrupted (Ctrl-C, a cancelled Ray task, a Slurm requeue), the
    worker gets SIGINT and ``grace`` seconds to record the interruption in its folder before
    it is killed; the interruption then goes on up the caller's stack.
    """
    full_env = {**os.environ, **(env or {}), PARENT_ENV: str(os.getpid())}
    proc = subprocess.Popen(worker_command(run_dir), env=full_env)
    try:
        while True:
            try:
                # Waiting in slices: an interruption raised from another thread (a cancelled
                # Ray task) is only seen between them, never inside one blocking wait.
                return proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                continue
    except BaseException:
        stop(proc, grace)
        raise


def stop(proc: subprocess.Popen, grace: float) -> None:
    """SIGINT at once (the worker records ``interrupted``), then SIGKILL after ``grace``
    seconds.

    At once, whatever stopped the caller: waiting to see whether a terminal's Ctrl-C reached
    the worker already lets a fast run train several more epochs. The worker takes the
    second SIGINT such a Ctrl-C brings as the same stop (:func:`worker_signals`).
    """
    try:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except BaseException:
        proc.kill()
        raise


def worker_signals() -> None:
    """In the worker: Ctrl-C (SIGINT) and SIGTERM raise ``KeyboardInterrupt``, whoever
    started us, from the first line on (the training loop then turns them into "stop after
    this epoch").

    A child inherits its parent's signal mask and ignored signals (a Ray worker's task
    thread blocks SIGINT): the worker would train on, deaf to a cancel. And SIGTERM's
    default ends a process on the spot: a SIGTERM to the whole process group (``kill --
    -PGID``, a scheduler ending a job) that reached a worker still importing its framework
    (TensorFlow takes seconds) left its run ``running``, with no record of the stop.
    """
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    handler = _FirstStop()
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    die_with_parent()


#: Seconds in which a second SIGINT/SIGTERM is the same stop as the first (as in the loop,
#: ``harness.training.loop.StopSignal``).
REPEAT = 2.0


class _FirstStop:
    """SIGINT raises ``KeyboardInterrupt``, SIGTERM ``Interrupted``; a signal within
    :data:`REPEAT` seconds of the one before is the same stop and is ignored. One Ctrl-C
    arrives twice: from the terminal to the whole process group, and from the launcher
    that passes it on at once; the second must not cut short the record of the first."""

    def __init__(self):
        self.at: float | None = None

    def __call__(self, signum, frame) -> None:
        now = time.monotonic()
        if self.at is not None and now - self.at < REPEAT:
            return
        self.at = now
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        from harness.interrupts import Interrupted

        raise Interrupted(signum)


def die_with_parent() -> None:
    """In the worker: ask Linux to kill this process when the process that started it dies.

    ``prctl(PR_SET_PDEATHSIG)`` through ctypes: no library offers it without a compiled
    extension. Elsewhere (macOS) this does nothing.
    """
    parent = os.environ.get(PARENT_ENV)
    if not parent or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if str(os.getppid()) != parent:  # the parent died before prctl took effect
        os._exit(137)
