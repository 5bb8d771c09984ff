"""The keras engine: the primitives of ``harness.training.engine`` in TensorFlow / Keras.

``keras.applications``, the paper's own framework. The core's loop (``harness.training.loop``)
runs phases, epochs, selection, checkpoints and history; this module builds the model
(backbone from its ``keras`` builder + the shared head), runs optimizer steps over the batches
it is handed and predicts. Grayscale→3 channels, augmentation (``ImageProjectiveTransformV3``
with the shared ``harness.training.augment`` matrices) and scaling run on the device.
Optimizers and losses follow ``harness.training.optim``.

TensorFlow is imported inside ``build`` only: registering the engine stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from harness import EngineSpec, hookimpl
from harness.errors import HarnessError
from harness.plugin.check import build_backbone
from harness.training import augment
from harness.training.engine import Batch, EngineContext, EpochResult
from harness.training.optim import PROB_FLOOR, check_loss, optimizer_def

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
        name="keras", framework="tensorflow", check_backbone=check_backbone, build=build,
        description="TensorFlow / keras.applications (the paper's framework); "
                    "augmentation on the device, mixed precision on GPU"))


# --------------------------------------------------------------------------- framework setup

def import_tf(device: str = "auto", threads: int = 0):
    """Import TensorFlow quietly; ``device: cpu`` hides the GPUs before TF starts;
    ``threads`` caps the CPU threads of one op (set before the runtime starts)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # already initialised: keep what is there
            pass

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
                weights: Any = "imagenet", options: dict[str, Any] | None = None,
                dropout: float = 0.5):
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
    x = layers.Dropout(dropout, name="head_dropout")(x)
    out = layers.Dense(n_classes, activation="softmax", dtype="float32", name="head_dense",
                       kernel_initializer=keras.initializers.RandomNormal(0.0, 0.001))(x)
    return keras.Model(inp, out, name=f"{spec.name}_{head}"), backbone


def make_optimizer(training):
    """The table's optimizer (``harness.training.optim``); Keras's ``weight_decay`` is the
    table's decoupled decay."""
    import keras

    d = optimizer_def(training.optimizer)
    lr, wd = training.lr, training.weight_decay or None
    if d.name == "nadam":
        return keras.optimizers.Nadam(lr, beta_1=d.beta1, beta_2=d.beta2, epsilon=d.epsilon,
                                      weight_decay=wd)
    if d.name in ("adam", "adamw"):
        return keras.optimizers.Adam(lr, beta_1=d.beta1, beta_2=d.beta2, epsilon=d.epsilon,
                                     weight_decay=wd)
    return keras.optimizers.SGD(lr, momentum=d.momentum, nesterov=d.nesterov, weight_decay=wd)


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


# --------------------------------------------------------------------------- loss

def make_loss(tf, n_classes: int, class_weights, loss: str, loss_options: dict[str, Any]):
    """Per-batch loss of ``harness.training.optim``: the mean over samples of
    ``class_weight[y] * loss_i`` (as Keras's fit), from probabilities clipped at 1e-7."""
    check_loss(loss)
    weights = tf.constant(class_weights if class_weights is not None
                          else np.ones(n_classes, np.float32), tf.float32)
    gamma = float(loss_options.get("gamma", 2.0))
    alpha = loss_options.get("alpha")
    alpha = tf.constant(alpha, tf.float32) if alpha is not None else None

    def loss_fn(y, probs):
        probs = tf.cast(probs, tf.float32)
        p_true = tf.gather(probs, y, axis=1, batch_dims=1)
        p_true = tf.clip_by_value(p_true, PROB_FLOOR, 1.0)
        per_sample = -tf.math.log(p_true)
        if loss == "focal":
            per_sample = tf.pow(1.0 - p_true, gamma) * per_sample
            if alpha is not None:
                per_sample = tf.gather(alpha, y) * per_sample
        return tf.reduce_mean(tf.gather(weights, y) * per_sample)

    return loss_fn


# --------------------------------------------------------------------------- the model

