"""The Python API: run a suite and read its results without the command line.

``harness.run(suite)`` takes a suite file or a plain dict (validated exactly as a file is;
relative paths in a dict resolve against the current folder) and returns the runner's
``SuiteResult``; ``harness.load_results(runs_dir)`` gives every figure as a long pandas
table (``harness.analysis.results``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.analysis.results import load_results

__all__ = ["load_results", "run"]


def run(suite: str | Path | Mapping[str, Any], *, overrides: list[str] = (),
        only: list[str] = (), dry_run: bool = False,
        fail_fast: bool = False, runs_dir: str | Path = "runs",
        reports_dir: str | Path = "reports", report: bool = True, quiet: bool = True):
    """Train every run of ``suite`` that is not done yet (as ``harness run``).

    ``suite`` is a file, the name of a shipped suite (``"demo"``) or a dict; ``overrides``
    are the command line's ``"key.path=value"`` items (``["training.lr=1e-3"]``).
    ``quiet`` (the default) prints nothing and draws no progress bars; errors are raised as
    ``HarnessError`` with the same one-line messages as the command line.
    """
    import os

    from harness.config.suite import parse_suite
    from harness.runs.runner import run_suite

    if isinstance(suite, Mapping):
        suite = parse_suite(dict(suite), str(Path.cwd() / f"{suite.get('name', 'suite')}"
                                                            " (a dict)"), overrides)
    saved = os.environ.get("HARNESS_QUIET")
    if quiet:
        os.environ["HARNESS_QUIET"] = "1"  # worker processes inherit it
    try:
        return run_suite(suite, only=list(only), dry_run=dry_run, fail_fast=fail_fast,
                         runs_root=runs_dir, reports_root=reports_dir,
                         render=report and not dry_run,
                         echo=(lambda line: None) if quiet else print,
                         show_progress=not quiet, overrides=list(overrides))
    finally:
        if quiet:
            if saved is None:
                os.environ.pop("HARNESS_QUIET", None)
            else:
                os.environ["HARNESS_QUIET"] = saved
