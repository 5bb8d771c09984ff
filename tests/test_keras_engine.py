"""The keras engine: augmentation agreement with torch, learning, selection, checkpoints.

TensorFlow (and torch, for the agreement test) run in child processes only, so TF and
torch never share a process, including the pytest one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytestmark = pytest.mark.keras

#: A small ``Job`` over learnable images (a bright band whose row depends on the class).
MAKE_JOB = """
import json, sys
from pathlib import Path
import numpy as np
from harness.training.job import Job
from harness.plugin.registry import build_registry
from harness.plugin.specs import Phase, Plan
from harness.config.suite import RunSpec, Training

def make_job(run_dir, backbone="tiny", size=32, phases=2, epochs=2, n=60, head_only=(),
             **training):
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 3
    images = rng.integers(0, 60, (n, size, size)).astype(np.uint8)
    for i, c in enumerate(labels):
        images[i, 3 + size // 4 * c: 3 + size // 4 * c + size // 6, 3:size - 3] = 220
    spec = build_registry().get("backbones", backbone)
    settings = {"epochs_per_phase": epochs, "batch_size": 8, "weights": "none", "lr": 1e-3,
                "device": "cpu", **training}
    run = RunSpec(suite="t", backbone=backbone, sampler="none", engine="keras", fold=1,
                  seed=0, training=settings, sampler_options={}, run_id="r")
    idx = np.arange(n)
    train, select, test = idx[:36], idx[36:48], idx[48:]
    plan = Plan(phases=[Phase(indices=list(range(len(train))), head_only=p in head_only)
                        for p in range(phases)])
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    return Job(run=run, run_dir=Path(run_dir), classes=["normal", "pneumonia", "covid19"],
               image_size=size, images=images, labels=labels, train=train, select=select,
               test=test, plan=plan, training=Training(**settings), backbone=spec)
"""

#: The same 6 images and transforms for both engines; image 0 is a marked pixel turned 90°.
AUGMENT_INPUT = """
import numpy as np
from harness.training import augment
from harness.config.suite import Augmentation
S = 16
marked = np.zeros((S, S), np.uint8); marked[2, 5] = 255
rng = np.random.default_rng(3)
images = np.stack([marked] + [rng.integers(0, 256, (S, S)).astype(np.uint8) for _ in range(5)])
params = augment.sample_params(np.random.default_rng(0), 6, Augmentation(), S)
params.theta[0] = 90.0
params.tx[0] = params.ty[0] = params.shear[0] = 0.0
params.zx[0] = params.zy[0] = 1.0
params.hflip[0] = params.vflip[0] = False
"""


def run_py(code: str, timeout: int = 300) -> dict:
    """Run ``code`` in a fresh Python; its last stdout line is JSON."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
           "HARNESS_QUIET": "1"}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_augmentation_moves_a_marked_pixel_and_matches_the_torch_engine():
    keras_out = run_py(AUGMENT_INPUT + """
        from harness_plugins.engines.keras_engine import ops as ke
        tf = ke.import_tf("cpu")
        x = ke.DeviceBatch(tf, S)(images, augment.projective_transforms(params, S)).numpy()
        assert x.shape == (6, S, S, 3) and np.array_equal(x[..., 0], x[..., 2])
        print(__import__("json").dumps(x[..., 0].tolist()))
    """.replace("\n        ", "\n"))
    keras_out = np.asarray(keras_out)
    # A 90° turn about the centre takes the pixel at (row 2, col 5) to (5, S - 1 - 2).
    assert [tuple(p) for p in np.argwhere(keras_out[0] > 0.5)] == [(5, 13)]
    assert keras_out[0].max() == pytest.approx(1.0, abs=1e-5)
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed: agreement with the torch engine not checked")
    torch_out = run_py(AUGMENT_INPUT + """
        import json, torch
        from harness_plugins.engines.torch_engine import ops as te
        x = te.device_batch(torch.from_numpy(images), torch.device("cpu"),
                            theta=augment.affine_matrices(params, S))
        print(json.dumps(x[:, 0].numpy().tolist()))
    """.replace("\n        ", "\n"))
    np.testing.assert_allclose(keras_out, np.asarray(torch_out), atol=1e-4)


def test_loss_decreases_and_frozen_parts_stay_frozen():
    out = run_py(MAKE_JOB + """
import numpy as np
from harness_plugins.engines.keras_engine.model import KerasModel
from harness.training import loop
from harness.engine_api import Batch
job = make_job("/tmp/unused", head="gap", lr=3e-3)
import dataclasses
job.training = dataclasses.replace(job.training, augmentation=dataclasses.replace(
    job.training.augmentation, enabled=False))
model = KerasModel(loop.context_for(job))
batch = Batch(job.images[:12], job.labels[:12].astype(np.int64))
before = model.get_weights()
model.set_trainable("head")
model.train_epoch([batch], seed=1)
after_head = model.get_weights()
model.set_trainable("classifier")
model.reset_classifier(5)
after_reset = model.get_weights()
model.train_epoch([batch], seed=2)
after_classifier = model.get_weights()
model.set_trainable("all")
losses = [model.train_epoch([batch], seed=3 + i).loss_sum / 12 for i in range(25)]
keys = sorted(before)
dense = keys[-2:]  # head_dense kernel and bias are the last weights
def same(a, b, ks):
    return all(np.array_equal(a[k], b[k]) for k in ks)
print(json.dumps({"losses": losses,
                  "head_kept_backbone": same(before, after_head, keys[:-2]),
                  "head_moved": not same(before, after_head, dense),
                  "reset_std": float(after_reset[dense[0]].std()),
                  "classifier_kept_rest": same(after_reset, after_classifier, keys[:-2]),
                  "classifier_moved": not same(after_reset, after_classifier, dense)}))
""")
    losses = out.pop("losses")
    assert out == {"head_kept_backbone": True, "head_moved": True,
                   "reset_std": pytest.approx(0.001, rel=0.3), "classifier_kept_rest": True,
                   "classifier_moved": True}
    assert losses[-1] < 0.5 * losses[0], losses


