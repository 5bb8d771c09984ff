"""One run as the training loop sees it: images, indices, plan, settings, and where to write.

The worker process builds a ``Job`` from a run folder (the resolved run of ``config.json``,
``plan.json``) and the image cache, then hands it to the training loop. Everything here is framework-free, so
every engine sees the same images in the same order and logs the same history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.config.suite import RunSpec, Training
from harness.errors import HarnessError
from harness.plugin.options import Options, validate_options
from harness.plugin.resolved import ResolvedRun
from harness.plugin.specs import BackboneSpec, Plan
from harness.plugin.weights import resolved_normalization
from harness.rundir.folder import HistoryAppender, RunFolder

#: The history schema of every engine: one row per epoch. ``seconds`` is the time in
#: training steps, ``select_seconds`` the time scoring the selection split;
#: ``selected_evaluation`` says whether the selection split was scored after this epoch.
HISTORY_COLUMNS = ["phase", "epoch", "loss", "train_acc", "select_score",
                   "selected_evaluation", "images", "seconds", "images_per_s",
                   "select_seconds"]


@dataclass
class Job:
    run: RunSpec
    run_dir: Path
    classes: list[str]
    image_size: int
    #: The whole image cache, ``(N, S, S)`` uint8 (memory-mapped); rows are records.
    images: np.ndarray
    #: Class index of every cached record.
    labels: np.ndarray
    #: Record indices of the fold's parts.
    train: np.ndarray
    select: np.ndarray
    test: np.ndarray
    #: The sampler's plan; its indices are positions into ``train``.
    plan: Plan
    training: Training
    backbone: BackboneSpec
    history: list[dict[str, Any]] = field(default_factory=list)
    #: The suite's trackers (``harness.runs.tracking.Trackers``), told of every history row.
    tracker: Any = None
    #: The device the engine trained on, in words (its ``device_name``; empty when it has none).
    device: str = ""
    #: The resolved run read from ``config.json`` (the worker's jobs; ``None`` for a job
    #: built by hand, whose ``training`` and ``backbone`` are all there is).
    resolved: ResolvedRun | None = None
    #: The backbone's validated options: the resolved run's; a job built by hand has
    #: ``training.backbone_options`` validated once, here.
    backbone_options: Options | None = None
    #: ``history.csv`` open for appending while the run trains (``log_epoch``).
    _history_file: HistoryAppender | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.resolved is None:  # built by hand (the worker's jobs arrive resolved)
            try:
                self.training = resolved_normalization(self.training, self.backbone,
                                                       self.run.engine)
            except ValueError as exc:
                raise HarnessError(f"training.normalization: {exc}") from None
        if self.backbone_options is None:
            self.backbone_options = (
                self.resolved.backbone_options if self.resolved is not None
                else validate_options(self.backbone.options, self.training.backbone_options,
                                      "training.backbone_options",
                                      str(self.folder.config_path)))

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def folder(self) -> RunFolder:
        """The run folder (the one way to its files)."""
        return RunFolder(self.run_dir)

    @property
    def checkpoint_dir(self) -> Path:
        return self.folder.checkpoint_dir

    def phase_epochs(self, phase: int) -> int:
        return self.plan.phases[phase].epochs or self.training.epochs_per_phase

    def epoch_indices(self, phase: int, epoch: int) -> np.ndarray:
        """Record indices of one epoch, shuffled; deterministic from seed, phase and epoch.

        Phases with ``sample_weights`` draw a fresh weighted sample with replacement; phases
        with ``balanced_batches`` give every batch the same number of images of each class.
        """
        p = self.plan.phases[phase]
        rng = np.random.default_rng([self.run.seed, self.run.fold, phase, epoch])
        positions = np.asarray(p.indices, dtype=np.int64)
        if p.balanced_batches:
            from harness.training.balanced import balanced_batch_order

            positions = balanced_batch_order(positions, self.labels[self.train[positions]],
                                             p.images_per_epoch(), self.training.batch_size,
                                             rng)
        elif p.sample_weights is not None:
            w = np.asarray(p.sample_weights, dtype=np.float64)
            positions = rng.choice(positions, size=p.images_per_epoch(), replace=True, p=w / w.sum())
        else:
            positions = rng.permutation(positions)
        return self.train[positions]

    def steps(self, n: int, batch_size: int) -> int:
        steps = -(-n // batch_size)
        cap = self.training.max_steps_per_epoch
        return min(steps, cap) if cap else steps

    def class_weights(self) -> np.ndarray | None:
        if self.plan.class_weights is None:
            return None
        return np.asarray(self.plan.class_weights, dtype=np.float32)

    def log_epoch(self, **row: Any) -> None:
        """Record one epoch: the one function every history row goes through.

        Columns are ``HISTORY_COLUMNS`` whatever the engine (a missing value is empty, an
        unknown key is an error). The row is appended to ``history.csv``; the checkpoint
        holds the same rows, so a resumed run rewrites the file from there.
        """
        unknown = [k for k in row if k not in HISTORY_COLUMNS]
        if unknown:
            raise HarnessError(f"history row has unknown column(s) {', '.join(unknown)}; "
                               f"known: {', '.join(HISTORY_COLUMNS)}")
        row = {k: row.get(k, "") for k in HISTORY_COLUMNS}
        self.history.append(row)
        if self._history_file is None:
            self._history_file = self.folder.history_appender(HISTORY_COLUMNS)
        self._history_file.append(row)
        if self.tracker is not None:
            self.tracker.epoch(row, len(self.history))

    def restore_history(self, rows: list[dict[str, Any]]) -> None:
        """At the start of training: the rows of the checkpoint resumed from (or none)."""
        self.close_history()  # the file is replaced: rows go to the new one
        self.history = [{k: r.get(k, "") for k in HISTORY_COLUMNS} for r in rows]
        self.folder.write_history(self.history, HISTORY_COLUMNS)

    def close_history(self) -> None:
        """Close ``history.csv`` (every row is already flushed; the loop calls this at its
        end, and a job used again reopens the file)."""
        if self._history_file is not None:
            self._history_file.close()
            self._history_file = None
