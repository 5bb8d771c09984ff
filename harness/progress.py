"""Progress bars for every long operation (rich), quiet when asked or not on a terminal."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator


def is_enabled(wanted: bool = True) -> bool:
    """Whether progress should be drawn (``HARNESS_QUIET=1`` turns every bar off)."""
    return wanted and os.environ.get("HARNESS_QUIET") != "1"


@contextlib.contextmanager
def progress_bar(description: str, total: int, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; draws a rich progress bar on stderr while the block runs."""
    if not is_enabled(enabled):
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(file=sys.stderr)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


class Bars:
    """Nested training bars (phases, epochs, steps) that engines share; nothing when quiet."""

    def __init__(self, enabled: bool = True):
        self.bar = None
        self.stack = contextlib.ExitStack()
        if not enabled:
            return
        from rich.console import Console
        from rich.errors import LiveError
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), TimeRemainingColumn(),
                       console=Console(file=sys.stderr), transient=True)
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
