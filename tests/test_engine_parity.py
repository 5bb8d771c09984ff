"""Both engines apply one plan the same way: the tiny backbone trained in torch and in
Keras from the same initial weights, on the same batches, without augmentation or dropout,
gives the same loss curve, and both write the same history schema.

Tolerance: every epoch's mean training loss within 0.1 % (relative) of the other engine's
(measured: within 3e-5 for NAdam and Nesterov SGD with decoupled weight decay, class
weights and a head-only phase). Float32 kernels differ between frameworks (summation order),
so the curves cannot be identical; Keras Adam against torch NAdam differs by ~0.5-1 % per
epoch, outside the tolerance (checked below), so the test tells optimizers apart.
Each engine runs in its own process (TensorFlow and torch never share one).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_keras_engine import run_py

pytestmark = pytest.mark.keras
pytest.importorskip("torch")

TOLERANCE = 1e-3

JOB = """
import csv, json
from pathlib import Path
import numpy as np
from harness.training.job import Job
from harness.plugin.registry import build_registry
from harness.plugin.specs import Phase, Plan
from harness.config.suite import Augmentation, RunSpec, Training
from harness.training import loop

def make_job(run_dir, engine, optimizer):
    rng = np.random.default_rng(0)
    n, size = 72, 16
    labels = np.arange(n) % 3
    images = rng.integers(0, 60, (n, size, size)).astype(np.uint8)
    for i, c in enumerate(labels):
        images[i, 2 + 4 * c: 5 + 4 * c, 2:size - 2] = 220
    settings = {"epochs_per_phase": 3, "batch_size": 8, "weights": "none", "lr": 5e-3,
                "device": "cpu", "head": "gap", "dropout": 0.0, "optimizer": optimizer,
                "weight_decay": 0.01, "selection": "last",
                "backbone_options": {"channels": [8, 16]},
                "augmentation": Augmentation(enabled=False)}
    run = RunSpec(suite="t", backbone="tiny", sampler="s", engine=engine, fold=1, seed=0,
                  training=settings, sampler_options={}, run_id="r")
    plan = Plan(phases=[Phase(indices=list(range(48))), Phase(indices=list(range(24)),
                                                               head_only=True)],
                class_weights=[1.0, 2.0, 0.5])
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    return Job(run=run, run_dir=Path(run_dir), classes=["a", "b", "c"], image_size=size,
               images=images, labels=labels, train=np.arange(48), select=np.arange(48, 60),
               test=np.arange(60, 72), plan=plan, training=Training(**settings),
               backbone=build_registry().get("backbones", "tiny"))

def history(run_dir):
    with open(Path(run_dir) / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    return list(rows[0]), [float(r["loss"]) for r in rows]
"""

TORCH = JOB + """
from harness_plugins.engines.torch_engine.model import TorchModel
out = {}
for optimizer in ("nadam", "sgd"):
    d = f"{tmp}/torch-{optimizer}"
    def build(ctx):
        model = TorchModel(ctx)
        np.savez(f"{d}-init.npz", **model.get_weights())
        return model
    loop.train(make_job(d, "torch", optimizer), build)
    out[optimizer] = history(d)
print(json.dumps(out))
"""

KERAS = JOB + """
from harness_plugins.engines.keras_engine.model import KerasModel

def from_torch(path, model):
    # torch order: conv (O, I, kh, kw), BN weight/bias/mean/var, ..., linear (out, in);
    # Keras order: conv (kh, kw, I, O), BN gamma/beta/mean/var, ..., dense (in, out).
    with np.load(path) as data:
        arrays = [data[k] for k in data.files if not k.endswith("num_batches_tracked")]
    converted = [a.transpose(2, 3, 1, 0) if a.ndim == 4 else a.T if a.ndim == 2 else a
                 for a in arrays]
    model.set_weights({f"{i:05d}": a for i, a in enumerate(converted)})

out = {}
for optimizer, init in (("nadam", "nadam"), ("sgd", "sgd"), ("adam", "nadam")):
    d = f"{tmp}/keras-{optimizer}"
    def build(ctx):
        model = KerasModel(ctx)
        from_torch(f"{tmp}/torch-{init}-init.npz", model)
        return model
    loop.train(make_job(d, "keras", optimizer), build)
    out[optimizer] = history(d)
print(json.dumps(out))
"""


def test_tiny_trains_the_same_in_both_engines(tmp_path):
    torch_out = run_py(f"tmp = {str(tmp_path)!r}\n" + TORCH)
    keras_out = run_py(f"tmp = {str(tmp_path)!r}\n" + KERAS)
    for optimizer in ("nadam", "sgd"):
        (t_cols, t_loss), (k_cols, k_loss) = torch_out[optimizer], keras_out[optimizer]
        assert t_cols == k_cols  # one history schema
        assert len(t_loss) == len(k_loss) == 6
        assert t_loss[2] < 0.92 * t_loss[0]  # it learns (else agreement says little)
        np.testing.assert_allclose(k_loss, t_loss, rtol=TOLERANCE, err_msg=optimizer)
    # The tolerance separates optimizers: Keras Adam against torch NAdam is outside it.
    diff = np.abs(np.asarray(keras_out["adam"][1]) - torch_out["nadam"][1])
    assert (diff > TOLERANCE * np.asarray(torch_out["nadam"][1])).any(), json.dumps(
        {"adam": keras_out["adam"][1], "nadam": torch_out["nadam"][1]})