class KerasModel:
    """The primitives (``harness.training.engine.EngineModel``) over one Keras model."""

    def __init__(self, ctx: EngineContext):
        t = ctx.training
        tf = import_tf(t.device, ctx.threads)
        import keras

        self.tf, self.keras, self.ctx = tf, keras, ctx
        policy = precision_policy(tf, t.precision)
        keras.mixed_precision.set_global_policy(policy)
        keras.utils.set_random_seed(int(ctx.seed))
        self.model, self.backbone = build_model(
            ctx.backbone, ctx.image_size, ctx.n_classes, t.head, t.weights,
            ctx.backbone_options, getattr(t, "dropout", 0.5))
        optimizer = make_optimizer(t)
        if policy == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(self.model.trainable_variables)
        self.optimizer = optimizer
        size = ctx.image_size
        self.prep = DeviceBatch(tf, size, t.augmentation.fill, t.normalization)
        loss_options = {"gamma": ctx.loss.gamma, "alpha": ctx.loss.alpha}
        self.loss_fn = make_loss(tf, ctx.n_classes, ctx.loss.class_weights, ctx.loss.name,
                                 loss_options)
        self.images_spec = tf.TensorSpec((None, size, size), tf.uint8)
        self.predict_step = tf.function(
            lambda x: self.model(self.prep(x), training=False),
            input_signature=[self.images_spec])
        self._steps: dict[str, Any] = {}
        self.part = "all"

    @property
    def classifier(self):
        return self.model.get_layer("head_dense")

    def set_trainable(self, part: str) -> None:
        self.part = part
        for layer in self.model.layers:
            layer.trainable = part == "all" or (part == "head" and layer is not self.backbone)
        if part == "classifier":
            self.classifier.trainable = True

    def reset_classifier(self, seed: int) -> None:
        layer = self.classifier
        rng = np.random.default_rng(int(seed))
        layer.kernel.assign(rng.normal(0.0, 0.001, tuple(layer.kernel.shape))
                            .astype(np.float32))
        layer.bias.assign(np.zeros(tuple(layer.bias.shape), np.float32))

    def _step(self):
        """The compiled step of the current trainable part (traced once per part)."""
        if self.part not in self._steps:
            tf, model, opt = self.tf, self.model, self.optimizer
            variables = list(model.trainable_variables)

            def update(x, y):
                with tf.GradientTape() as tape:
                    probs = model(x, training=True)
                    loss = self.loss_fn(y, probs)
                    scaled = opt.scale_loss(loss)
                grads = tape.gradient(scaled, variables)
                opt.apply(grads, variables)
                pred = tf.argmax(probs, axis=1, output_type=tf.int32)
                return loss, tf.reduce_sum(tf.cast(pred == y, tf.int32))

            # ``training.compile``: XLA for the model step (the augmentation stays outside).
            update = tf.function(update, jit_compile=bool(self.ctx.training.compile))
            prep = self.prep

            @tf.function(input_signature=[self.images_spec, tf.TensorSpec((None,), tf.int32),
                                          tf.TensorSpec((None, 8), tf.float32),
                                          tf.TensorSpec((), tf.bool)])
            def step(x, y, transforms, augmented):
                x = tf.cond(augmented, lambda: prep(x, transforms), lambda: prep(x))
                return update(x, y)

            self._steps[self.part] = step
        return self._steps[self.part]

    def reseed(self, seed: int) -> None:
        """Dropout randomness from the epoch's seed: a resumed run repeats it."""
        states = [v for v in self.model.variables if "seed_generator_state" in v.path]
        base = np.random.default_rng(int(seed))
        for var, value in zip(states, base.integers(0, 2**30, len(states))):
            var.assign(np.array([value, 0], dtype=var.dtype))

    def train_epoch(self, batches: Iterable[Batch], seed: int) -> EpochResult:
        tf = self.tf
        step = self._step()
        self.reseed(seed)
        size = self.ctx.image_size
        total, correct, seen = tf.constant(0.0), tf.constant(0), 0
        for batch in batches:
            n = len(batch.labels)
            augmented = batch.augment is not None
            transforms = (tf_transforms(batch.augment, size) if augmented
                          else np.zeros((n, 8), np.float32))
            loss, hits = step(batch.images, batch.labels.astype(np.int32), transforms,
                              tf.constant(augmented))
            total += loss * n
            correct += hits
            seen += n
        return EpochResult(float(total), int(correct), seen)

    def predict(self, batches: Iterable[np.ndarray]) -> np.ndarray:
        out = [self.predict_step(images).numpy() for images in batches]
        if not out:
            return np.zeros((0, self.ctx.n_classes), np.float32)
        return np.concatenate(out).astype(np.float32)

    # ------------------------------------------------------------ bench and describe

    @property
    def device_name(self) -> str:
        return "GPU" if self.tf.config.list_logical_devices("GPU") else "CPU"

    @property
    def precision(self) -> str:
        return self.keras.mixed_precision.global_policy().name

    def prepare(self, batch: Batch) -> None:
        """The input pipeline alone: one augmented batch on the device, synchronised."""
        if not hasattr(self, "_prepare"):
            tf = self.tf
            self._prepare = tf.function(
                lambda x, t: tf.reduce_sum(self.prep(x, t)),
                input_signature=[self.images_spec, tf.TensorSpec((None, 8), tf.float32)])
        n = len(batch.labels)
        transforms = (tf_transforms(batch.augment, self.ctx.image_size)
                      if batch.augment is not None else np.zeros((n, 8), np.float32))
        float(self._prepare(batch.images, transforms))

    def describe(self) -> dict[str, Any]:
        """Feature-map shape ``(H, W, C)`` and parameter counts (Keras's own split)."""
        def counts(m) -> dict[str, int]:
            trainable = sum(int(np.prod(v.shape)) for v in m.trainable_weights)
            frozen = sum(int(np.prod(v.shape)) for v in m.non_trainable_weights)
            return {"total": trainable + frozen, "trainable": trainable,
                    "non_trainable": frozen}

        return {"feature_shape": [int(d) for d in self.backbone.output.shape[1:]],
                "params": {"backbone": counts(self.backbone), "model": counts(self.model)}}

    # ------------------------------------------------------------ state

    def get_weights(self) -> dict[str, np.ndarray]:
        return {f"{i:05d}": np.array(v) for i, v in enumerate(self.model.get_weights())}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        values = [weights[k] for k in sorted(weights)]
        if len(values) != len(self.model.weights):
            raise HarnessError(f"saved weights do not fit this model ({len(values)} arrays "
                               f"for {len(self.model.weights)}); delete the run folder's "
                               "checkpoints to start the run again")
        self.model.set_weights(values)

    def get_state(self) -> dict[str, np.ndarray]:
        state = {f"model/{k}": v for k, v in self.get_weights().items()}
        state.update({f"optim/{i:05d}": np.array(v.numpy())
                      for i, v in enumerate(self.optimizer.variables)})
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.set_weights({k[6:]: v for k, v in state.items() if k.startswith("model/")})
        opt = [state[k] for k in sorted(k for k in state if k.startswith("optim/"))]
        if len(opt) != len(self.optimizer.variables):
            raise HarnessError("saved optimizer state does not fit this model; delete the run "
                               "folder's checkpoints to start the run again")
        for var, value in zip(self.optimizer.variables, opt):
            var.assign(value)


def build(ctx: EngineContext) -> KerasModel:
    return KerasModel(ctx)
