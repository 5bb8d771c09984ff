"""A framework-free engine and backbone for fast tests of everything around training.

``centroid`` is a nearest-class-centroid classifier on downsampled pixels, given to the core's
training loop as engine primitives: it exercises the runner, the loop, resume, plans,
predictions and reports in milliseconds. Load it with ``plugins: [harness.testing.fakes]``.

For executor tests, the ``trace`` tracker appends every epoch a worker logs (run folder,
phase, epoch, the worker's pid and its parent's, time, ``CUDA_VISIBLE_DEVICES``) to the file
``HARNESS_FAKE_TRACE`` names, and
``HARNESS_FAKE_FAIL_SEED`` makes the runs of that seed fail as they start.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from harness import BackboneSpec, EngineSpec, Tracker, TrackerSpec, WeightSource, hookimpl


def _features(images: np.ndarray, cells: int = 8) -> np.ndarray:
    n, s, _ = images.shape
    step = max(1, s // cells)
    small = images[:, : step * cells, : step * cells].astype(np.float32) / 255.0
    return small.reshape(n, cells, step, cells, step).mean(axis=(2, 4)).reshape(n, -1)


def _probs(features: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    d = ((features[:, None, :] - centroids[None]) ** 2).sum(-1)
    logits = -d * 20.0
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


class CentroidModel:
    """Running class means of every batch's pixels: the engine primitives without a
    framework (``harness.plugin.engine.EngineModel``)."""

    def __init__(self, ctx):
        if os.environ.get("HARNESS_FAKE_FAIL_SEED") == str(ctx.seed):
            raise RuntimeError(f"fake failure (HARNESS_FAKE_FAIL_SEED={ctx.seed})")
        self.n_classes = ctx.n_classes
        self.sums = np.zeros((ctx.n_classes, 64))
        self.counts = np.zeros(ctx.n_classes)
        self.delay = float(os.environ.get("HARNESS_FAKE_EPOCH_SECONDS", "0"))

    def set_trainable(self, part: str) -> None:
        pass

    def reset_classifier(self, seed: int) -> None:
        self.sums[:] = 0.0
        self.counts[:] = 0.0

    def train_epoch(self, batches, seed: int):
        from harness.plugin.engine import EpochResult

        seen = correct = 0
        for batch in batches:
            feats = _features(batch.images)
            if self.counts.any():
                correct += int((_probs(feats, self._centroids()).argmax(1)
                                == batch.labels).sum())
            for c in range(self.n_classes):
                self.sums[c] += feats[batch.labels == c].sum(axis=0)
                self.counts[c] += (batch.labels == c).sum()
            seen += len(batch.labels)
        time.sleep(self.delay)
        return EpochResult(loss_sum=0.0, correct=correct, seen=seen)

    def _centroids(self) -> np.ndarray:
        return self.sums / np.maximum(self.counts, 1)[:, None]

    def predict(self, batches) -> np.ndarray:
        out = [_probs(_features(b), self._centroids()) for b in batches]
        return np.concatenate(out) if out else np.zeros((0, self.n_classes))

    def get_weights(self) -> dict[str, np.ndarray]:
        return {"sums": self.sums.copy(), "counts": self.counts.copy()}

    def set_weights(self, weights) -> None:
        self.sums, self.counts = weights["sums"].copy(), weights["counts"].copy()

    get_state, set_state = get_weights, set_weights


class TraceTracker(Tracker):
    """Which worker process logged which epoch of which run (for executor tests)."""

    def __init__(self, options):
        self.path = os.environ.get("HARNESS_FAKE_TRACE")
        self.run_dir = ""

    def run_start(self, run) -> None:
        self.run_dir = str(run.run_dir)

    def epoch(self, row, step: int) -> None:
        if self.path:
            with open(self.path, "a") as fh:
                fh.write(json.dumps({"run_dir": self.run_dir, "phase": int(row["phase"]),
                                     "epoch": int(row["epoch"]), "pid": os.getpid(),
                                     "ppid": os.getppid(), "time": time.time(),
                                     "gpu": os.environ.get("CUDA_VISIBLE_DEVICES")}) + "\n")


@hookimpl
def register_trackers(register):
    register(TrackerSpec(name="trace", description="Epochs per worker process, to a file "
                         "(for executor tests)", create=TraceTracker))


@hookimpl
def register_engines(register):
    register(EngineSpec(name="centroid", description="Nearest class centroid on pixels "
                        "(framework-free; for tests)", build=CentroidModel, framework="numpy"))


@hookimpl
def register_backbones(register):
    # It stands in for the real backbones of shipped suites, so it takes their weight
    # names too (and ignores them: the centroid engine reads pixels).
    register(BackboneSpec(name="pixels", description="Downsampled pixels (for the centroid "
                          "engine in tests)", builders={"centroid": lambda **_: None},
                          weights=tuple(WeightSource(name, "ignored: a stand-in",
                                                     normalization="unit")
                                        for name in ("imagenet", "keras-imagenet"))))
