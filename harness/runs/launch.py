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
    except BaseException as exc:
        stop(proc, grace, at_once=getattr(exc, "signum", signal.SIGINT) != signal.SIGINT)
        raise


def stop(proc: subprocess.Popen, grace: float, at_once: bool = False) -> None:
    """SIGINT (the worker records ``interrupted``), then SIGKILL after ``grace`` seconds.

    After a Ctrl-C the worker is given half a second first (the terminal sent it the
    signal too); ``at_once`` (a SIGTERM, which ``kill PID`` sends to this process alone)
    passes it on without that wait: a fast run would otherwise train several more epochs.
    """
    try:
        if not at_once:
            proc.wait(timeout=0.5)  # a Ctrl-C on the terminal reached the worker already
            return
    except subprocess.TimeoutExpired:
        pass
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
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminated)
    die_with_parent()


def _terminated(signum, frame) -> None:
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
