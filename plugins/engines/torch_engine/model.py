"""The torch engine's primitives (``harness.engine_api.EngineModel``) over one model.

uint8 batches go to the device (pinned, non-blocking on CUDA), are scaled, augmented and laid
out channels-last there (``ops.device_batch``); steps run under autocast with decoupled
weight decay. ``Describe`` adds the optional bench/describe primitives.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from harness import engine_api as core
from harness.engine_api import Batch, EngineContext, EpochResult

from . import ops
from .describe import Describe


class TorchModel(Describe):
    def __init__(self, ctx: EngineContext):
        t = ctx.training
        self.ctx = ctx
        self.device = ops.resolve_device(t.device)
        ops.set_reproducible(self.device, ctx.threads, t.deterministic)
        self.amp = ops.autocast_dtype(self.device, t.precision)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.model = ops.build_network(ctx).to(self.device).to(memory_format=ops.MEMORY_FORMAT)
        self.optimizer = ops.make_optimizer(self.model.parameters(), t)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == torch.float16)
        self.runner = torch.compile(self.model) if t.compile else self.model
        loss = ctx.loss
        as_tensor = lambda v: None if v is None else torch.as_tensor(
            v, dtype=torch.float32, device=self.device)
        self.class_weights, self.alpha = as_tensor(loss.class_weights), as_tensor(loss.alpha)
        self.part = "all"
        self.pin = self.device.type == "cuda"

    @property
    def classifier(self) -> torch.nn.Linear:
        return self.model.head[-1]

    def set_trainable(self, part: str) -> None:
        self.part = part
        for p in self.model.parameters():
            p.requires_grad_(part == "all")
        trains = {"head": self.model.head, "classifier": self.classifier}.get(part)
        for p in trains.parameters() if trains is not None else ():
            p.requires_grad_(True)

    def reset_classifier(self, seed: int) -> None:
        layer = self.classifier
        kernel, bias = core.classifier_init(seed, layer.in_features, layer.out_features)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(kernel.T))
            layer.bias.copy_(torch.from_numpy(bias))

    def _input(self, images: np.ndarray, params=None) -> torch.Tensor:
        x = torch.from_numpy(images)
        if self.pin:
            x = x.pin_memory()
        theta = core.affine_matrices(params, self.ctx.image_size) if params else None
        t = self.ctx.training
        return ops.device_batch(x, self.device, t.normalization, theta, t.augmentation.fill)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
            return self.runner(x)

    def train_epoch(self, batches: Iterable[Batch], seed: int) -> EpochResult:
        torch.manual_seed(seed)
        self.runner.train()
        if self.part != "all":
            self.model.backbone.eval()  # frozen BN statistics, as Keras trainable=False
        t = self.ctx.training
        decay = 1.0 - t.lr * t.weight_decay
        params = [p for p in self.model.parameters() if p.requires_grad]
        tally = core.Tally()
        for batch in batches:
            x = self._input(batch.images, batch.augment)
            y = torch.from_numpy(batch.labels).to(self.device, non_blocking=True)
            logits = self._forward(x)
            loss = ops.sample_losses(logits, y, self.class_weights, self.ctx.loss.name,
                                     self.ctx.loss.gamma, self.alpha).mean()
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if decay != 1.0:  # decoupled weight decay (Keras semantics), before the update
                with torch.no_grad():
                    torch._foreach_mul_(params, decay)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            tally.add(loss.detach(), (logits.detach().argmax(1) == y).sum(), len(y))
        return tally.result()  # waits for the device once, at the end

    def predict(self, batches: Iterable[np.ndarray]) -> np.ndarray:
        self.runner.eval()
        out = []
        with torch.inference_mode():
            for images in batches:
                logits = self._forward(self._input(images))
                out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        return core.stack_probabilities(out, self.ctx.n_classes)

    # ------------------------------------------------------------ state

    @staticmethod
    def _host(value) -> np.ndarray:
        return value.detach().to("cpu", copy=True).numpy()

    def get_weights(self) -> dict[str, np.ndarray]:
        return {k: self._host(v) for k, v in self.model.state_dict().items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        state = {k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()}
        try:
            self.model.load_state_dict(state)
        except RuntimeError as exc:
            raise core.StateMismatch("weights", str(exc)) from exc

    def get_state(self) -> dict[str, np.ndarray]:
        slots = core.flatten(self.optimizer.state_dict()["state"],
                             lambda v: self._host(v) if hasattr(v, "detach") else np.asarray(v))
        scaler = {k: np.asarray(v) for k, v in self.scaler.state_dict().items()}
        return core.pack_state(model=self.get_weights(), optim=slots, scaler=scaler)

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.set_weights(core.unpack_state(state, "model"))
        saved = self.optimizer.state_dict()
        optim = core.unflatten(core.unpack_state(state, "optim"))
        saved["state"] = {int(i): {k: torch.from_numpy(np.array(v)) for k, v in slots.items()}
                          for i, slots in optim.items()}
        self.optimizer.load_state_dict(saved)
        scaler = {k: v.item() for k, v in core.unpack_state(state, "scaler").items()}
        if scaler and self.scaler.is_enabled():
            self.scaler.load_state_dict(scaler)
