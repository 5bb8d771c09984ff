"""SIGTERM handled like Ctrl-C, so a scheduler's preemption or ``kill`` stops cleanly.

Python turns SIGINT into ``KeyboardInterrupt`` but lets SIGTERM kill the process on the
spot: a cache fill would lose its last marks and ``harness run`` would leave its worker to be
killed without writing its checkpoint. Inside :func:`signals_interrupt` both signals raise
:class:`Interrupted` (a ``KeyboardInterrupt``), so every code path that already stops cleanly
on Ctrl-C does the same on SIGTERM, and the command exits ``128 + signum`` as a shell would
report the signal (130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; ``signum`` says which, ``detail`` where it stopped (the
    training loop: after which epoch, checkpoint written)."""

    def __init__(self, signum: int, detail: str = ""):
        super().__init__(detail or signal.Signals(signum).name)
        self.signum, self.detail = signum, detail


def exit_code(exc: BaseException) -> int:
    """``128 + signum``, as shells report a process ended by a signal (SIGINT when unknown)."""
    return 128 + int(getattr(exc, "signum", signal.SIGINT))


@contextlib.contextmanager
def signals_interrupt(error: type[Interrupted] = Interrupted) -> Iterator[None]:
    """Turn SIGINT and SIGTERM into ``error`` while the block runs (main thread only).

    Only where Python's defaults are in place: a caller's own handler (or a SIGINT ignored
    under nohup) is kept.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise error(signum)

    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    previous = {s: signal.signal(s, interrupt) for s, default in defaults.items()
                if signal.getsignal(s) is default}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
