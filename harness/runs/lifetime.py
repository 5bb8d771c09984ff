"""Child processes that die with their parent.

A worker (or a cache-filling pool process) left running after its ``harness run`` was
killed keeps training and writing into a run folder nobody waits for. On Linux the kernel
sends a signal on the parent's death (``prctl(PR_SET_PDEATHSIG)``, reached through ctypes:
the standard library has no wrapper); elsewhere this is a no-op, and the worker's folder
lock still keeps a second process off the run.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
#: Set by the runner for a worker: the pid the worker expects as its parent.
PARENT_ENV = "HARNESS_PARENT_PID"


def parent_from_env() -> int | None:
    value = os.environ.get(PARENT_ENV, "")
    return int(value) if value.isdigit() else None


def die_with_parent(sig: int = signal.SIGTERM, parent: int | None = None) -> bool:
    """Ask the kernel for ``sig`` when the parent exits; True when that is in place.

    ``parent`` is the pid the parent had when it started this process: if it already died
    before the request (this process was re-parented), the signal is sent at once.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), sig)
    return True


def interrupt_on_term() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so a dying run records 'interrupted' and unlocks."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
