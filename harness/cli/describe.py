"""Model facts and speed, measured inside one framework: ``python -m harness.cli.describe``.

``harness describe`` and ``harness bench`` (``model_commands.py``) run these functions in a
child process per engine, so TensorFlow and torch never share a process and the command
itself stays framework-free. The child prints one JSON document on its last stdout line.

- ``describe``: feature-map shape and parameter counts (total / trainable / non-trainable)
  of a backbone and of backbone + head. Non-trainable counts are BatchNorm statistics
  (Keras's "non-trainable params"; torch buffers), so both engines count the same things.
- ``bench``: training and inference images/s per backbone, and the input pipeline's
  images/s (uint8 cache → augmented batch on the device).
- ``paper_pipeline``: the authors' pipeline, Keras ``ImageDataGenerator(...).flow`` with
  the Table 2 settings over in-memory float images, as the baseline of the comparison.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.plugin.check import build_backbone
from harness.plugin.options import validate_options
from harness.plugin.registry import build_registry

#: The paper's batch sizes (30 for a single network, 20 for the concatenation).
PAPER_BATCH = {"concat": 20}
DEFAULT_BATCH = 30


def head_params(head: str, feature_shape: tuple[int, int, int], n_classes: int) -> int:
    """Parameters of the shared head on an ``(H, W, C)`` feature map (framework-free)."""
    h, w, c = feature_shape
    if head == "paper":
        return (c * 1024 + 1024) + (h * w * 1024 * n_classes + n_classes)
    if head == "gap":
        return c * n_classes + n_classes
    raise HarnessError(f"unknown head {head!r}; expected 'paper' or 'gap'")


def _spec(backbone: str, plugins: list[str]):
    return build_registry(plugins).get("backbones", backbone)


def _options(spec, options: dict[str, Any] | None):
    """The backbone's options from the command line, validated into its model."""
    return validate_options(spec.options, options or {}, "--options", f"backbone {spec.name!r}")


# ------------------------------------------------------------------------------- describe

def describe_keras(backbone: str, image_size: int, head: str, weights: str = "none",
                   n_classes: int = 3, plugins: list[str] = (), options=None) -> dict[str, Any]:
    from harness_plugins.engines import keras_engine as ke

    ke.import_tf("cpu")
    spec = _spec(backbone, list(plugins))
    model, net = ke.build_model(spec, image_size, n_classes, head, weights,
                                _options(spec, options))

    def counts(m) -> dict[str, int]:
        trainable = sum(int(np.prod(v.shape)) for v in m.trainable_weights)
        frozen = sum(int(np.prod(v.shape)) for v in m.non_trainable_weights)
        return {"total": trainable + frozen, "trainable": trainable, "non_trainable": frozen}

    return {"engine": "keras", "backbone": backbone, "image_size": image_size, "head": head,
            "feature_shape": [int(d) for d in net.output.shape[1:]],
            "params": {"backbone": counts(net), "model": counts(model)}}


def describe_torch(backbone: str, image_size: int, head: str, weights: str = "none",
                   n_classes: int = 3, plugins: list[str] = (), options=None) -> dict[str, Any]:
    import torch
    from harness_plugins.backbones.torch_heads import build_classifier

    spec = _spec(backbone, list(plugins))
    net = build_backbone(spec, "torch", image_size, weights, _options(spec, options))
    model = build_classifier(net, head, n_classes, image_size)
    model.eval()
    with torch.no_grad():
        c, h, w = net(torch.zeros(1, 3, image_size, image_size)).shape[1:]

    def counts(m) -> dict[str, int]:
        trainable = sum(p.numel() for p in m.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in m.parameters() if not p.requires_grad)
        frozen += sum(b.numel() for name, b in m.named_buffers()
                      if not name.endswith("num_batches_tracked"))
        return {"total": trainable + frozen, "trainable": trainable, "non_trainable": frozen}

    return {"engine": "torch", "backbone": backbone, "image_size": image_size, "head": head,
            "feature_shape": [int(h), int(w), int(c)],
            "params": {"backbone": counts(net), "model": counts(model)}}


# ------------------------------------------------------------------------------- bench

def _fake_cache(folder: Path, n: int, size: int) -> np.ndarray:
    """A memory-mapped uint8 cache like the real one, filled with noise."""
    images = np.memmap(folder / "images.u8", dtype=np.uint8, mode="w+", shape=(n, size, size))
    rng = np.random.default_rng(0)
    for start in range(0, n, 64):
        images[start:start + 64] = rng.integers(0, 256, images[start:start + 64].shape,
                                                dtype=np.uint8)
    images.flush()
    return np.memmap(folder / "images.u8", dtype=np.uint8, mode="r", shape=(n, size, size))


