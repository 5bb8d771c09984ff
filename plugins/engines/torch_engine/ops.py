"""The torch engine's framework helpers: device, precision, input batches, loss, optimizer,
the network and the backbone contract. ``model.py`` calls these; a minimal engine needs
none of the device-side augmentation, channels-last or autocast parts (see
``tests/minimal_engine.py``).
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from harness import HarnessError
from harness.engine_api import (
    INTERPOLATION,
    NORMALIZATION,
    PROB_FLOOR,
    TORCH_PADDING,
    EngineContext,
    check_loss,
    compute_dtype,
    feature_map_problem,
    optimizer_def,
)


def resolve_device(name: str) -> torch.device:
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


def set_reproducible(device: torch.device, threads: int, deterministic: bool) -> None:
    """A fixed thread count (results change with it) and, on request, deterministic kernels.

    ``deterministic``: torch's deterministic algorithms (an op without one raises rather than
    vary), cuDNN without autotuning, and cuBLAS's fixed workspace, which must be set before
    cuBLAS starts (this runs before the model touches the GPU).
    """
    if threads:
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # only settable before the first parallel work of the process
            pass
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic


#: channels-last everywhere: cuDNN's fastest layout, and faster on x86 CPUs too (oneDNN):
#: training ``tiny`` at 48 px on one thread of this project's 2-core CPU, 280-385 img/s
#: against 160-213 contiguous. ``harness bench`` times the layout the engine trains in.
MEMORY_FORMAT = torch.channels_last


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for ``training.precision`` on ``device`` (``None``: fp32)."""
    cuda = device.type == "cuda"
    name = compute_dtype(precision, cuda, bf16=not cuda or torch.cuda.is_bf16_supported())
    return None if name == "float32" else getattr(torch, name)


def device_batch(x_u8: torch.Tensor, device: torch.device, normalization: str = "unit",
                 theta=None, fill: str = "nearest") -> torch.Tensor:
    """uint8 ``(B, S, S)`` → float ``(B, 3, S, S)`` on ``device``, augmented when ``theta``."""
    x = x_u8.to(device, non_blocking=True).unsqueeze(1).float().div_(255.0)
    if theta is not None:
        theta = torch.as_tensor(theta, device=device)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode=INTERPOLATION,
                          padding_mode=TORCH_PADDING[fill], align_corners=False)
    x = x.expand(-1, 3, -1, -1)
    stats = NORMALIZATION[normalization]
    if stats is not None:
        mean, std = (torch.tensor(v, device=device).view(1, 3, 1, 1) for v in stats)
        x = (x - mean) / std
    return x.contiguous(memory_format=MEMORY_FORMAT)


def sample_losses(logits, targets, class_weights=None, loss: str = "cross_entropy",
                  gamma: float = 2.0, alpha=None):
    """Per-sample loss of ``harness.engine_api.LOSSES`` times the target's class weight.

    As Keras ``class_weight``, the batch loss is the plain mean of these (not divided by the
    sum of weights). Computed from log-softmax, floored at log(1e-7) as Keras clips.
    """
    check_loss(loss)
    logp = F.log_softmax(logits.float(), dim=1).gather(1, targets[:, None]).squeeze(1)
    logp = logp.clamp(min=math.log(PROB_FLOOR))
    nll = -logp
    if loss == "focal":
        nll = (1.0 - logp.exp()).clamp(min=0.0).pow(gamma) * nll
        if alpha is not None:
            nll = nll * alpha[targets]
    if class_weights is not None:
        nll = nll * class_weights[targets]
    return nll


def make_optimizer(params, training) -> torch.optim.Optimizer:
    """The table's optimizer (``harness.engine_api.optimizer_def``); weight decay is applied by the
    engine, decoupled, before each step (``model.py``)."""
    d = optimizer_def(training.optimizer)
    lr = training.lr
    if d.name == "nadam":
        return torch.optim.NAdam(params, lr=lr, betas=(d.beta1, d.beta2), eps=d.epsilon,
                                 momentum_decay=d.momentum_decay)
    if d.name in ("adam", "adamw"):
        return torch.optim.Adam(params, lr=lr, betas=(d.beta1, d.beta2), eps=d.epsilon)
    return torch.optim.SGD(params, lr=lr, momentum=d.momentum, nesterov=d.nesterov)


def build_network(ctx: EngineContext) -> nn.Module:
    """Backbone (from its ``torch`` builder) + the shared head, seeded by the run."""
    from harness_plugins.backbones.torch_heads import build_classifier

    torch.manual_seed(ctx.seed)
    t = ctx.training
    return build_classifier(ctx.build_backbone("torch"), t.head, ctx.n_classes,
                            ctx.image_size, dropout=t.dropout)


def check_backbone(build, image_size: int) -> str | None:
    """The torch backbone contract (``harness.BACKBONE_CONTRACT["torch"]``), or a problem.

    Built on the meta device (no memory, no compute) when the builder allows it, else on the
    CPU; one forward pass of a ``(1, 3, S, S)`` batch gives the feature-map shape.
    """
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
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
    return feature_map_problem(shape, image_size, channels_last=False, channels=channels)
