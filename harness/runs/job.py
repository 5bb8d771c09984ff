"""One run as an engine sees it: images, indices, plan, settings, and where to write.

The worker process builds a ``Job`` from a run folder (``config.json`` + ``plan.json``) and
the image cache, then hands it to the engine. Everything here is framework-free, so both
engines iterate the same images in the same order and log the same history.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.config.suite import RunSpec, Training
from harness.plugin.specs import BackboneSpec, Plan
from harness.runs import store


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

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def checkpoint_dir(self) -> Path:
        path = self.run_dir / store.CHECKPOINTS
        path.mkdir(parents=True, exist_ok=True)
        return path

    def phase_epochs(self, phase: int) -> int:
        return self.plan.phases[phase].epochs or self.training.epochs_per_phase

    def epoch_indices(self, phase: int, epoch: int) -> np.ndarray:
        """Record indices of one epoch, shuffled; deterministic from seed, phase and epoch.

        Phases with ``sample_weights`` draw a fresh weighted sample with replacement.
        """
        p = self.plan.phases[phase]
        rng = np.random.default_rng([self.run.seed, self.run.fold, phase, epoch])
        positions = np.asarray(p.indices, dtype=np.int64)
        if p.sample_weights is not None:
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
        """Append one row (phase, epoch, loss, selection figures …) to ``history.csv``."""
        self.history.append(row)
        keys: list[str] = []
        for r in self.history:
            keys += [k for k in r if k not in keys]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(self.history)
        store.write_text(self.run_dir / store.HISTORY, buf.getvalue())
        if self.tracker is not None:
            self.tracker.epoch(row, len(self.history))

    def restore_history(self, rows: list[dict[str, Any]]) -> None:
        """On resume from a checkpoint: keep the history up to that checkpoint only."""
        self.history = list(rows)


def selection_score(labels: np.ndarray, probs: np.ndarray, metric: str = "balanced_accuracy") -> float:
    """Score used to pick the best epoch on the selection split (higher is better)."""
    pred = probs.argmax(axis=1)
    if metric == "accuracy":
        return float((pred == labels).mean()) if len(labels) else 0.0
    present = np.unique(labels)
    recalls = [float((pred[labels == c] == c).mean()) for c in present]
    return float(np.mean(recalls)) if recalls else 0.0
