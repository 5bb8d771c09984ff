"""The torch engine: the primitives of ``harness.training.engine`` in PyTorch.

The core's loop (``harness.training.loop``) runs phases, epochs, selection, checkpoints and
history; this module builds the model (backbone from its ``torch`` builder + the shared head),
runs optimizer steps over the batches it is handed and predicts. uint8 batches are moved to
the device (pinned, non-blocking on CUDA), scaled, augmented with the shared
``harness.training.augment`` matrices (``affine_grid``/``grid_sample``), replicated to 3
channels and laid out channels-last (faster on CUDA and on this project's CPUs: see
``memory_format``). Optimizers and losses follow ``harness.training.optim``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from harness import EngineSpec, hookimpl
from harness.errors import HarnessError
from harness.plugin.check import build_backbone
from harness.training import augment
from harness.training.engine import Batch, EngineContext, EpochResult
from harness.training.optim import optimizer_def

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ---------------------------------------------------------------- device helpers


def resolve_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise HarnessError(f"training.device: {name!r} is not a torch device ({exc})") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise HarnessError("training.device: cuda was asked for but torch sees no CUDA GPU; "
                           "use device: auto or cpu")
    return device


def memory_format(device):
    """channels-last everywhere: cuDNN's fastest layout, and faster on x86 CPUs too (oneDNN):
    training ``tiny`` at 48 px on one thread of this project's 2-core CPU, 280-385 img/s
    against 160-213 contiguous. ``harness bench`` times the layout the engine trains in."""
    import torch

    return torch.channels_last


def autocast_dtype(device, precision: str):
    """The autocast dtype for ``training.precision`` on ``device`` (``None``: fp32)."""
    import torch

    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "auto" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def device_batch(x_u8, device, normalization: str = "unit", theta=None, fill: str = "nearest"):
    """uint8 ``(B, S, S)`` → float ``(B, 3, S, S)`` on ``device``, augmented when ``theta``."""
    import torch
    import torch.nn.functional as F

    x = x_u8.to(device, non_blocking=True).unsqueeze(1).float().div_(255.0)
    if theta is not None:
        theta = torch.as_tensor(theta, device=device)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode=augment.INTERPOLATION,
                          padding_mode=augment.TORCH_PADDING[fill], align_corners=False)
    x = x.expand(-1, 3, -1, -1)
    if normalization == "imagenet":
        mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
        x = (x - mean) / std
    return x.contiguous(memory_format=memory_format(device))


# ---------------------------------------------------------------- loss and optimizer


def sample_losses(logits, targets, class_weights=None, loss: str = "cross_entropy",
                  gamma: float = 2.0, alpha=None):
    """Per-sample loss of ``harness.training.optim.LOSSES`` times the target's class weight.

    As Keras ``class_weight``, the batch loss is the plain mean of these (not divided by the
    sum of weights). Computed from log-softmax, floored at log(1e-7) as Keras clips.
    """
    import math

    import torch.nn.functional as F

    logp = F.log_softmax(logits.float(), dim=1).gather(1, targets[:, None]).squeeze(1)
    logp = logp.clamp(min=math.log(1e-7))
    nll = -logp
    if loss == "focal":
        nll = (1.0 - logp.exp()).clamp(min=0.0).pow(gamma) * nll
        if alpha is not None:
            nll = nll * alpha[targets]
    elif loss != "cross_entropy":
        raise HarnessError(f"plan.loss {loss!r} is not known to the torch engine; "
                           "use cross_entropy or focal")
    if class_weights is not None:
        nll = nll * class_weights[targets]
    return nll


def make_optimizer(params, training):
    """The table's optimizer (``harness.training.optim``); weight decay is applied by the
    engine, decoupled, before each step (``decay``)."""
    import torch

    d = optimizer_def(training.optimizer)
    lr = training.lr
    if d.name == "nadam":
        return torch.optim.NAdam(params, lr=lr, betas=(d.beta1, d.beta2), eps=d.epsilon,
                                 momentum_decay=d.momentum_decay)
    if d.name in ("adam", "adamw"):
        return torch.optim.Adam(params, lr=lr, betas=(d.beta1, d.beta2), eps=d.epsilon)
    return torch.optim.SGD(params, lr=lr, momentum=d.momentum, nesterov=d.nesterov)


# ---------------------------------------------------------------- the model


def build_network(ctx: EngineContext):
    """Backbone (from its ``torch`` builder) + the shared head, seeded by the run."""
    import torch
    from harness_plugins.backbones.torch_heads import build_classifier

    torch.manual_seed(ctx.seed)
    t = ctx.training
    backbone = build_backbone(ctx.backbone, "torch", ctx.image_size, t.weights,
                              ctx.backbone_options)
    return build_classifier(backbone, t.head, ctx.n_classes, ctx.image_size,
                            dropout=getattr(t, "dropout", 0.5))


class TorchModel:
    """The primitives (``harness.training.engine.EngineModel``) over one torch model."""

    def __init__(self, ctx: EngineContext):
        import torch

        t = ctx.training
        if ctx.threads:
            torch.set_num_threads(ctx.threads)
        self.torch = torch
        self.ctx = ctx
        self.device = resolve_device(t.device)
        self.amp = autocast_dtype(self.device, t.precision)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.format = memory_format(self.device)
        self.model = build_network(ctx).to(self.device).to(memory_format=self.format)
        self.optimizer = make_optimizer(self.model.parameters(), t)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == torch.float16)
        self.runner = torch.compile(self.model) if t.compile else self.model
        loss = ctx.loss
        self.class_weights = (torch.as_tensor(loss.class_weights, dtype=torch.float32,
                                              device=self.device)
                              if loss.class_weights is not None else None)
        self.alpha = (torch.as_tensor(loss.alpha, dtype=torch.float32, device=self.device)
                      if loss.alpha is not None else None)
        self.part = "all"
        self.pin = self.device.type == "cuda"

    @property
    def classifier(self):
        return self.model.head[-1]

    def set_trainable(self, part: str) -> None:
        self.part = part
        for p in self.model.parameters():
            p.requires_grad_(part == "all")
        if part == "head":
            for p in self.model.head.parameters():
                p.requires_grad_(True)
        elif part == "classifier":
            for p in self.classifier.parameters():
                p.requires_grad_(True)

    def reset_classifier(self, seed: int) -> None:
        torch = self.torch
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        layer = self.classifier
        with torch.no_grad():
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * 0.001)
            layer.bias.zero_()

    def _input(self, images: np.ndarray, params=None):
        x = self.torch.from_numpy(images)
        if self.pin:
            x = x.pin_memory()
        theta = augment.affine_matrices(params, self.ctx.image_size) if params else None
        t = self.ctx.training
        return device_batch(x, self.device, t.normalization, theta, t.augmentation.fill)

    def train_epoch(self, batches: Iterable[Batch], seed: int) -> EpochResult:
        torch = self.torch
        torch.manual_seed(seed)
        self.runner.train()
        if self.part != "all":
            self.model.backbone.eval()  # frozen BN statistics, as Keras trainable=False
        t = self.ctx.training
        decay = 1.0 - t.lr * t.weight_decay
        params = [p for p in self.model.parameters() if p.requires_grad]
        total = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        for batch in batches:
            x = self._input(batch.images, batch.augment)
            y = torch.from_numpy(batch.labels).to(self.device, non_blocking=True)
            with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
                logits = self.runner(x)
            loss = sample_losses(logits, y, self.class_weights, self.ctx.loss.name,
                                 self.ctx.loss.gamma, self.alpha).mean()
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if decay != 1.0:  # decoupled weight decay (Keras semantics), before the update
                with torch.no_grad():
                    torch._foreach_mul_(params, decay)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            total += loss.detach() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return EpochResult(float(total), int(correct), seen)

    def predict(self, batches: Iterable[np.ndarray]) -> np.ndarray:
        torch = self.torch
        self.runner.eval()
        out = []
        with torch.inference_mode():
            for images in batches:
                x = self._input(images)
                with torch.autocast(self.device.type, dtype=self.amp,
                                    enabled=self.amp is not None):
                    logits = self.runner(x)
                out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        if not out:
            return np.zeros((0, self.ctx.n_classes), np.float32)
        return np.concatenate(out).astype(np.float32)

    # ------------------------------------------------------------ bench and describe

    @property
    def device_name(self) -> str:
        if self.device.type == "cuda":
            return self.torch.cuda.get_device_name(self.device)
        return str(self.device)

    @property
    def precision(self) -> str:
        return str(self.amp).replace("torch.", "") if self.amp is not None else "float32"

    def prepare(self, batch: Batch) -> None:
        """The input pipeline alone: one augmented batch on the device, synchronised."""
        x = self._input(batch.images, batch.augment)
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)
        else:
            float(x[0, 0, 0, 0])

    def describe(self) -> dict[str, Any]:
        """Feature-map shape ``(H, W, C)`` and parameter counts; non-trainable counts are
        BatchNorm statistics (buffers), as Keras's "non-trainable params"."""
        torch = self.torch
        net = self.model.backbone
        was = net.training
        net.eval()
        with torch.no_grad():
            size = self.ctx.image_size
            c, h, w = net(torch.zeros(1, 3, size, size, device=self.device)).shape[1:]
        net.train(was)

        def counts(m) -> dict[str, int]:
            trainable = sum(p.numel() for p in m.parameters() if p.requires_grad)
            frozen = sum(p.numel() for p in m.parameters() if not p.requires_grad)
            frozen += sum(b.numel() for name, b in m.named_buffers()
                          if not name.endswith("num_batches_tracked"))
            return {"total": trainable + frozen, "trainable": trainable,
                    "non_trainable": frozen}

        return {"feature_shape": [int(h), int(w), int(c)],
                "params": {"backbone": counts(net), "model": counts(self.model)}}

    # ------------------------------------------------------------ state

    @staticmethod
    def _host(value) -> np.ndarray:
        return value.detach().to("cpu", copy=True).numpy()

    def get_weights(self) -> dict[str, np.ndarray]:
        return {k: self._host(v) for k, v in self.model.state_dict().items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        torch = self.torch
        state = {k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()}
        try:
            self.model.load_state_dict(state)
        except RuntimeError as exc:
            raise HarnessError(f"saved weights do not fit this model ({exc}); delete the run "
                               "folder's checkpoints to start the run again") from exc

    def get_state(self) -> dict[str, np.ndarray]:
        state = {f"model/{k}": v for k, v in self.get_weights().items()}
        for index, slots in self.optimizer.state_dict()["state"].items():
            for key, value in slots.items():
                value = (self._host(value) if hasattr(value, "detach")
                         else np.asarray(value))
                state[f"optim/{index}/{key}"] = value
        for key, value in self.scaler.state_dict().items():
            state[f"scaler/{key}"] = np.asarray(value)
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        torch = self.torch
        self.set_weights({k[6:]: v for k, v in state.items() if k.startswith("model/")})
        slots: dict[int, dict[str, Any]] = {}
        for key, value in state.items():
            if key.startswith("optim/"):
                _, index, name = key.split("/", 2)
                slots.setdefault(int(index), {})[name] = torch.from_numpy(np.array(value))
        saved = self.optimizer.state_dict()
        saved["state"] = slots
        self.optimizer.load_state_dict(saved)
        scaler = {k[7:]: v.item() for k, v in state.items() if k.startswith("scaler/")}
        if scaler and self.scaler.is_enabled():
            self.scaler.load_state_dict(scaler)


def build(ctx: EngineContext) -> TorchModel:
    return TorchModel(ctx)


def check_backbone(build, image_size: int) -> str | None:
    """The torch backbone contract (``harness.BACKBONE_CONTRACT["torch"]``), or a problem.

    Built on the meta device (no memory, no compute) when the builder allows it, else on the
    CPU; one forward pass of a ``(1, 3, S, S)`` batch gives the feature-map shape.
    """
    import torch
    from torch import nn

    try:
        with torch.device("meta"):
            model = build()
        device = "meta"
    except HarnessError:
        raise
    except Exception:  # noqa: BLE001 - some builders need real tensors: build on the CPU
        model, device = build(), "cpu"
    if not isinstance(model, nn.Module):
        return f"its torch build returned {type(model).__name__}, not a torch.nn.Module"
    channels = getattr(model, "out_channels", None)
    if not isinstance(channels, int) or isinstance(channels, bool):
        return ("the torch module has no integer attribute 'out_channels' (the number of "
                "channels of its feature map, which the classifier head is built on)")
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, image_size, image_size, device=device))
    if not isinstance(out, torch.Tensor) or out.ndim != 4:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        return (f"maps a (1, 3, {image_size}, {image_size}) batch to {shape}; expected a "
                "(1, C, H, W) feature map")
    if int(out.shape[1]) != channels:
        return (f"out_channels is {channels} but its feature map has {int(out.shape[1])} "
                "channels")
    return None


@hookimpl
def register_engines(register):
    register(EngineSpec(
        name="torch", framework="torch", build=build, check_backbone=check_backbone,
        description="PyTorch + timm; device augmentation, channels-last, bf16/fp16 autocast",
    ))
