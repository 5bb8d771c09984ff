"""What a tracker plugin implements: the lifecycle of a suite, its runs and their epochs.

A tracker (MLflow, TensorBoard, …) is told what happens; it never changes what happens. The
core calls it from a background thread with a time budget (``harness.runs.tracking``), so a
tracker may block on the network: a slow or failing one is switched off with one warning
and the run goes on. Methods that a tracker does not need can be left out of a subclass.

Where each call is made:

- ``suite_start`` / ``suite_end``: in the ``harness run`` process, before the first pending
  run is handed to the executor and after the report is rendered. What ``suite_start``
  returns (a JSON-able dict) reaches every run of that suite as ``RunInfo.suite_state``, on
  whatever node the run trains (a parent run id, a resolved server address …).
- ``run_start`` / ``epoch`` / ``run_end``: in the worker process of each run
  (``python -m harness.runs.worker RUN_DIR``), on the node where it trains.
- ``recorded``: in the ``harness run`` process after ``suite_start`` (and in ``harness
  track``): the finished runs whose record is missing are then replayed from their run
  folders (``run_start``, every ``history.csv`` row as ``epoch``, ``run_end``), so a
  tracker that was down catches up.

Every tracker records the same names: the ``history.csv`` columns per epoch, and the final
test figures as ``test/<figure>`` and ``test/<class>/<figure>``
(``harness_plugins.trackers.common.final_metrics``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SuiteInfo:
    """A suite about to run: its name, file, run folders and the runs this command trains."""

    name: str
    source: str
    #: ``runs/<suite>``: every run folder of the suite lies in it.
    runs_dir: Path
    #: Run ids this ``harness run`` will train (others are done already or filtered out).
    pending: tuple[str, ...] = ()
    #: Every run id of the suite.
    run_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class SuiteEnd:
    """A suite after its runs: each run's state and the report folder (None without report)."""

    name: str
    runs_dir: Path
    states: dict[str, str] = field(default_factory=dict)
    report_dir: Path | None = None


@dataclass(frozen=True)
class RunInfo:
    """A run about to train, in its worker process.

    ``config`` is the run's resolved ``config.json`` (run settings, suite, versions) and
    ``data`` the version of the data it trains on (the config's ``data`` entry, else the
    suite's dataset settings and the image cache). ``resumed`` is true when the run goes on
    from a checkpoint of an earlier, interrupted attempt.
    """

    run_id: str
    run_dir: Path
    suite: str
    key: dict[str, Any]
    combination: str
    config: dict[str, Any]
    data: dict[str, Any]
    suite_state: dict[str, Any] = field(default_factory=dict)
    resumed: bool = False
    #: 1 for a run's first worker since it was (re)planned: a tracker starts a fresh record
    #: (``--rerun all``); more for a resume, a retry or a requeue: it goes on in the record.
    attempt: int = 1
    #: True when the core replays a finished run from its folder (``recorded`` lacked it).
    backfill: bool = False


@dataclass(frozen=True)
class RunEnd:
    """A run that stopped: ``done``, ``failed`` or ``interrupted``.

    ``metrics`` is the run's ``metrics.json`` (fractions; None unless done) and ``artifacts``
    the files of its folder worth keeping, by name.
    """

    state: str
    seconds: float
    metrics: dict[str, Any] | None = None
    error: str = ""
    artifacts: dict[str, Path] = field(default_factory=dict)


class Tracker:
    """Base class of trackers: every method does nothing, so a subclass overrides only what
    it records."""

    def suite_start(self, suite: SuiteInfo) -> dict[str, Any] | None:
        return None

    def recorded(self, suite: SuiteInfo) -> Iterable[str] | None:
        """Run ids this tracker holds a record of; ``None``: it cannot tell (no backfill)."""
        return None

    def run_start(self, run: RunInfo) -> None:
        return None

    def epoch(self, row: dict[str, Any], step: int) -> None:
        """One ``history.csv`` row (the values as written), ``step`` its 1-based row number."""
        return

    def run_end(self, end: RunEnd) -> None:
        return None

    def suite_end(self, end: SuiteEnd) -> None:
        return None

    def close(self) -> None:
        """Release files and connections; called once, last, in every process."""
        return
