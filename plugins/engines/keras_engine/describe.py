"""The keras engine's optional primitives for ``harness describe`` and ``harness bench``
(``harness.engine_api.Describable``), mixed into ``model.KerasModel``."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.engine_api import Batch, param_counts

from .ops import transforms


def counts(model) -> dict[str, int]:
    """Keras's own split of trainable and non-trainable weights."""
    return param_counts(sum(int(np.prod(v.shape)) for v in model.trainable_weights),
                        sum(int(np.prod(v.shape)) for v in model.non_trainable_weights))


class Describe:
    """Needs ``self.tf``, ``self.keras``, ``self.model``, ``self.backbone``, ``self.prep``,
    ``self.images_spec`` and ``self.ctx`` (``model.KerasModel`` has them)."""

    @property
    def device_name(self) -> str:
        """The GPU's name as the driver gives it (e.g. "NVIDIA H100 80GB HBM3"), else CPU."""
        gpus = self.tf.config.list_physical_devices("GPU")
        if not gpus:
            return "CPU"
        return self.tf.config.experimental.get_device_details(gpus[0]).get("device_name",
                                                                            "GPU")

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
        float(self._prepare(batch.images, transforms(batch, self.ctx.image_size)))

    def describe(self) -> dict[str, Any]:
        """Feature-map shape ``(H, W, C)`` and parameter counts."""
        return {"feature_shape": [int(d) for d in self.backbone.output.shape[1:]],
                "params": {"backbone": counts(self.backbone), "model": counts(self.model)}}
