"""The keras engine: TensorFlow and ``keras.applications``, the paper's own framework.

It follows the same contract as the torch engine: the backbone comes from the run's
``BackboneSpec`` (``builders["keras"]``), the head is shared (``paper`` or ``gap``), phases run
in order with model and optimizer state carried over, every epoch iterates
``job.epoch_indices`` and draws its augmentation from ``harness.training.augment`` with the same
seed, so both engines see the same images transformed the same way.

The input pipeline reads uint8 batches from the memory-mapped cache on a ``tf.data``
thread; grayscale→3 channels, augmentation (``ImageProjectiveTransformV3`` with the shared
matrices) and scaling run on the device, in batches. After every epoch a checkpoint is
written atomically, so a killed run resumes at the next epoch.

TensorFlow is imported inside ``train`` only: registering the engine stays cheap.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness import EngineSpec, hookimpl
from harness.errors import HarnessError
from harness.plugin.check import build_backbone
from harness.progress import Bars, is_enabled
from harness.runs.job import selection_score
from harness.training import augment

#: Checkpoint files in ``job.checkpoint_dir``: the last epoch, and the best one so far.
LAST = "keras-last.npz"
BEST = "keras-best.npz"

#: ``Augmentation.fill`` → ``ImageProjectiveTransformV3`` ``fill_mode``.
TF_FILL = {"nearest": "NEAREST", "constant": "CONSTANT", "reflect": "REFLECT"}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check_backbone(build, image_size: int) -> str | None:
    """The keras backbone contract (``harness.BACKBONE_CONTRACT["keras"]``), or a problem."""
    import_tf("cpu")
    import keras

    model = build()
    if not isinstance(model, keras.layers.Layer):
        return f"its keras build returned {type(model).__name__}, not a keras Model"
    out = model(keras.Input((image_size, image_size, 3)))
    if len(out.shape) != 4:
        return (f"maps a (B, {image_size}, {image_size}, 3) batch to {tuple(out.shape)}; "
                "expected a (B, H, W, C) feature map")
    return None


@hookimpl
def register_engines(register):
    register(EngineSpec(
        name="keras", framework="tensorflow", train=train, check_backbone=check_backbone,
        description="TensorFlow / keras.applications (the paper's framework); tf.data from "
                    "the cache, augmentation on the device, mixed precision on GPU"))


# --------------------------------------------------------------------------- framework setup

def import_tf(device: str = "auto"):
    """Import TensorFlow quietly; ``device: cpu`` hides the GPUs before TF starts."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if device == "cpu":
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:  # already initialised: keep what is there
            pass
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass
    return tf


def precision_policy(tf, precision: str) -> str:
    """Keras dtype policy: mixed precision on a GPU, float32 on the CPU."""
    gpus = tf.config.list_logical_devices("GPU")
    if not gpus or precision == "fp32":
        return "float32"
    if precision == "fp16":
        return "mixed_float16"
    if precision == "bf16":
        return "mixed_bfloat16"
    details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
    major = (details.get("compute_capability") or (0, 0))[0]
    return "mixed_bfloat16" if major >= 8 else "mixed_float16"


def build_model(spec, image_size: int, n_classes: int, head: str = "paper",
                weights: Any = "imagenet", options: dict[str, Any] | None = None):
    """``(model, backbone)``: the backbone from its spec plus the shared classifier head.

    ``paper``: 1×1 conv to 1024 channels without activation → flatten → dropout 0.5 →
    dense softmax initialised N(0, 0.001), as the authors. ``gap``: global average pooling
    → dropout → dense softmax. The softmax runs in float32 under mixed precision.
    """
    import keras
    from keras import layers

    backbone = build_backbone(spec, "keras", image_size, weights, options)
    inp = keras.Input((image_size, image_size, 3), name="image")
    x = backbone(inp)
    if head == "paper":
        x = layers.Conv2D(1024, 1, padding="same", name="head_conv")(x)
        x = layers.Flatten(name="head_flatten")(x)
    elif head == "gap":
        x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    else:
        raise HarnessError(f"unknown head {head!r}; expected 'paper' or 'gap'")
    x = layers.Dropout(0.5, name="head_dropout")(x)
    out = layers.Dense(n_classes, activation="softmax", dtype="float32", name="head_dense",
                       kernel_initializer=keras.initializers.RandomNormal(0.0, 0.001))(x)
    return keras.Model(inp, out, name=f"{spec.name}_{head}"), backbone


def make_optimizer(training):
    import keras

    name, lr, wd = training.optimizer, training.lr, training.weight_decay or None
    if name == "nadam":
        return keras.optimizers.Nadam(lr, weight_decay=wd)
    if name == "adam":
        return keras.optimizers.Adam(lr, weight_decay=wd)
    if name == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=training.weight_decay)
    if name == "sgd":
        return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True, weight_decay=wd)
    raise HarnessError(f"unknown optimizer {name!r}")


