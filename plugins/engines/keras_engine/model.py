"""The keras engine's primitives (``harness.engine_api.EngineModel``) over one model.

One compiled step per trainable part: grayscale→3 channels, augmentation and scaling on the
device (``ops.DeviceBatch``), then the update (XLA when ``training.compile``). ``Describe``
adds the optional bench/describe primitives.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from harness import engine_api as core
from harness.engine_api import Batch, EngineContext, EpochResult

from . import ops
from .describe import Describe


class KerasModel(Describe):
    def __init__(self, ctx: EngineContext):
        t = ctx.training
        tf = ops.import_tf(t.device, ctx.threads, t.deterministic)
        import keras

        self.tf, self.keras, self.ctx = tf, keras, ctx
        policy = ops.precision_policy(tf, t.precision)
        keras.mixed_precision.set_global_policy(policy)
        keras.utils.set_random_seed(int(ctx.seed))
        self.model, self.backbone = ops.build_model(
            ctx.backbone, ctx.image_size, ctx.n_classes, t.head, t.weights,
            ctx.backbone_options, t.dropout)
        optimizer = ops.make_optimizer(t)
        if policy == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(self.model.trainable_variables)
        self.optimizer = optimizer
        size = ctx.image_size
        self.prep = ops.DeviceBatch(tf, size, t.augmentation.fill, t.normalization)
        self.loss_fn = ops.make_loss(tf, ctx.n_classes, ctx.loss.class_weights, ctx.loss.name,
                                     {"gamma": ctx.loss.gamma, "alpha": ctx.loss.alpha})
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
        kernel, bias = core.classifier_init(seed, *layer.kernel.shape)
        layer.kernel.assign(kernel)
        layer.bias.assign(bias)

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
        step = self._step()
        self.reseed(seed)
        tally = core.Tally()
        for batch in batches:
            loss, hits = step(batch.images, batch.labels.astype(np.int32),
                              ops.transforms(batch, self.ctx.image_size),
                              self.tf.constant(batch.augment is not None))
            tally.add(loss, hits, len(batch.labels))
        return tally.result()

    def predict(self, batches: Iterable[np.ndarray]) -> np.ndarray:
        out = [self.predict_step(images).numpy() for images in batches]
        return core.stack_probabilities(out, self.ctx.n_classes)

    # ------------------------------------------------------------ state

    def get_weights(self) -> dict[str, np.ndarray]:
        return core.numbered(self.model.get_weights())

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        self.model.set_weights(core.in_order(weights, len(self.model.weights), "weights"))

    def get_state(self) -> dict[str, np.ndarray]:
        return core.pack_state(model=self.get_weights(),
                               optim=core.numbered(v.numpy() for v in self.optimizer.variables))

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.set_weights(core.unpack_state(state, "model"))
        values = core.in_order(core.unpack_state(state, "optim"),
                               len(self.optimizer.variables), "optimizer state")
        for var, value in zip(self.optimizer.variables, values):
            var.assign(value)
