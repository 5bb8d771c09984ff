"""The torch engine's primitives under the core loop on tiny synthetic jobs: training,
selection, losses, freezing, checkpoints, resume."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from harness_plugins.backbones import tiny
from harness_plugins.engines.torch_engine import ops as torch_ops
from harness_plugins.engines.torch_engine.model import TorchModel

from harness import BackboneSpec
from harness.config.suite import Augmentation, RunSpec, Training
from harness.plugin.specs import Phase, Plan
from harness.training import checkpoint, loop
from harness.training.augment import AugmentParams, affine_matrices
from harness.training.job import Job

SIZE = 32
CLASSES = ["normal", "pneumonia", "covid19"]


def synthetic_images(n: int, size: int = SIZE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Dark noise; class 1 adds a bright disc, class 2 bright vertical stripes."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = (rng.random((n, size, size)) * 60).astype(np.uint8)
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size // 2) ** 2 + (xx - size // 2) ** 2 < (size // 5) ** 2
    for i in np.flatnonzero(labels == 1):
        images[i][disc] = 230
    for i in np.flatnonzero(labels == 2):
        images[i][:, ::4] = 200
    return images, labels


def make_job(run_dir: Path, plan: Plan | None = None, n: int = 120, size: int = SIZE,
             backbone: BackboneSpec | None = None, **training) -> Job:
    images, labels = synthetic_images(n, size)
    settings = {"epochs_per_phase": 2, "batch_size": 16, "lr": 3e-3, "head": "gap",
                "weights": "none", **training}
    run = RunSpec(suite="t", backbone="tiny", sampler="none", engine="torch", fold=1, seed=0,
                  training=settings, sampler_options={}, run_id="r")
    train = np.arange(0, n * 2 // 3)
    select = np.arange(n * 2 // 3, n * 5 // 6)
    test = np.arange(n * 5 // 6, n)
    half = len(train) // 2
    plan = plan or Plan(phases=[Phase(indices=list(range(half))),
                                Phase(indices=list(range(half, len(train))))])
    backbone = backbone or BackboneSpec("tiny", "", {"torch": tiny.build_torch})
    return Job(run=run, run_dir=run_dir, classes=CLASSES, image_size=size, images=images,
               labels=labels, train=train, select=select, test=test, plan=plan,
               training=Training(**settings), backbone=backbone)


def train(job: Job, **kwargs) -> np.ndarray:
    return loop.train(job, TorchModel, **kwargs)


def saved(run_dir: Path) -> tuple[dict, dict]:
    return checkpoint.load(run_dir / "checkpoints" / checkpoint.FILE)


def history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv") as fh:
        return list(csv.DictReader(fh))


def test_trains_over_phases_and_predicts_probabilities(tmp_path):
    job = make_job(tmp_path, epochs_per_phase=3, batch_size=8)
    probs = train(job)
    assert probs.shape == (len(job.test), 3) and probs.dtype == np.float32
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5) and (probs >= 0).all()
    rows = history(tmp_path)
    assert [(r["phase"], r["epoch"]) for r in rows] == [(p, e) for p in "12" for e in "123"]
    assert all(r["select_score"] != "" and float(r["images_per_s"]) > 0 for r in rows)
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    # Three easy classes: far better than chance after six short epochs.
    assert (probs.argmax(1) == job.labels[job.test]).mean() > 0.6


def test_holdout_returns_the_best_selection_epoch(tmp_path):
    job = make_job(tmp_path)
    probs = train(job)
    arrays, meta = saved(tmp_path)
    scores = [float(r["select_score"]) for r in history(tmp_path)]
    best = int(np.argmax(scores))  # first best wins, as the loop keeps strict improvements
    assert meta["position"]["best_score"] == pytest.approx(scores[best], abs=1e-6)
    assert meta["position"]["best_at"] == [best // 2 + 1, best % 2 + 1]
    # One checkpoint file holds state and best weights; the prediction used the best ones.
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == [checkpoint.FILE]
    model = TorchModel(loop.context_for(job))
    model.set_weights(checkpoint.split(arrays, "best"))
    from harness.training.batches import image_batches
    assert np.allclose(model.predict(image_batches(job.images, job.test, 64)), probs, atol=1e-6)


def test_selection_last_skips_the_selection_split(tmp_path):
    job = make_job(tmp_path, selection="last")
    train(job)
    assert all(r["select_score"] == "" and r["selected_evaluation"] == "False"
               for r in history(tmp_path))
    assert not checkpoint.split(saved(tmp_path)[0], "best")


def test_killed_run_resumes_from_its_checkpoint_with_the_same_result(tmp_path, monkeypatch):
    reference = train(make_job(tmp_path / "a"))

    class Killed(Exception):
        pass

    job = make_job(tmp_path / "b")
    calls = []

    def log_then_die(**row):
        calls.append(row)
        Job.log_epoch(job, **row)
        if len(calls) == 3:  # dies after phase 2 epoch 1: the phase-1 checkpoint is on disk
            raise Killed()

    monkeypatch.setattr(job, "log_epoch", log_then_die)
    with pytest.raises(Killed):
        train(job)
    assert len(history(tmp_path / "b")) == 3

    started = []
    original = TorchModel.train_epoch
    monkeypatch.setattr(TorchModel, "train_epoch",
                        lambda self, batches, seed: started.append(seed)
                        or original(self, batches, seed))
    resumed = train(make_job(tmp_path / "b"))
    assert started == [loop.seed_for(0, 1, 1, 0), loop.seed_for(0, 1, 1, 1)]  # phase 2 only
    rows = history(tmp_path / "b")
    assert [(r["phase"], r["epoch"]) for r in rows] == [("1", "1"), ("1", "2"), ("2", "1"), ("2", "2")]
    assert np.allclose(resumed, reference, atol=1e-6)
    timing = ("seconds", "images_per_s", "select_seconds")
    strip = [{k: v for k, v in r.items() if k not in timing} for r in rows]
    ref_rows = [{k: v for k, v in r.items() if k not in timing} for r in history(tmp_path / "a")]
    assert strip == ref_rows

    # A finished run resumed again trains nothing and predicts the same.
    started.clear()
    again = train(make_job(tmp_path / "b"))
    assert started == [] and np.allclose(again, reference, atol=1e-6)


def test_max_steps_per_epoch_caps_the_images_seen(tmp_path):
    job = make_job(tmp_path, max_steps_per_epoch=1, batch_size=8, selection="last")
    train(job)
    assert [int(r["images"]) for r in history(tmp_path)] == [8, 8, 8, 8]


def test_head_only_phase_freezes_the_backbone(tmp_path):
    job = make_job(tmp_path, selection="last", epochs_per_phase=1)
    job.plan = Plan(phases=[Phase(indices=list(range(40)), head_only=True)])
    before = TorchModel(loop.context_for(job)).get_weights()
    train(job)
    after = checkpoint.split(saved(tmp_path)[0], "state")
    backbone = [k for k in before if k.startswith("backbone.")]
    assert backbone and all(np.array_equal(before[k], after[f"model/{k}"]) for k in backbone)
    assert not np.array_equal(before["head.3.weight"], after["model/head.3.weight"])


def test_classifier_only_phase_with_reset_trains_the_final_layer_alone(tmp_path):
    job = make_job(tmp_path, selection="last", epochs_per_phase=1, head="paper")
    job.plan = Plan(phases=[Phase(indices=list(range(40))),
                            Phase(indices=list(range(40)), classifier_only=True,
                                  reset_classifier=True)])
    states = []
    original = TorchModel.reset_classifier

    def reset(self, seed):
        states.append(self.get_weights())
        original(self, seed)
        states.append(self.get_weights())

    TorchModel.reset_classifier = reset
    try:
        train(job)
    finally:
        TorchModel.reset_classifier = original
    before_reset, after_reset = states
    after = {k[6:]: v for k, v in checkpoint.split(saved(tmp_path)[0], "state").items()
             if k.startswith("model/")}
    dense = "head.3.weight"
    assert not np.array_equal(before_reset[dense], after_reset[dense])
    assert after_reset[dense].std() == pytest.approx(0.001, rel=0.2)  # N(0, 0.001) again
    assert not np.array_equal(after_reset[dense], after[dense])  # and trained
    frozen = [k for k in after if not k.startswith("head.3.")]
    assert frozen and all(np.array_equal(after_reset[k], after[k]) for k in frozen)


def test_losses_match_the_shared_table():
    from harness.training.optim import reference_loss

    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.5], [1.0, 3.0, 0.0]])
    y = torch.tensor([0, 1, 2, 0])
    probs = torch.softmax(logits, 1).numpy()
    cw, alpha = [1.0, 3.0, 0.5], [0.25, 0.5, 0.75]
    for kw in ({}, {"class_weights": cw}, {"loss": "focal", "gamma": 2.0},
               {"loss": "focal", "gamma": 1.5, "alpha": alpha, "class_weights": cw}):
        got = torch_ops.sample_losses(
            logits, y, torch.tensor(kw["class_weights"]) if "class_weights" in kw else None,
            kw.get("loss", "cross_entropy"), kw.get("gamma", 2.0),
            torch.tensor(kw["alpha"]) if "alpha" in kw else None).mean()
        assert float(got) == pytest.approx(reference_loss(probs, y.numpy(), **kw), rel=1e-5)


def test_class_weights_scale_each_sample_loss():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.5]])
    y = torch.tensor([0, 1, 2])
    plain = torch_ops.sample_losses(logits, y)
    assert torch.allclose(plain, torch.nn.functional.cross_entropy(logits, y, reduction="none"))
    weighted = torch_ops.sample_losses(logits, y, torch.tensor([1.0, 3.0, 0.5]))
    assert torch.allclose(weighted, plain * torch.tensor([1.0, 3.0, 0.5]))
    # Keras class_weight semantics: the batch loss is the plain mean of weighted losses.
    assert weighted.mean() == pytest.approx(float((plain * torch.tensor([1.0, 3.0, 0.5])).mean()))


def test_focal_loss_down_weights_easy_samples():
    logits = torch.tensor([[4.0, 0.0, 0.0], [0.2, 0.0, 0.0]])
    y = torch.tensor([0, 0])
    ce = torch_ops.sample_losses(logits, y)
    assert torch.allclose(torch_ops.sample_losses(logits, y, loss="focal", gamma=0.0), ce)
    focal = torch_ops.sample_losses(logits, y, loss="focal", gamma=2.0)
    p = torch.softmax(logits, 1)[:, 0]
    assert torch.allclose(focal, (1 - p) ** 2 * ce)
    assert focal[0] / ce[0] < 0.01 < focal[1] / ce[1]  # the confident sample almost vanishes
    with pytest.raises(Exception, match="hinge"):
        torch_ops.sample_losses(logits, y, loss="hinge")


def test_plan_loss_and_class_weights_reach_training(tmp_path):
    def first_loss(run_dir, **plan_kw):
        job = make_job(run_dir, selection="last", epochs_per_phase=1, max_steps_per_epoch=1)
        job.plan = Plan(phases=[Phase(indices=list(range(40)))], **plan_kw)
        train(job)
        return float(history(run_dir)[0]["loss"])

    base = first_loss(tmp_path / "ce")
    assert first_loss(tmp_path / "cw", class_weights=[2.0, 2.0, 2.0]) == pytest.approx(2 * base, rel=1e-4)
    assert first_loss(tmp_path / "focal", loss="focal", loss_options={"gamma": 2.0}) < base


def test_device_batch_scales_augments_and_replicates():
    img = np.zeros((1, 8, 8), np.uint8)
    img[0, 1, 5] = 255
    x = torch_ops.device_batch(torch.from_numpy(img), torch.device("cpu"))
    assert x.shape == (1, 3, 8, 8) and x.is_contiguous(memory_format=torch.channels_last)
    assert float(x.max()) == 1.0 and torch.equal(x[0, 0], x[0, 2])
    p = AugmentParams.identity(1)
    p.theta[:] = 90.0
    turned = torch_ops.device_batch(torch.from_numpy(img), torch.device("cpu"),
                                       theta=affine_matrices(p, 8))
    assert torch.allclose(turned[0, 1], torch.from_numpy(np.rot90(img[0], -1) / 255.0).float(),
                          atol=1e-6)
    norm = torch_ops.device_batch(torch.from_numpy(img), torch.device("cpu"), "imagenet")
    assert float(norm[0, 0, 0, 0]) == pytest.approx(-0.485 / 0.229, rel=1e-5)
    assert float(norm[0, 2, 1, 5]) == pytest.approx((1 - 0.406) / 0.225, rel=1e-5)


def test_augmentation_is_applied_in_training(tmp_path):
    # With augmentation off, two seeds of data order aside, training is a different function.
    on = make_job(tmp_path / "on", selection="last", epochs_per_phase=1)
    off = make_job(tmp_path / "off", selection="last", epochs_per_phase=1,
                   augmentation=Augmentation(enabled=False))
    train(on)
    train(off)
    assert history(tmp_path / "on")[0]["loss"] != history(tmp_path / "off")[0]["loss"]


def test_paper_head_concat_model_trains_a_step(tmp_path):
    from harness_plugins.backbones.torch_models import build_concat

    spec = BackboneSpec("concat", "", {"torch": build_concat})
    job = make_job(tmp_path, n=12, size=64, backbone=spec, head="paper", batch_size=2,
                   epochs_per_phase=1, max_steps_per_epoch=1)
    job.plan = Plan(phases=[Phase(indices=[0, 1, 2, 3])])
    probs = train(job)
    assert probs.shape == (2, 3) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert len(history(tmp_path)) == 1


def test_model_without_a_torch_build_fails_clearly(tmp_path):
    job = make_job(tmp_path, backbone=BackboneSpec("kerasonly", "", {"keras": lambda **k: None}))
    with pytest.raises(Exception, match="kerasonly.*no torch build"):
        train(job)


def test_weight_decay_is_decoupled():
    # One SGD step from zero momentum with a zero gradient: only the decay moves weights,
    # by lr * weight_decay * w (Keras semantics), whatever the optimizer.
    from harness.engine_api import EngineContext

    ctx = EngineContext(backbone=BackboneSpec("tiny", "", {"torch": tiny.build_torch}),
                        image_size=SIZE, n_classes=3,
                        training=Training(optimizer="sgd", lr=0.1, weight_decay=0.5,
                                          head="gap", weights="none", dropout=0.0,
                                          normalization="unit"))
    model = TorchModel(ctx)
    w = model.model.head[-1].weight
    before = w.detach().clone()
    model.set_trainable("classifier")
    model.model.head[-1].weight.register_hook(lambda g: torch.zeros_like(g))
    from harness.engine_api import Batch
    images, labels = synthetic_images(4)
    model.train_epoch([Batch(images, labels.astype(np.int64))], seed=0)
    assert torch.allclose(w.detach(), before * (1 - 0.1 * 0.5), atol=1e-8)
