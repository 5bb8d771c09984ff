"""The keras engine's framework helpers: TensorFlow set-up, precision policy, the network,
optimizer, device batches, loss and the backbone contract. ``model.py`` calls these.

TensorFlow is imported inside these functions only (``import_tf``), so that its logging and
device settings are made before it starts.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from harness import HarnessError
from harness.engine_api import (
    CLASSIFIER_STD,
    INTERPOLATION,
    NORMALIZATION,
    PROB_FLOOR,
    TF_FILL_MODE,
    build_backbone,
    check_loss,
    compute_dtype,
    feature_map_problem,
    optimizer_def,
    projective_transforms,
)


def import_tf(device: str = "auto", threads: int = 0, deterministic: bool = False):
    """Import TensorFlow quietly; ``device: cpu`` hides the GPUs before TF starts;
    ``threads`` fixes the CPU threads of one op (results change with it; set before the
    runtime starts); ``deterministic`` turns on TensorFlow's op determinism."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:  # each raises RuntimeError once the runtime is initialised: keep what is there
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        if device == "cpu":
            tf.config.set_visible_devices([], "GPU")
    except RuntimeError:
        pass
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass
    return tf


def precision_policy(tf, precision: str) -> str:
    """Keras dtype policy: mixed precision on a GPU (``auto``: bf16 from compute capability
    8), float32 on the CPU whatever is asked."""
    if not tf.config.list_logical_devices("GPU"):
        return "float32"
    major = 0
    if precision == "auto":
        gpu = tf.config.list_physical_devices("GPU")[0]
        major = (tf.config.experimental.get_device_details(gpu).get("compute_capability")
                 or (0, 0))[0]
    name = compute_dtype(precision, accelerator=True, bf16=major >= 8)
    return "float32" if name == "float32" else f"mixed_{name}"


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
                       kernel_initializer=keras.initializers.RandomNormal(0.0, CLASSIFIER_STD))(x)
    return keras.Model(inp, out, name=f"{spec.name}_{head}"), backbone


def make_optimizer(training):
    """The table's optimizer (``harness.engine_api.optimizer_def``); Keras's ``weight_decay`` is the
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


class DeviceBatch:
    """uint8 ``(B, S, S)`` + per-sample transforms → float ``(B, S, S, 3)`` on the device."""

    def __init__(self, tf, image_size: int, fill: str = "nearest",
                 normalization: str = "unit"):
        self.tf = tf
        self.size = image_size
        self.fill = TF_FILL_MODE[fill]
        self.interpolation = INTERPOLATION.upper()
        self.stats = NORMALIZATION[normalization]

    def __call__(self, images, transforms=None):
        tf = self.tf
        x = tf.cast(images, tf.float32)[..., None]
        if transforms is not None:
            x = tf.raw_ops.ImageProjectiveTransformV3(
                images=x, transforms=transforms, output_shape=[self.size, self.size],
                fill_value=0.0, interpolation=self.interpolation, fill_mode=self.fill)
        x = tf.tile(x, [1, 1, 1, 3]) / 255.0
        if self.stats is not None:
            mean, std = self.stats
            x = (x - tf.constant(mean)) / tf.constant(std)
        return x


def transforms(batch, size: int) -> np.ndarray:
    """A batch's ``(n, 8)`` projective transforms (identity rows when not augmented: the
    compiled step takes one signature)."""
    if batch.augment is None:
        return np.zeros((len(batch.labels), 8), np.float32)
    return projective_transforms(batch.augment, size)


def make_loss(tf, n_classes: int, class_weights, loss: str, loss_options: dict[str, Any]):
    """Per-batch loss of ``harness.engine_api.LOSSES``: the mean over samples of
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


def check_backbone(build, image_size: int) -> str | None:
    """The keras backbone contract (``harness.BACKBONE_CONTRACT["keras"]``), or a problem."""
    import_tf("cpu")
    import keras

    model = build()
    if not isinstance(model, keras.layers.Layer):
        return f"its keras build returned {type(model).__name__}, not a keras Model"
    out = model(keras.Input((image_size, image_size, 3)))
    return feature_map_problem(tuple(out.shape), image_size, channels_last=True, batch="B")
