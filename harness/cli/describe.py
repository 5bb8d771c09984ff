"""Model facts and speed, measured through an engine's primitives: ``python -m harness.cli.describe``.

``harness describe`` and ``harness bench`` (``model_commands.py``) run these functions in a
child process per engine, so TensorFlow and torch never share a process and the command
itself stays framework-free. The child prints one JSON document on its last stdout line.
Nothing here knows an engine: the model comes from the engine's ``build`` and is timed
through the same primitives the training loop calls (so the bench trains in the layout,
precision and thread count the engine trains in).

- ``describe``: feature-map shape and parameter counts (the engine's ``describe``).
- ``bench``: training and inference images/s per backbone (``train_epoch``/``predict``), the
  input pipeline's images/s (the loop's host batches + the engine's ``prepare``), and with
  ``overhead`` the per-epoch work outside training steps (``harness.training.overhead``).
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
from harness.plugin.options import Options, validate_options
from harness.plugin.registry import build_registry

#: The batch size of a backbone without a ``published_batch_size`` (the paper's, for a
#: single network).
DEFAULT_BATCH = 30


def head_params(head: str, feature_shape: tuple[int, int, int], n_classes: int) -> int:
    """Parameters of the shared head on an ``(H, W, C)`` feature map (framework-free)."""
    h, w, c = feature_shape
    if head == "paper":
        return (c * 1024 + 1024) + (h * w * 1024 * n_classes + n_classes)
    if head == "gap":
        return c * n_classes + n_classes
    raise HarnessError(f"unknown head {head!r}; expected 'paper' or 'gap'")


def _options(spec, options: dict[str, Any] | None) -> Options:
    """The backbone's options from the command line, validated by its model."""
    return validate_options(spec.options, options or {}, "--options", f"backbone {spec.name!r}")


def build_model(engine: str, backbone: str, image_size: int, head: str = "paper",
                weights: str = "none", n_classes: int = 3, plugins=(), options=None,
                batch_size: int = DEFAULT_BATCH, device: str = "auto", threads: int = 0,
                precision: str = "auto", compile: bool = False):
    """An engine's model through its ``build`` primitive, as the loop builds it."""
    from harness.config.suite import Training
    from harness.plugin.engine import EngineContext
    from harness.plugin.specs import UnknownWeights
    from harness.plugin.weights import resolved_normalization

    registry = build_registry(list(plugins))
    spec = registry.get("backbones", backbone)
    if registry.get("engines", engine).builder not in spec.builders:
        raise HarnessError(f"backbone {backbone!r} has no {engine} build; it supports: "
                           f"{', '.join(sorted(spec.builders))}")
    # Throughput, not reproducibility: autotuned (non-deterministic) kernels, as a speed
    # figure should; TensorFlow also has no deterministic XLA gradient for max pooling.
    training = Training(batch_size=batch_size, weights=weights, head=head, device=device,
                        precision=precision, compile=compile, deterministic=False)
    try:
        training = resolved_normalization(training, spec,
                                          registry.get("engines", engine).builder)
    except (ValueError, UnknownWeights) as exc:
        raise HarnessError(f"--weights: {exc}") from None
    ctx = EngineContext(backbone=spec, image_size=image_size, n_classes=n_classes,
                        training=training, backbone_options=_options(spec, options),
                        threads=threads)
    return registry.get("engines", engine).build(ctx)


def _require(model, *names: str) -> None:
    missing = [n for n in names if not hasattr(model, n)]
    if missing:
        raise HarnessError(f"engine model {type(model).__name__} lacks the optional "
                           f"primitive(s) {', '.join(missing)} (harness.engine_api."
                           "Describable)")


# ------------------------------------------------------------------------------- describe

def describe(engine: str, backbone: str, image_size: int, head: str, weights: str = "none",
             n_classes: int = 3, plugins: list[str] = (), options=None) -> dict[str, Any]:
    model = build_model(engine, backbone, image_size, head, weights, n_classes, plugins,
                        options, device="cpu")
    _require(model, "describe")
    return {"engine": engine, "backbone": backbone, "image_size": image_size, "head": head,
            **model.describe()}


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