def _bench_data(folder: Path, backbones: list[str], batch_size: int | None, steps: int,
                image_size: int) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """A noise cache big enough for every timed batch, its labels, and a seeded generator."""
    b_max = max(batch_size or PAPER_BATCH.get(b, DEFAULT_BATCH) for b in backbones)
    n = max(b_max * (steps + 1), 64)
    return _fake_cache(folder, n, image_size), np.arange(n) % 3, np.random.default_rng(0)


def _rate(images: int, seconds: float) -> float:
    return round(images / seconds, 2) if seconds > 0 else 0.0


def bench_keras(backbones: list[str], image_size: int, batch_size: int | None, steps: int,
                device: str = "auto", plugins: list[str] = (), head: str = "paper"
                ) -> dict[str, Any]:
    import keras
    from harness_plugins.engines import keras_engine as ke

    from harness.config.suite import Augmentation, Training
    from harness.training import augment

    tf = ke.import_tf(device)
    policy = ke.precision_policy(tf, "auto")
    keras.mixed_precision.set_global_policy(policy)
    registry = build_registry(list(plugins))
    aug = Augmentation()
    results: dict[str, Any] = {"engine": "keras", "device": _tf_device(tf), "precision": policy,
                               "models": []}
    with tempfile.TemporaryDirectory() as tmp:
        cache, labels, rng = _bench_data(Path(tmp), backbones, batch_size, steps, image_size)
        n = len(labels)

        # The input pipeline alone: cache → tf.data batch → augmented float batch on device.
        prep = ke.DeviceBatch(tf, image_size)
        prep_fn = tf.function(lambda x, t: tf.reduce_sum(prep(x, t)))
        b = batch_size or DEFAULT_BATCH
        order = rng.permutation(n)[: b * (steps + 1)]
        transforms = ke.tf_transforms(augment.sample_params(rng, len(order), aug, image_size),
                                      image_size)
        ds = ke.batch_dataset(tf, cache, labels, order, b, steps + 1, transforms)
        seen, start = 0, None
        for i, (x, _, t) in enumerate(ds):
            float(prep_fn(x, t))
            if i == 0:
                start = time.perf_counter()
                continue
            seen += int(x.shape[0])
        results["pipeline"] = {"batch_size": b, "images_per_s": _rate(
            seen, time.perf_counter() - start)}

        for name in backbones:
            bs = batch_size or PAPER_BATCH.get(name, DEFAULT_BATCH)
            spec = registry.get("backbones", name)
            keras.utils.set_random_seed(0)
            model, net = ke.build_model(spec, image_size, 3, head, "none",
                                        _options(spec, None))
            training = Training(batch_size=bs, weights="none", head=head)
            opt = ke.make_optimizer(training)
            if policy == "mixed_float16":
                opt = keras.optimizers.LossScaleOptimizer(opt)
            opt.build(model.trainable_variables)
            job = _BenchJob(image_size, training)
            trainer = ke.Trainer(tf, job, model, net, opt)
            step = trainer.train_step(False)
            order = rng.permutation(n)[: bs * (steps + 1)]
            transforms = ke.tf_transforms(
                augment.sample_params(rng, len(order), aug, image_size), image_size)
            seen = 0
            for i, (x, y, t) in enumerate(ke.batch_dataset(tf, cache, labels, order, bs,
                                                           steps + 1, transforms)):
                loss, _ = step(x, y, t)
                float(loss)
                if i == 0:
                    start = time.perf_counter()
                    continue
                seen += int(x.shape[0])
            train_rate = _rate(seen, time.perf_counter() - start)
            x = tf.constant(cache[:bs])
            trainer.predict_step(x).numpy()
            start = time.perf_counter()
            for _ in range(steps):
                trainer.predict_step(x).numpy()
            infer_rate = _rate(bs * steps, time.perf_counter() - start)
            results["models"].append({"backbone": name, "batch_size": bs,
                                      "train_images_per_s": train_rate,
                                      "infer_images_per_s": infer_rate})
            del model, net, trainer
            keras.backend.clear_session()
    return results


class _BenchJob:
    """The few ``Job`` fields ``keras_engine.Trainer`` reads."""

    def __init__(self, image_size: int, training):
        from harness.config.suite import RunSpec
        from harness.plugin.specs import Plan

        self.image_size, self.training, self.n_classes = image_size, training, 3
        self.plan = Plan(phases=[])
        self.run = RunSpec(suite="bench", backbone="", sampler="", engine="keras", fold=1,
                           seed=0, training={}, sampler_options={}, run_id="bench")

    def class_weights(self):
        return None


def _tf_device(tf) -> str:
    gpus = tf.config.list_logical_devices("GPU")
    return "GPU" if gpus else "CPU"