def test_losses_match_the_shared_table():
    out = run_py("""
import json
import numpy as np
from harness_plugins.engines.keras_engine import ops as ke
tf = ke.import_tf("cpu")
probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.25, 0.25, 0.5]], np.float32)
y = np.array([0, 2, 1], np.int32)
w = [1.0, 2.0, 3.0]
a = [0.25, 0.5, 0.75]
print(json.dumps({
    "ce": float(ke.make_loss(tf, 3, w, "cross_entropy", {})(y, probs)),
    "focal": float(ke.make_loss(tf, 3, None, "focal", {"gamma": 2.0})(y, probs)),
    "focal_alpha": float(ke.make_loss(tf, 3, w, "focal", {"gamma": 1.5, "alpha": a})(y, probs)),
}))
""")
    from harness.training.optim import reference_loss

    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.25, 0.25, 0.5]])
    y = np.array([0, 2, 1])
    w, a = [1.0, 2.0, 3.0], [0.25, 0.5, 0.75]
    assert out["ce"] == pytest.approx(reference_loss(probs, y, w), rel=1e-5)
    assert out["focal"] == pytest.approx(reference_loss(probs, y, loss="focal"), rel=1e-5)
    assert out["focal_alpha"] == pytest.approx(
        reference_loss(probs, y, w, loss="focal", gamma=1.5, alpha=a), rel=1e-5)


def test_train_predicts_in_test_order_and_resumes_exactly(tmp_path):
    """A run stopped by SIGTERM after epoch 3 resumes from its checkpoint and ends with the
    same predictions and history as an uninterrupted run."""
    out = run_py(MAKE_JOB + f"""
import csv, os, signal
from harness_plugins.engines.keras_engine.model import KerasModel
from harness.training import loop
whole = loop.train(make_job("{tmp_path}/whole"), KerasModel)

job = make_job("{tmp_path}/stopped")
log = job.log_epoch
def log_then_stop(**row):
    log(**row)
    if len(job.history) == 3:
        os.kill(os.getpid(), signal.SIGTERM)
job.log_epoch = log_then_stop
try:
    loop.train(job, KerasModel)
except loop.Interrupted:
    pass
ckpt = sorted(p.name for p in job.checkpoint_dir.iterdir())
resumed_job = make_job("{tmp_path}/stopped")
seen = []
log2 = resumed_job.log_epoch
resumed_job.log_epoch = lambda **row: (seen.append((row["phase"], row["epoch"])), log2(**row))
resumed = loop.train(resumed_job, KerasModel)
def strip(path):
    return [{{k: v for k, v in r.items() if "seconds" not in k and k != "images_per_s"}}
            for r in csv.DictReader(open(path))]
print(json.dumps({{"whole": whole.tolist(), "resumed": resumed.tolist(), "ckpt": ckpt,
                  "seen": seen, "rows": strip("{tmp_path}/stopped/history.csv"),
                  "ref_rows": strip("{tmp_path}/whole/history.csv")}}))
""")
    whole, resumed = np.asarray(out["whole"]), np.asarray(out["resumed"])
    assert whole.shape == (12, 3)
    np.testing.assert_allclose(whole.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(resumed, whole, atol=1e-6)
    assert out["ckpt"] == ["state.npz"]
    assert out["seen"] == [[2, 2]]  # only the epoch after the checkpoint
    assert out["rows"] == out["ref_rows"]
    assert [(r["phase"], r["epoch"]) for r in out["rows"]] == [("1", "1"), ("1", "2"),
                                                               ("2", "1"), ("2", "2")]
    assert all(0.0 <= float(r["select_score"]) <= 1.0 for r in out["rows"])
    # it learns: the loss falls and most training images are right after 4 short epochs
    # (too few steps for BatchNorm's running statistics to make the test split right)
    losses = [float(r["loss"]) for r in out["rows"]]
    assert losses[-1] < 0.6 * losses[0] and float(out["rows"][-1]["train_acc"]) >= 0.6


def test_harness_run_trains_and_predicts_with_the_keras_engine(make_suite, run_harness,
                                                                tmp_path):
    """End to end: the worker process runs the keras engine on synthetic data."""
    suite = make_suite("kr", plugins=[], image_size=32,
                       matrix={"backbone": ["tiny"], "sampler": ["phased"],
                               "engine": ["keras"], "fold": [1]},
                       samplers={"phased": {"phases": 2}},
                       training={"epochs_per_phase": 1, "batch_size": 16, "weights": "none",
                                 "head": "gap", "lr": 2e-3, "device": "cpu"})
    result = run_harness("run", suite, "--runs-dir", tmp_path / "runs", "--no-report")
    assert result.exit_code == 0, result.output
    [run_dir] = [p for p in (tmp_path / "runs" / "kr").iterdir() if p.is_dir()]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "done", status
    lines = (run_dir / "predictions.csv").read_text().splitlines()
    assert lines[0] == "uid,true,pred,p_normal,p_pneumonia,p_covid19"
    assert len(lines) > 10
    history = (run_dir / "history.csv").read_text().splitlines()
    assert [row.split(",")[:2] for row in history[1:]] == [["1", "1"], ["2", "1"]]