# --------------------------------------------------------------------------- device batches

class DeviceBatch:
    """uint8 ``(B, S, S)`` + per-sample transforms → float ``(B, S, S, 3)`` on the device."""

    def __init__(self, tf, image_size: int, fill: str = "nearest",
                 normalization: str = "unit"):
        self.tf = tf
        self.size = image_size
        self.fill = TF_FILL[fill]
        self.interpolation = augment.INTERPOLATION.upper()
        self.normalization = normalization

    def __call__(self, images, transforms=None):
        tf = self.tf
        x = tf.cast(images, tf.float32)[..., None]
        if transforms is not None:
            x = tf.raw_ops.ImageProjectiveTransformV3(
                images=x, transforms=transforms, output_shape=[self.size, self.size],
                fill_value=0.0, interpolation=self.interpolation, fill_mode=self.fill)
        x = tf.tile(x, [1, 1, 1, 3]) / 255.0
        if self.normalization == "imagenet":
            x = (x - tf.constant(IMAGENET_MEAN)) / tf.constant(IMAGENET_STD)
        return x


def tf_transforms(params: augment.AugmentParams, size: int) -> np.ndarray:
    """``(n, 8)`` ``ImageProjectiveTransformV3`` transforms from the shared parameters."""
    return augment.pixel_matrices(params, size).reshape(-1, 9)[:, :8].astype(np.float32)


def batch_dataset(tf, images: np.ndarray, labels: np.ndarray, order: np.ndarray,
                  batch_size: int, n_steps: int, transforms: np.ndarray | None = None):
    """A ``tf.data`` pipeline of uint8 batches read from the cache on a background thread."""
    size = images.shape[1]

    def gen():
        for step in range(n_steps):
            sl = slice(step * batch_size, (step + 1) * batch_size)
            idx = order[sl]
            # Sorted reads are kinder to a memory-mapped file; the batch order is restored.
            srt = np.argsort(idx, kind="stable")
            batch = np.empty((len(idx), size, size), np.uint8)
            batch[srt] = images[idx[srt]]
            t = (transforms[sl] if transforms is not None
                 else np.zeros((len(idx), 8), np.float32))
            yield batch, labels[idx].astype(np.int32), t

    sig = (tf.TensorSpec((None, size, size), tf.uint8),
           tf.TensorSpec((None,), tf.int32),
           tf.TensorSpec((None, 8), tf.float32))
    return tf.data.Dataset.from_generator(gen, output_signature=sig).prefetch(2)


# --------------------------------------------------------------------------- loss

def make_loss(tf, n_classes: int, class_weights: np.ndarray | None, loss: str,
              loss_options: dict[str, Any]):
    """Per-batch loss: mean over samples of ``class_weight[y] * loss_i`` (as Keras's fit)."""
    weights = tf.constant(class_weights if class_weights is not None
                          else np.ones(n_classes, np.float32), tf.float32)
    gamma = float(loss_options.get("gamma", 2.0))
    if loss not in ("cross_entropy", "focal"):
        raise HarnessError(f"unknown loss {loss!r}; the keras engine knows cross_entropy, focal")

    def loss_fn(y, probs):
        probs = tf.cast(probs, tf.float32)
        p_true = tf.gather(probs, y, axis=1, batch_dims=1)
        p_true = tf.clip_by_value(p_true, 1e-7, 1.0)
        per_sample = -tf.math.log(p_true)
        if loss == "focal":
            per_sample = tf.pow(1.0 - p_true, gamma) * per_sample
        return tf.reduce_mean(tf.gather(weights, y) * per_sample)

    return loss_fn


# --------------------------------------------------------------------------- checkpoints

@dataclass
class State:
    """Where training stands: the next (phase, epoch) to run and the best epoch so far."""

    phase: int = 0
    epoch: int = 0
    best_score: float | None = None
    best_at: tuple[int, int] | None = None