def bench_torch(backbones: list[str], image_size: int, batch_size: int | None, steps: int,
                device: str = "auto", plugins: list[str] = (), head: str = "paper"
                ) -> dict[str, Any]:
    import torch
    from harness_plugins.backbones.torch_heads import build_classifier
    from harness_plugins.engines import torch_engine as te

    from harness.config.suite import Augmentation, Training
    from harness.training import augment

    dev = te.resolve_device(device)
    amp = te.autocast_dtype(dev, "auto")
    pin = dev.type == "cuda"
    registry = build_registry(list(plugins))
    aug = Augmentation()
    results: dict[str, Any] = {"engine": "torch", "device": str(dev),
                               "precision": str(amp).replace("torch.", "") if amp else "float32",
                               "models": []}

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    with tempfile.TemporaryDirectory() as tmp:
        cache, labels, rng = _bench_data(Path(tmp), backbones, batch_size, steps, image_size)
        n = len(labels)

        b = batch_size or DEFAULT_BATCH
        order = rng.permutation(n)[: b * (steps + 1)]
        seen, start = 0, None
        for i, (x, _) in enumerate(te.host_batches(cache, labels, order, b, steps + 1, pin)):
            theta = augment.affine_matrices(augment.sample_params(rng, len(x), aug, image_size),
                                            image_size)
            float(te.device_batch(x, dev, "unit", theta).sum())
            if i == 0:
                start = time.perf_counter()
                continue
            seen += len(x)
        results["pipeline"] = {"batch_size": b,
                               "images_per_s": _rate(seen, time.perf_counter() - start)}

        for name in backbones:
            bs = batch_size or PAPER_BATCH.get(name, DEFAULT_BATCH)
            spec = registry.get("backbones", name)
            torch.manual_seed(0)
            net = build_backbone(spec, "torch", image_size, "none", None)
            model = build_classifier(net, head, 3, image_size).to(dev)
            model = model.to(memory_format=torch.channels_last)
            opt = te.make_optimizer(model.parameters(), Training(batch_size=bs))
            scaler = torch.amp.GradScaler(dev.type, enabled=amp == torch.float16)
            order = rng.permutation(n)[: bs * (steps + 1)]
            model.train()
            seen = 0
            for i, (x, y) in enumerate(te.host_batches(cache, labels, order, bs, steps + 1,
                                                       pin)):
                theta = augment.affine_matrices(
                    augment.sample_params(rng, len(x), aug, image_size), image_size)
                x = te.device_batch(x, dev, "unit", theta)
                y = y.to(dev, non_blocking=True)
                with torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
                    logits = model(x)
                loss = te.sample_losses(logits, y).mean()
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                sync()
                if i == 0:
                    start = time.perf_counter()
                    continue
                seen += len(y)
            train_rate = _rate(seen, time.perf_counter() - start)
            model.eval()
            x = te.device_batch(torch.from_numpy(np.ascontiguousarray(cache[:bs])), dev)
            with torch.inference_mode(), torch.autocast(dev.type, dtype=amp,
                                                        enabled=amp is not None):
                model(x)
                sync()
                start = time.perf_counter()
                for _ in range(steps):
                    model(x)
                sync()
            infer_rate = _rate(bs * steps, time.perf_counter() - start)
            results["models"].append({"backbone": name, "batch_size": bs,
                                      "train_images_per_s": train_rate,
                                      "infer_images_per_s": infer_rate})
            del model, net, opt
    return results


def paper_pipeline(image_size: int, batch_size: int | None, steps: int) -> dict[str, Any]:
    """The authors' input pipeline: ``ImageDataGenerator`` (Table 2) ``.flow`` in memory."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    b = batch_size or DEFAULT_BATCH
    n = b * (steps + 1)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, image_size, image_size, 3)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[np.arange(n) % 3]
    gen = tf.keras.preprocessing.image.ImageDataGenerator(
        rescale=1.0 / 255, horizontal_flip=True, vertical_flip=True, rotation_range=360,
        zoom_range=0.05, width_shift_range=0.05, height_shift_range=0.05, shear_range=0.05,
        fill_mode="nearest")
    flow = gen.flow(x, y, batch_size=b, shuffle=True, seed=0)
    next(flow)
    start = time.perf_counter()
    seen = sum(len(next(flow)[0]) for _ in range(steps))
    return {"batch_size": b, "images_per_s": _rate(seen, time.perf_counter() - start)}


TASKS = {
    "describe-keras": describe_keras,
    "describe-torch": describe_torch,
    "bench-keras": bench_keras,
    "bench-torch": bench_torch,
    "paper-pipeline": paper_pipeline,
}


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.cli.describe TASK JSON_KWARGS``: prints the result as JSON."""
    argv = sys.argv[1:] if argv is None else argv
    task, kwargs = argv[0], json.loads(argv[1])
    try:
        result = {"ok": TASKS[task](**kwargs)}
    except HarnessError as exc:
        result = {"error": str(exc)}
    sys.stdout.flush()
    print("\n" + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
