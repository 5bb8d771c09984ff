"""The torch engine's optional primitives for ``harness describe`` and ``harness bench``
(``harness.engine_api.Describable``), mixed into ``model.TorchModel``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from harness.engine_api import Batch, param_counts


def counts(module: nn.Module) -> dict[str, int]:
    """Non-trainable counts are BatchNorm statistics (buffers), as Keras's "non-trainable
    params", plus frozen parameters."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
    frozen += sum(b.numel() for name, b in module.named_buffers()
                  if not name.endswith("num_batches_tracked"))
    return param_counts(trainable, frozen)


class Describe:
    """Needs ``self.model`` (``.backbone``, ``.head``), ``self.device``, ``self.amp``,
    ``self.ctx`` and ``self._input`` (``model.TorchModel`` has them)."""

    @property
    def device_name(self) -> str:
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return str(self.device)

    @property
    def precision(self) -> str:
        return str(self.amp).replace("torch.", "") if self.amp is not None else "float32"

    def prepare(self, batch: Batch) -> None:
        """The input pipeline alone: one augmented batch on the device, synchronised."""
        x = self._input(batch.images, batch.augment)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        else:
            float(x[0, 0, 0, 0])

    def describe(self) -> dict[str, Any]:
        """Feature-map shape ``(H, W, C)`` and parameter counts."""
        net = self.model.backbone
        was = net.training
        net.eval()
        with torch.no_grad():
            size = self.ctx.image_size
            c, h, w = net(torch.zeros(1, 3, size, size, device=self.device)).shape[1:]
        net.train(was)
        return {"feature_shape": [int(h), int(w), int(c)],
                "params": {"backbone": counts(net), "model": counts(self.model)}}

    def forward_flops(self) -> int:
        """FLOPs of one forward pass of one image (a multiply-add is 2), as counted by
        torch's ``FlopCounterMode``: convolutions and matrix products, what peak rates count."""
        from torch.utils.flop_counter import FlopCounterMode

        size = self.ctx.image_size
        was = self.model.training
        self.model.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            self.model(self._input(np.zeros((1, size, size), dtype=np.uint8)))
        self.model.train(was)
        return int(counter.get_total_flops())
