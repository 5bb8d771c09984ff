"""The ``wandb`` tracker: a Weights & Biases run per harness run, offline by default.

``mode: offline`` (the default) writes each run under ``dir`` (default ``WANDB_DIR``, else
the suite's run folder) and reaches no network; ``wandb sync DIR/wandb/offline-run-*``
uploads them later, from any machine with network. ``mode: online`` logs as it trains.
Runs are grouped by suite, named by run id, configured with the run's settings; the
history is logged per epoch (``step`` = history row) and the final test figures go to the
run's summary under the names every tracker uses (``test/accuracy`` …).

A run that resumes, or is retried, goes on in the same W&B run (its id is kept in
``wandb_id.txt`` in the run folder); a run trained again from scratch gets a new id.
Offline, W&B cannot append to an earlier record, so a resumed run writes one fresh record
under the same id: the history rows it resumes with (its ``history.csv``, which the core
rewrites to the checkpoint's rows) are logged again, then the new ones, and the earlier
attempt's record is removed unless ``wandb sync`` already uploaded it. Every run thus ends
with one offline record whose history has each step once.
"""

from __future__ import annotations

import csv
import os
import secrets
import shutil
from pathlib import Path
from typing import Any, Literal

from harness_plugins.trackers.common import final_metrics, numbers
from pydantic import Field

from harness import (
    HarnessError,
    Options,
    RunEnd,
    RunInfo,
    SuiteInfo,
    Tracker,
    TrackerSpec,
    hookimpl,
)

ID_FILE = "wandb_id.txt"


class WandbOptions(Options):
    mode: Literal["offline", "online", "disabled"] = Field(
        "offline", description="offline: write locally, upload later with `wandb sync`")
    project: str | None = Field(None, description="W&B project (default: the suite's name)")
    entity: str | None = Field(None, description="W&B entity (team or user)")
    dir: str | None = Field(None, description="folder for W&B's files (default: WANDB_DIR, "
                            "else the suite's run folder)")


def _wandb():
    try:
        import wandb
    except ImportError as exc:
        raise HarnessError("tracker 'wandb' needs wandb: pip install 'cxr-harness[wandb]'") from exc
    return wandb


def run_id_for(run: RunInfo) -> str:
    """The W&B id of the run: kept across attempts, new when it starts from scratch."""
    path = run.run_dir / ID_FILE
    if run.attempt > 1 and not run.backfill and path.is_file():
        return path.read_text().strip()
    new = secrets.token_hex(6)  # W&B ids: lowercase letters and digits
    path.write_text(new + "\n")
    return new


def history_rows(run_dir: Path) -> list[dict[str, str]]:
    """The run's ``history.csv`` rows (none when it has no file yet)."""
    path = run_dir / "history.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def drop_unsynced(root: Path, wandb_id: str) -> None:
    """Remove earlier offline records of ``wandb_id`` that ``wandb sync`` has not uploaded
    (an uploaded one has a ``.synced`` marker beside its ``.wandb`` file, and is kept)."""
    for record in root.glob(f"offline-run-*-{wandb_id}"):
        if record.is_dir() and not any(record.glob("*.wandb.synced")):
            shutil.rmtree(record, ignore_errors=True)


class WandbTracker(Tracker):
    def __init__(self, options):
        self.options = WandbOptions.of(options)
        self.run = None
        self.step = 0
        #: The run folder of an offline record that must first log the rows it resumes with.
        self.catch_up: Path | None = None

    def _dir(self, suite_runs: Path) -> str:
        return self.options.dir or os.environ.get("WANDB_DIR") or str(suite_runs)

    def recorded(self, suite: SuiteInfo) -> set[str]:
        """Runs whose W&B id has a local run folder (offline or synced)."""
        found = set()
        root = Path(self._dir(suite.runs_dir)) / "wandb"
        for run_dir in suite.runs_dir.iterdir():
            id_file = run_dir / ID_FILE
            if id_file.is_file() and any(root.glob(f"*-{id_file.read_text().strip()}")):
                found.add(run_dir.name)
        return found

    def run_start(self, run: RunInfo) -> None:
        wandb = _wandb()
        config = run.config.get("run", {})
        resumed = run.attempt > 1 and not run.backfill
        offline = self.options.mode == "offline"
        wandb_id = run_id_for(run)
        self.step, self.catch_up = 0, None
        if resumed and offline:  # one fresh record: earlier rows logged again, then new ones
            drop_unsynced(Path(self._dir(run.run_dir.parent)) / "wandb", wandb_id)
            self.catch_up = run.run_dir
        self.run = wandb.init(
            mode=self.options.mode, project=self.options.project or run.suite,
            entity=self.options.entity, dir=self._dir(run.run_dir.parent),
            id=wandb_id, name=run.run_id, group=run.suite,
            job_type=run.combination.replace(" / ", "-"),
            resume="allow" if resumed and not offline else None,
            config={**run.key, "training": config.get("training", {}),
                    "sampler_options": config.get("sampler_options", {}),
                    "data": run.data, "versions": run.config.get("versions", {})},
            settings=wandb.Settings(silent=True, console="off"),
            reinit="create_new")

    def _catch_up(self, upto: int) -> None:
        """Log the resumed-with rows ``self.step + 1 .. upto`` from the run's history."""
        if self.catch_up is None:
            return
        rows = history_rows(self.catch_up)
        self.catch_up = None
        for step in range(self.step + 1, min(upto, len(rows)) + 1):
            self.run.log(numbers(rows[step - 1]), step=step)
            self.step = step

    def epoch(self, row: dict[str, Any], step: int) -> None:
        if self.run is None:
            return
        self._catch_up(step - 1)
        self.step = step
        self.run.log(numbers(row), step=step)

    def run_end(self, end: RunEnd) -> None:
        if self.run is None:
            return
        self._catch_up(len(history_rows(self.catch_up)) if self.catch_up else 0)
        if end.metrics:
            self.run.summary.update(dict(final_metrics(end.metrics)))
        self.run.summary["harness/state"] = end.state
        self.run.finish(exit_code=0 if end.state == "done" else 1)
        self.run = None

    def close(self) -> None:
        if self.run is not None:
            self.run.finish(exit_code=1)
            self.run = None


@hookimpl
def register_trackers(register):
    register(TrackerSpec(
        name="wandb",
        description="Weights & Biases: a run per harness run, offline by default "
                    "(upload later with `wandb sync`)",
        create=WandbTracker,
        options=WandbOptions,
    ))
