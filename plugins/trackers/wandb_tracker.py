"""The ``wandb`` tracker: a Weights & Biases run per harness run, offline by default.

``mode: offline`` (the default) writes each run under ``dir`` (default ``WANDB_DIR``, else
the suite's run folder) and reaches no network; ``wandb sync DIR/wandb/offline-run-*``
uploads them later, from any machine with network. ``mode: online`` logs as it trains.
Runs are grouped by suite, named by run id, configured with the run's settings; the
history is logged per epoch (``step`` = history row) and the final test figures go to the
run's summary under the names every tracker uses (``test/accuracy`` …).

A run that resumes, or is retried, goes on in the same W&B run (its id is kept in
``wandb_id.txt`` in the run folder); a run trained again from scratch gets a new id.
"""

from __future__ import annotations

import os
import secrets
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


class WandbTracker(Tracker):
    def __init__(self, options):
        self.options = WandbOptions.of(options)
        self.run = None
        self.step = 0

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
        self.run = wandb.init(
            mode=self.options.mode, project=self.options.project or run.suite,
            entity=self.options.entity, dir=self._dir(run.run_dir.parent),
            id=run_id_for(run), name=run.run_id, group=run.suite,
            job_type=run.combination.replace(" / ", "-"),
            resume="allow" if resumed else None,
            config={**run.key, "training": config.get("training", {}),
                    "sampler_options": config.get("sampler_options", {}),
                    "data": run.data, "versions": run.config.get("versions", {})},
            settings=wandb.Settings(silent=True, console="off"),
            reinit="create_new")

    def epoch(self, row: dict[str, Any], step: int) -> None:
        if self.run is None:
            return
        self.step = step
        self.run.log(numbers(row), step=step)

    def run_end(self, end: RunEnd) -> None:
        if self.run is None:
            return
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
