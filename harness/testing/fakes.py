"""A framework-free engine and backbone for fast tests of everything around training.

``centroid`` trains a nearest-class-centroid classifier on downsampled pixels, epoch by
epoch over the plan, with a checkpoint per epoch: it exercises the runner, resume, plans,
predictions and reports in milliseconds. Load it with ``plugins: [harness.testing.fakes]``.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from harness import BackboneSpec, EngineSpec, hookimpl
from harness.runs.store import write_json


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


def train(job) -> np.ndarray:
    """Running class means over every epoch's images; resumes from ``checkpoint.json``."""
    ckpt = job.checkpoint_dir / "checkpoint.json"
    sums = np.zeros((job.n_classes, 64))
    counts = np.zeros(job.n_classes)
    start = (0, 0)
    if ckpt.exists():
        state = json.loads(ckpt.read_text())
        sums, counts = np.array(state["sums"]), np.array(state["counts"])
        start = tuple(state["next"])
        job.restore_history(state["history"])
    delay = float(os.environ.get("HARNESS_FAKE_EPOCH_SECONDS", "0"))
    trace = os.environ.get("HARNESS_FAKE_TRACE")
    fail = os.environ.get("HARNESS_FAKE_FAIL")
    for phase in range(len(job.plan.phases)):
        for epoch in range(job.phase_epochs(phase)):
            if (phase, epoch) < start:
                continue
            idx = job.epoch_indices(phase, epoch)
            feats = _features(job.images[np.sort(idx)])
            labels = job.labels[np.sort(idx)]
            for c in range(job.n_classes):
                sums[c] += feats[labels == c].sum(axis=0)
                counts[c] += (labels == c).sum()
            time.sleep(delay)
            job.log_epoch(phase=phase + 1, epoch=epoch + 1, images=len(idx))
            nxt = (phase, epoch + 1) if epoch + 1 < job.phase_epochs(phase) else (phase + 1, 0)
            write_json(ckpt, {"sums": sums, "counts": counts, "next": nxt,
                              "history": job.history})
            if trace:  # for executor tests: which process finished which epoch
                with open(trace, "a") as fh:
                    fh.write(json.dumps({"run_dir": str(job.run_dir), "phase": phase + 1,
                                         "epoch": epoch + 1, "pid": os.getpid(),
                                         "ppid": os.getppid()}) + "\n")
            if fail and job.run_dir.parent.name == fail:
                raise RuntimeError("fake failure (HARNESS_FAKE_FAIL names this suite)")
    centroids = sums / np.maximum(counts, 1)[:, None]
    return _probs(_features(job.images[job.test]), centroids)


@hookimpl
def register_engines(register):
    register(EngineSpec(name="centroid", description="Nearest class centroid on pixels "
                        "(framework-free; for tests)", train=train, framework="numpy"))


@hookimpl
def register_backbones(register):
    register(BackboneSpec(name="pixels", description="Downsampled pixels (for the centroid "
                          "engine in tests)", builders={"centroid": lambda **_: None}))
