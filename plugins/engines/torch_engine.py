"""The torch engine: trains a backbone + head over a plan's phases and predicts the test split.

One code path for CPU and GPU: uint8 batches come from the memory-mapped cache (a thread
reads the next batch while the device works; pinned memory and non-blocking copies on CUDA),
and on the device they are scaled, augmented with the shared ``harness.training.augment`` matrices
(``affine_grid``/``grid_sample``), replicated to 3 channels and, on CUDA, laid out channels-last.
Model and optimizer state carry over between phases, as in the paper. After every epoch the
engine scores the selection split (``holdout``/``paper``), logs a history row and writes an
atomic checkpoint; a killed run resumes at its last finished epoch and, on the same device,
ends with the same predictions as an uninterrupted one (every epoch reseeds from the run
seed, phase and epoch).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness import EngineSpec, hookimpl
from harness.errors import HarnessError
from harness.plugin.check import build_backbone
from harness.progress import Bars
from harness.progress import is_enabled as progress_enabled
from harness.runs.job import Job, selection_score
from harness.runs.store import atomic_write
from harness.training import augment

LAST = "last.pt"
BEST_PATTERN = re.compile(r"best-p(\d+)-e(\d+)\.pt$")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Position:
    """Where training stands: the next (phase, epoch) to run, both 0-based."""

    phase: int = 0
    epoch: int = 0
    best_score: float = -math.inf
    best_file: str | None = None


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
    import torch

    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


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


def seed_for(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


# ---------------------------------------------------------------- data


def host_batches(images: np.ndarray, labels: np.ndarray, indices: np.ndarray, batch_size: int,
                 steps: int, pin: bool, prefetch: int = 2) -> Iterator[tuple[Any, Any]]:
    """``(uint8 images, int64 labels)`` CPU tensors, read ahead by a thread."""
    import torch

    def load(step: int):
        idx = indices[step * batch_size:(step + 1) * batch_size]
        x = torch.from_numpy(np.ascontiguousarray(images[idx]))
        y = torch.from_numpy(np.asarray(labels[idx], dtype=np.int64))
        return (x.pin_memory(), y.pin_memory()) if pin else (x, y)

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = [pool.submit(load, s) for s in range(min(prefetch, steps))]
        for step in range(steps):
            batch = pending.pop(0).result()
            if step + prefetch < steps:
                pending.append(pool.submit(load, step + prefetch))
            yield batch


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
    # channels_last feeds cuDNN's fastest kernels; on a CPU it slows small convolutions.
    return x.contiguous(memory_format=memory_format(device))


# ---------------------------------------------------------------- loss and optimizer


def sample_losses(logits, targets, class_weights=None, loss: str = "cross_entropy",
                  gamma: float = 2.0):
    """Per-sample loss: cross-entropy or focal, times the class weight of each target.

    As Keras ``class_weight``, the weights scale each sample's loss and the batch loss is
    the plain mean (not divided by the sum of weights).
    """
    import torch.nn.functional as F

    logp = F.log_softmax(logits.float(), dim=1)
    nll = -logp.gather(1, targets[:, None]).squeeze(1)
    if loss == "focal":
        nll = (1.0 - (-nll).exp()).clamp(min=0.0).pow(gamma) * nll
    elif loss != "cross_entropy":
        raise HarnessError(f"plan.loss {loss!r} is not known to the torch engine; "
                           "use cross_entropy or focal")
    if class_weights is not None:
        nll = nll * class_weights[targets]
    return nll


def make_optimizer(params, training):
    import torch

    kind, lr, wd = training.optimizer, training.lr, training.weight_decay
    if kind == "nadam":  # Keras epsilon
        return torch.optim.NAdam(params, lr=lr, eps=1e-7, weight_decay=wd)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, eps=1e-7, weight_decay=wd)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, eps=1e-7, weight_decay=wd)
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd)
    raise HarnessError(f"training.optimizer {kind!r} is not known; use nadam, adam, adamw or sgd")


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(path, payload: dict[str, Any]) -> None:
    import torch

    atomic_write(path, lambda fh: torch.save(payload, fh), mode="wb")


def load_checkpoint(path, device) -> dict[str, Any] | None:
    import torch

    if not path.exists():
        return None
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        raise HarnessError(f"checkpoint {path} cannot be read ({exc}); delete it to start "
                           "the run from the beginning") from exc


def _prune_best(folder, keep: str | None) -> None:
    for path in folder.glob("best-p*-e*.pt"):
        if path.name != keep:
            path.unlink(missing_ok=True)


# ---------------------------------------------------------------- prediction


def predict(model, job: Job, indices: np.ndarray, device, amp_dtype, batch_size: int
            ) -> np.ndarray:
    """Softmax probabilities ``(len(indices), C)`` in the order of ``indices``, no augmentation."""
    import torch

    out = np.zeros((len(indices), job.n_classes), dtype=np.float32)
    if len(indices) == 0:
        return out
    model.eval()
    steps = -(-len(indices) // batch_size)
    pin = device.type == "cuda"
    with torch.inference_mode():
        for step, (x, _) in enumerate(host_batches(job.images, job.labels, indices, batch_size,
                                                   steps, pin)):
            x = device_batch(x, device, job.training.normalization)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(x)
            probs = torch.softmax(logits.float(), dim=1)
            out[step * batch_size:step * batch_size + len(probs)] = probs.cpu().numpy()
    return out


# ---------------------------------------------------------------- training


def build_model(job: Job):
    """Backbone (from its ``torch`` builder) + the training's head, seeded by the run."""
    import torch
    from harness_plugins.backbones.torch_heads import build_classifier

    torch.manual_seed(job.run.seed)
    backbone = build_backbone(job.backbone, "torch", job.image_size, job.training.weights,
                              job.training.backbone_options)
    return build_classifier(backbone, job.training.head, job.n_classes, job.image_size)