def _save_npz(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    from harness.runs.store import atomic_write

    def write(fh):
        np.savez(fh, __meta__=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)

    atomic_write(path, write, mode="wb")


def _load_npz(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if k != "__meta__"}
        meta = json.loads(bytes(data["__meta__"]).decode())
    return arrays, meta


def _weights(prefix: str, values: list[np.ndarray]) -> dict[str, np.ndarray]:
    return {f"{prefix}{i:05d}": np.asarray(v) for i, v in enumerate(values)}


def _unpack(arrays: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    return [arrays[k] for k in sorted(k for k in arrays if k.startswith(prefix))]


def save_checkpoint(job, model, optimizer, state: State, best: list[np.ndarray] | None) -> None:
    """Best weights first (only when they changed), then the last state: each file atomic."""
    folder = job.checkpoint_dir
    if best is not None:
        _save_npz(folder / BEST, _weights("w", best),
                  {"score": state.best_score, "at": state.best_at})
    meta = {"engine": "keras", "phase": state.phase, "epoch": state.epoch,
            "best_score": state.best_score, "best_at": state.best_at,
            "history": job.history, "run_id": job.run.run_id}
    arrays = {**_weights("w", model.get_weights()),
              **_weights("o", [v.numpy() for v in optimizer.variables])}
    _save_npz(folder / LAST, arrays, meta)


def load_checkpoint(job, model, optimizer) -> tuple[State, list[np.ndarray] | None] | None:
    """Restore model, optimizer, history and best weights; ``None`` when there is none."""
    path = job.checkpoint_dir / LAST
    if not path.exists():
        return None
    arrays, meta = _load_npz(path)
    weights, opt = _unpack(arrays, "w"), _unpack(arrays, "o")
    model_vars = model.weights
    if len(weights) != len(model_vars) or len(opt) != len(optimizer.variables):
        raise HarnessError(f"checkpoint {path} does not fit this model ({len(weights)} weights "
                           f"vs {len(model_vars)}); delete the run folder's checkpoints to "
                           "start the run again")
    model.set_weights(weights)
    for var, value in zip(optimizer.variables, opt):
        var.assign(value)
    job.restore_history(meta["history"])
    state = State(phase=meta["phase"], epoch=meta["epoch"], best_score=meta["best_score"],
                  best_at=tuple(meta["best_at"]) if meta["best_at"] else None)
    best = None
    if state.best_at is not None and (job.checkpoint_dir / BEST).exists():
        best_arrays, best_meta = _load_npz(job.checkpoint_dir / BEST)
        if best_meta.get("at") and tuple(best_meta["at"]) == state.best_at:
            best = _unpack(best_arrays, "w")
        else:  # the best file is ahead of the last state: it will be rewritten
            state.best_score, state.best_at = None, None
    return state, best


# --------------------------------------------------------------------------- training

class Trainer:
    """The compiled steps of one model: train (per backbone-frozen setting) and predict."""

    def __init__(self, tf, job, model, backbone, optimizer):
        self.tf, self.job, self.model, self.backbone, self.optimizer = (
            tf, job, model, backbone, optimizer)
        t = job.training
        self.prep = DeviceBatch(tf, job.image_size, t.augmentation.fill, t.normalization)
        self.loss_fn = make_loss(tf, job.n_classes, job.class_weights(), job.plan.loss,
                                 job.plan.loss_options)
        self._train_steps: dict[bool, Any] = {}
        # ``training.compile``: XLA for the model step (the augmentation stays outside it).
        self.jit = bool(t.compile)
        size = job.image_size
        self.predict_step = tf.function(
            lambda x: model(self.prep(x), training=False),
            input_signature=[tf.TensorSpec((None, size, size), tf.uint8)])

    def reseed(self, phase: int, epoch: int) -> None:
        """Dropout randomness from (seed, fold, phase, epoch): a resumed run repeats it."""
        states = [v for v in self.model.variables if v.name == "seed_generator_state"]
        base = np.random.default_rng([self.job.run.seed, self.job.run.fold, phase, epoch, 2])
        for var, value in zip(states, base.integers(0, 2**30, len(states))):
            var.assign(np.array([value, 0], dtype=var.dtype))

    def train_step(self, head_only: bool):
        if head_only not in self._train_steps:
            tf, model, opt = self.tf, self.model, self.optimizer
            self.backbone.trainable = not head_only
            variables = list(model.trainable_variables)
            augment_on = self.job.training.augmentation.enabled

            def update(x, y):
                with tf.GradientTape() as tape:
                    probs = model(x, training=True)
                    loss = self.loss_fn(y, probs)
                    scaled = opt.scale_loss(loss)
                grads = tape.gradient(scaled, variables)
                opt.apply(grads, variables)
                pred = tf.argmax(probs, axis=1, output_type=tf.int32)
                return loss, tf.reduce_sum(tf.cast(pred == y, tf.int32))

            prepare = tf.function(lambda x, tr: self.prep(x, tr if augment_on else None))
            update = tf.function(update, jit_compile=self.jit)

            def step(x, y, transforms):
                return update(prepare(x, transforms), y)

            self._train_steps[head_only] = step
        self.backbone.trainable = not head_only
        return self._train_steps[head_only]

    def predict(self, indices: np.ndarray, batch_size: int) -> np.ndarray:
        if len(indices) == 0:
            return np.zeros((0, self.job.n_classes), np.float32)
        n_steps = -(-len(indices) // batch_size)
        ds = batch_dataset(self.tf, self.job.images, np.zeros(len(self.job.images), np.int64),
                           np.asarray(indices), batch_size, n_steps)
        out = [self.predict_step(x).numpy() for x, _, _ in ds]
        return np.concatenate(out).astype(np.float32)


def epoch_transforms(job, phase: int, epoch: int, n: int, batch_size: int) -> np.ndarray:
    """The epoch's augmentation: drawn batch by batch from the seed the torch engine uses."""
    rng = np.random.default_rng([job.run.seed, job.run.fold, phase, epoch, 7])
    out = [tf_transforms(augment.sample_params(rng, min(batch_size, n - start),
                                               job.training.augmentation, job.image_size),
                         job.image_size)
           for start in range(0, n, batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 8), np.float32)


def run_epoch(job, trainer: Trainer, state: State, head_only: bool,
              bars: Bars | None = None) -> tuple[dict, bool]:
    """One epoch of training, then the selection score; returns the history row."""
    tf, t = trainer.tf, job.training
    started = time.perf_counter()
    order = job.epoch_indices(state.phase, state.epoch)
    n_steps = job.steps(len(order), t.batch_size)
    order = order[: n_steps * t.batch_size]
    transforms = epoch_transforms(job, state.phase, state.epoch, len(order), t.batch_size)
    step = trainer.train_step(head_only)
    trainer.reseed(state.phase, state.epoch)
    total_loss, correct, seen = 0.0, 0, 0
    bars = bars or Bars(False)
    steps_task = bars.task(f"phase {state.phase + 1} epoch {state.epoch + 1} steps", n_steps)
    for x, y, tr in batch_dataset(tf, job.images, job.labels, order, t.batch_size, n_steps,
                                  transforms):
        loss, hits = step(x, y, tr)
        total_loss += float(loss) * int(y.shape[0])
        correct += int(hits)
        seen += int(y.shape[0])
        bars.update(steps_task, advance=1)
    bars.remove(steps_task)
    seconds = time.perf_counter() - started
    row: dict[str, Any] = {
        "phase": state.phase + 1, "epoch": state.epoch + 1,
        "loss": round(total_loss / max(seen, 1), 6),
        "train_acc": round(correct / max(seen, 1), 6),
        "select_score": "",
        "seconds": round(seconds, 3),
        "images_per_s": round(seen / seconds, 2) if seconds > 0 else 0.0,
    }
    improved = False
    if selects_each_epoch(job):
        probs = trainer.predict(job.select, t.batch_size * 2)
        score = selection_score(job.labels[job.select], probs, t.selection_metric)
        row["select_score"] = round(score, 6)
        if state.best_score is None or score > state.best_score:
            state.best_score, state.best_at = score, (state.phase + 1, state.epoch + 1)
            improved = True
    return row, improved


def selects_each_epoch(job) -> bool:
    return job.training.selection in ("holdout", "paper") and len(job.select) > 0


def train(job) -> np.ndarray:
    """Train over the plan's phases and return test probabilities in ``job.test`` order."""
    t = job.training
    tf = import_tf(t.device)
    import keras

    policy = precision_policy(tf, t.precision)
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(int(job.run.seed))
    model, backbone = build_model(job.backbone, job.image_size, job.n_classes, t.head,
                                  t.weights, getattr(t, "backbone_options", None))
    optimizer = make_optimizer(t)
    if policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    trainer = Trainer(tf, job, model, backbone, optimizer)

    restored = load_checkpoint(job, model, optimizer)
    state, best = restored if restored else (State(), None)

    phases = job.plan.phases
    bars = Bars(is_enabled())
    epochs_done = sum(job.phase_epochs(p) for p in range(state.phase)) + state.epoch
    epochs_task = bars.task("epochs (all phases)",
                            sum(job.phase_epochs(p) for p in range(len(phases))), epochs_done)
    try:
        while state.phase < len(phases):
            if state.epoch >= job.phase_epochs(state.phase):
                state.phase, state.epoch = state.phase + 1, 0
                continue
            row, improved = run_epoch(job, trainer, state, phases[state.phase].head_only, bars)
            if improved:
                best = model.get_weights()
            job.log_epoch(**row)
            state.epoch += 1
            save_checkpoint(job, model, optimizer, state, best if improved else None)
            bars.update(epochs_task, advance=1)
    finally:
        bars.close()

    if selects_each_epoch(job) and best is not None:
        model.set_weights(best)
    return trainer.predict(job.test, t.batch_size * 2)