def batch_sizes(registry, backbones: list[str], batch_size: int | None) -> dict[str, int]:
    """``batch_size`` for every backbone, or else each one's published batch size."""
    return {b: batch_size or registry.get("backbones", b).published_batch_size
            or DEFAULT_BATCH for b in backbones}


def _bench_data(folder: Path, sizes: list[int], steps: int, image_size: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """A noise cache big enough for every timed batch of every size, and its labels."""
    n = max(max(sizes) * (steps + 1), 64)
    return _fake_cache(folder, n, image_size), np.arange(n) % 3


def _rate(images: int, seconds: float) -> float:
    return round(images / seconds, 2) if seconds > 0 else 0.0


def _batches(cache, labels, rng, batch_size: int, steps: int, image_size: int):
    from harness.config.suite import Augmentation
    from harness.training.batches import train_batches

    order = rng.permutation(len(labels))[: batch_size * steps]
    return list(train_batches(cache, labels, order, batch_size, Augmentation(), image_size,
                              rng))


def bench(engine: str, backbones: list[str], image_size: int, batch_size: int | None,
          steps: int, device: str = "auto", plugins: list[str] = (), head: str = "paper",
          overhead: bool = False, precision: str = "auto", compile: bool = False
          ) -> dict[str, Any]:
    from harness.training.batches import free_cores, image_batches

    threads = free_cores()
    sizes = batch_sizes(build_registry(list(plugins)), backbones, batch_size)
    pipeline_batch = batch_size or DEFAULT_BATCH
    results: dict[str, Any] = {"engine": engine, "threads": threads, "compile": compile,
                               "models": []}
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        cache, labels = _bench_data(Path(tmp), [pipeline_batch, *sizes.values()], steps,
                                    image_size)
        for name in backbones:
            bs = sizes[name]
            model = build_model(engine, name, image_size, head, "none", 3, plugins, None, bs,
                                device, threads, precision, compile)
            _require(model, "device_name", "precision", "prepare")
            results["device"], results["precision"] = model.device_name, model.precision
            if "pipeline" not in results:
                # The input pipeline alone: cache → host batch (read ahead) → augmented
                # batch on the device.
                pipe = _batches(cache, labels, rng, pipeline_batch, steps + 1, image_size)
                model.prepare(pipe[0])
                start = time.perf_counter()
                for batch in pipe[1:]:
                    model.prepare(batch)
                results["pipeline"] = {"batch_size": pipeline_batch, "images_per_s": _rate(
                    pipeline_batch * steps, time.perf_counter() - start)}
            train = _batches(cache, labels, rng, bs, steps + 1, image_size)
            model.train_epoch(train[:1], seed=0)  # warm-up: allocation, tracing
            start = time.perf_counter()
            seen = model.train_epoch(train[1:], seed=1).seen
            train_rate = _rate(seen, time.perf_counter() - start)
            infer_batch = bs * 4  # the loop predicts in batches of 4x the training batch
            order = np.arange(min(len(labels), infer_batch * max(1, steps // 4)))
            model.predict(image_batches(cache, order[:infer_batch], infer_batch))
            start = time.perf_counter()
            model.predict(image_batches(cache, order, infer_batch))
            infer_rate = _rate(len(order), time.perf_counter() - start)
            row = {"backbone": name, "batch_size": bs, "train_images_per_s": train_rate,
                   "infer_images_per_s": infer_rate,
                   "forward_flops": (model.forward_flops() if hasattr(model, "forward_flops")
                                     else None)}
            if overhead:
                from harness.training.overhead import measure_copies

                row["copies"] = measure_copies(model)
            results["models"].append(row)
            del model
    if overhead:
        from harness.training.overhead import bookkeeping_seconds

        results["bookkeeping_s_per_epoch"] = bookkeeping_seconds()
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
    "describe": describe,
    "bench": bench,
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