def train(job: Job) -> np.ndarray:
    """Train over ``job.plan`` and return test probabilities in ``job.test`` order."""
    import torch

    t = job.training
    device = resolve_device(t.device)
    amp_dtype = autocast_dtype(device, t.precision)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    model = build_model(job).to(device).to(memory_format=memory_format(device))
    optimizer = make_optimizer(model.parameters(), t)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    runner = torch.compile(model) if t.compile else model
    class_weights = job.class_weights()
    cw = torch.as_tensor(class_weights, device=device) if class_weights is not None else None
    gamma = float(job.plan.loss_options.get("gamma", 2.0))
    select_each_epoch = t.selection in ("holdout", "paper") and len(job.select) > 0

    folder = job.checkpoint_dir
    pos = Position()
    ckpt = load_checkpoint(folder / LAST, device)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        pos = Position(**ckpt["position"])
        job.restore_history(ckpt["history"])
    _prune_best(folder, pos.best_file)

    phases = job.plan.phases
    pin = device.type == "cuda"
    bar = Bars(progress_enabled(True))
    try:
        phase_task = bar.task("phases", len(phases), completed=pos.phase)
        for phase in range(pos.phase, len(phases)):
            n_epochs = job.phase_epochs(phase)
            head_only = phases[phase].head_only
            for p in model.backbone.parameters():
                p.requires_grad_(not head_only)
            first = pos.epoch if phase == pos.phase else 0
            epoch_task = bar.task(f"phase {phase + 1}/{len(phases)} epochs", n_epochs, first)
            for epoch in range(first, n_epochs):
                row = _train_epoch(job, runner, model, optimizer, scaler, cw, gamma, device,
                                   amp_dtype, pin, phase, epoch, head_only, bar)
                if select_each_epoch:
                    probs = predict(runner, job, job.select, device, amp_dtype, t.batch_size * 2)
                    score = selection_score(job.labels[job.select], probs, t.selection_metric)
                    row["select_score"] = round(score, 6)
                    if score > pos.best_score:
                        pos.best_score = score
                        pos.best_file = f"best-p{phase + 1}-e{epoch + 1}.pt"
                        save_checkpoint(folder / pos.best_file, {"model": model.state_dict()})
                job.log_epoch(**row)
                pos.phase, pos.epoch = (phase, epoch + 1) if epoch + 1 < n_epochs else (phase + 1, 0)
                save_checkpoint(folder / LAST, {
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(), "position": vars(pos).copy(),
                    "history": list(job.history), "torch_rng": torch.get_rng_state(),
                })
                _prune_best(folder, pos.best_file)
                bar.update(epoch_task, advance=1)
            bar.update(phase_task, advance=1)
            bar.remove(epoch_task)  # finished phases fold into the phases bar
        for p in model.parameters():
            p.requires_grad_(True)
    finally:
        bar.close()

    if select_each_epoch and pos.best_file:
        best = load_checkpoint(folder / pos.best_file, device)
        model.load_state_dict(best["model"])
    return predict(runner, job, job.test, device, amp_dtype, t.batch_size * 2)


def _train_epoch(job, runner, model, optimizer, scaler, cw, gamma, device, amp_dtype, pin,
                 phase, epoch, head_only, bar) -> dict[str, Any]:
    import torch

    t = job.training
    torch.manual_seed(seed_for(job.run.seed, job.run.fold, phase, epoch))
    aug_rng = np.random.default_rng([job.run.seed, job.run.fold, phase, epoch, 7])
    indices = job.epoch_indices(phase, epoch)
    steps = job.steps(len(indices), t.batch_size)
    runner.train()
    if head_only:
        model.backbone.eval()  # frozen BN statistics, as Keras trainable=False
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    step_task = bar.task(f"phase {phase + 1} epoch {epoch + 1} steps", steps)
    start = time.perf_counter()
    for x, y in host_batches(job.images, job.labels, indices, t.batch_size, steps, pin,
                             prefetch=max(2, t.workers)):
        theta = None
        if t.augmentation.enabled:
            params = augment.sample_params(aug_rng, len(x), t.augmentation, job.image_size)
            theta = augment.affine_matrices(params, job.image_size)
        x = device_batch(x, device, t.normalization, theta, t.augmentation.fill)
        y = y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = runner(x)
        loss = sample_losses(logits, y, cw, job.plan.loss, gamma).mean()
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total_loss += loss.detach() * len(y)
        correct += (logits.detach().argmax(1) == y).sum()
        seen += len(y)
        bar.update(step_task, advance=1)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    bar.remove(step_task)
    return {
        "phase": phase + 1, "epoch": epoch + 1,
        "loss": round(float(total_loss) / max(seen, 1), 6),
        "train_acc": round(float(correct) / max(seen, 1), 6),
        "select_score": "",
        "images": seen,
        "seconds": round(seconds, 3),
        "images_per_s": round(seen / seconds, 2) if seconds > 0 else 0.0,
    }


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
        name="torch", framework="torch", train=train, check_backbone=check_backbone,
        description="PyTorch + timm; device augmentation, bf16/fp16 autocast, resumable "
                    "per-epoch checkpoints",
    ))
