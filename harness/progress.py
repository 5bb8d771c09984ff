"""Progress bars for every long operation (rich, on stderr).

Drawn only on a terminal: piped or redirected output gets none (no stray blank lines in a
log). ``harness -q`` (or ``HARNESS_QUIET=1``, which the worker processes inherit) hides them
everywhere; ``HARNESS_PROGRESS=1`` draws them even when stderr is not a terminal.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any


def is_enabled(wanted: bool = True) -> bool:
    """Whether progress should be drawn: on a terminal, unless ``HARNESS_QUIET=1``."""
    if not wanted or os.environ.get("HARNESS_QUIET") == "1":
        return False
    return os.environ.get("HARNESS_PROGRESS") == "1" or sys.stderr.isatty()


def _rich_progress(transient: bool) -> Any:
    """One look for every bar: description, bar, done/total, elapsed, remaining."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(),
                    console=Console(file=sys.stderr), transient=transient)


@contextlib.contextmanager
def progress_bar(description: str, total: int, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; draws a progress bar while the block runs."""
    if not is_enabled(enabled):
        yield lambda n=1: None
        return
    with _rich_progress(transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


class Bars:
    """Nested training bars (phases, epochs, steps) that engines share; nothing when quiet."""

    def __init__(self, enabled: bool = True):
        self.bar = None
        self.stack = contextlib.ExitStack()
        if not enabled:
            return
        from rich.errors import LiveError

        bar = _rich_progress(transient=True)
        try:
            self.stack.enter_context(bar)
            self.bar = bar
        except LiveError:  # another live display owns the terminal
            self.bar = None

    def task(self, description: str, total: int, completed: int = 0):
        return self.bar.add_task(description, total=total, completed=completed) if self.bar else None

    def update(self, task, **kwargs) -> None:
        if self.bar is not None and task is not None:
            self.bar.update(task, **kwargs)

    def remove(self, task) -> None:
        if self.bar is not None and task is not None:
            self.bar.remove_task(task)

    def close(self) -> None:
        self.stack.close()
