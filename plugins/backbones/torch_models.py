"""Torch builds (timm) of the paper's feature extractors: Xception, ResNet50V2, and concat.

Every builder has the signature ``build(image_size, weights, options) -> nn.Module``; the
module maps ``(B, 3, S, S)`` to a ``(B, C, H, W)`` feature map and exposes ``out_channels``.

``resnet50v2`` is the *Keras* network, so the name means the same thing in both engines:
Keras's ResNet50V2 puts each stage's stride in its last block (subsampling the shortcut with
a 1×1 max-pool), pads the stem pool with zeros, and gives the stem conv, every block's last
1×1 conv and every projection shortcut a bias. timm's ``resnetv2_50`` strides in the first
block (≈15.3 vs ≈13.1 GFLOP at 300×300); it stays available as ``resnetv2_50_timm``.
Both end with the post-activation BN + ReLU (Keras ``post_bn``). BatchNorm uses Keras's
epsilon and momentum (0.99, i.e. torch ``momentum=0.01``).

``xception`` is timm's ``legacy_xception`` with Keras's ``padding="same"`` max-pools: on an
even-sized map Keras pads only after (right and bottom), torch's ``padding=1`` both sides,
which shifts every pooling window by one pixel (at 300×300: blocks 3 and 4).

Weights (declared in ``paper_models.py``; a builder receives the resolved ``WeightSource``):
``random`` trains from scratch; ``keras-imagenet`` loads the authors' weights, Keras's
ImageNet ``.h5`` files converted by ``harness weights convert-keras`` (see
``keras_convert.py``); ``imagenet`` loads timm's checkpoint from the local cache only (never
downloads: other trainings of these networks) and otherwise fails naming the files it looked
for; a ``file`` source is a state dict (``.pt``/``.pth``/``.safetensors``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness import RANDOM_WEIGHTS, HarnessError, WeightSource

#: Keras BatchNormalization epsilon of each application model.
KERAS_BN_EPS = {"xception": 1e-3, "resnet50v2": 1.001e-5}
#: timm model each backbone takes its blocks (and ImageNet weights) from.
TIMM_NAMES = {"xception": "legacy_xception", "resnet50v2": "resnetv2_50",
              "resnetv2_50_timm": "resnetv2_50"}


def _feature_module(model, out_channels: int):
    from torch import nn

    class TimmFeatures(nn.Module):
        """A timm model whose forward is ``forward_features`` (no pooling, no classifier)."""

        def __init__(self, net: nn.Module):
            super().__init__()
            self.net = net
            self.out_channels = out_channels

        def forward(self, x):
            return self.net.forward_features(x)

    return TimmFeatures(model)


def _keras_batchnorm(model, eps: float) -> None:
    from torch import nn

    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eps, m.momentum = eps, 0.01


# ---------------------------------------------------------------- weights


def hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    return home / "hub"


def imagenet_candidates(timm_name: str) -> list[Path]:
    """Where timm keeps the ImageNet checkpoint of ``timm_name`` (HF hub cache, torch hub)."""
    import timm

    cfg = timm.models.get_pretrained_cfg(timm_name)
    found: list[Path] = []
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if hub_id:
        repo = hf_cache_dir() / ("models--" + hub_id.replace("/", "--"))
        snapshots = sorted((repo / "snapshots").glob("*")) if (repo / "snapshots").is_dir() else []
        for name in ("model.safetensors", "pytorch_model.bin"):
            found += [s / name for s in snapshots] or [repo / "snapshots" / "<revision>" / name]
    url = getattr(cfg, "url", None) if cfg is not None else None
    if url:
        import torch

        found.append(Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1])
    return found


def read_state_dict(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"weights file {path} does not exist; give weights: none, "
                           "weights: imagenet, or the path of a saved state dict")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return state


def load_imagenet(module, timm_name: str, what: str, allowed_missing: set[str] = frozenset()):
    """Load timm's ImageNet weights for ``timm_name`` into ``module.net`` from the cache."""
    candidates = imagenet_candidates(timm_name)
    existing = [p for p in candidates if p.is_file()]
    if not existing:
        looked = "\n  ".join(str(p) for p in candidates)
        raise HarnessError(
            f"ImageNet weights for backbone {what!r} (timm {timm_name!r}) are not in the local "
            f"cache; looked for:\n  {looked}\nDownload them once on a machine with network "
            f"(python -c \"import timm; timm.create_model('{timm_name}', pretrained=True)\") "
            "and copy the cache folder, or set weights to a file path, or weights: none.")
    state = read_state_dict(existing[0])
    load_into(module.net, state, str(existing[0]), allowed_missing)


def load_into(net, state: Mapping[str, Any], source: str, allowed_missing: set[str] = frozenset()
              ) -> None:
    """Load a state dict, ignoring classifier keys; any other mismatch is an error."""
    head = ("fc.", "head.", "classifier.", "last_linear.")
    state = {k: v for k, v in state.items() if not k.startswith(head)}
    own = set(net.state_dict())
    if state and not (set(state) & own):
        # A file saved from the wrapper itself carries a "net." prefix.
        state = {k.removeprefix("net."): v for k, v in state.items()}
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if k not in allowed_missing and "num_batches_tracked" not in k]
    if missing or unexpected:
        raise HarnessError(f"weights {source} do not fit the backbone: missing {missing[:5]} "
                           f"({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)})")


def load_keras_imagenet(module, name: str) -> None:
    from .keras_convert import converted_file

    path = converted_file(name)
    if not path.is_file():
        raise HarnessError(f"Keras ImageNet weights of {name!r} for torch are not at {path}; "
                           "convert them once with `harness weights convert-keras` (reads the "
                           "Keras .h5 files from ~/.keras/models/, downloads nothing)")
    load_into(module, read_state_dict(path), str(path))


def _apply_weights(module, name: str, weights: WeightSource,
                   allowed_missing: set[str] = frozenset()):
    if weights.kind == "random":
        return module
    if weights.kind == "file":
        load_into(module, read_state_dict(weights.path), weights.location)
    elif weights.name == "keras-imagenet":
        load_keras_imagenet(module, name)
    elif weights.name == "imagenet":
        load_imagenet(module, TIMM_NAMES[name], name, allowed_missing)
    else:
        raise HarnessError(f"backbone {name!r} cannot load weights {weights.name!r}")
    return module


# ---------------------------------------------------------------- models


def build_xception(image_size: int, weights: WeightSource = RANDOM_WEIGHTS, options: Mapping[str, Any] | None = None):
    """timm ``legacy_xception`` (the Keras Xception graph), features before pooling."""
    import timm
    from torch import nn

    net = timm.create_model("legacy_xception", pretrained=False, num_classes=0)
    for block in [m for m in net.modules() if isinstance(m, nn.Sequential)]:
        for i, layer in enumerate(block):
            if isinstance(layer, nn.MaxPool2d):
                block[i] = _keras_same_max_pool(layer.kernel_size, layer.stride)
    _keras_batchnorm(net, KERAS_BN_EPS["xception"])
    return _apply_weights(_feature_module(net, 2048), "xception", weights)


def _pool_to(f, h: int, w: int):
    """Average-pool a feature map to ``h × w``: ``avg_pool2d`` when the sizes divide (its
    GPU backward pass is deterministic, ``adaptive_avg_pool2d``'s is not), else adaptive."""
    import torch.nn.functional as F

    fh, fw = f.shape[-2:]
    if fh % h == 0 and fw % w == 0:
        return F.avg_pool2d(f, (fh // h, fw // w))
    return F.adaptive_avg_pool2d(f, (h, w))


def _keras_same_max_pool(kernel: int, stride: int):
    """Keras ``MaxPooling2D(padding="same")``: the padding (-inf) goes after when it is odd."""
    import torch
    from torch import nn

    class KerasSameMaxPool(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            pads = []
            for size in (x.shape[-1], x.shape[-2]):  # F.pad wants the last dimension first
                total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
                pads += [total // 2, total - total // 2]
            x = nn.functional.pad(x, pads, value=float("-inf"))
            return nn.functional.max_pool2d(x, kernel, stride)

    return KerasSameMaxPool()


def build_resnetv2_50_timm(image_size: int, weights: WeightSource = RANDOM_WEIGHTS,
                           options: Mapping[str, Any] | None = None):
    """timm's own ``resnetv2_50`` (stride in each stage's first block)."""
    import timm

    net = timm.create_model("resnetv2_50", pretrained=False, num_classes=0)
    return _apply_weights(_feature_module(net, 2048), "resnetv2_50_timm", weights)


def _stride_last_block_class():
    import torch
    from timm.models.resnetv2 import PreActBottleneck

    class StrideLastBottleneck(PreActBottleneck):
        """Keras ``block2`` with a stride: 3×3 conv strided, shortcut = 1×1 max-pool of the input."""

        def __init__(self, *args, stride: int = 2, **kwargs):
            super().__init__(*args, stride=stride, **kwargs)
            self.stride = stride

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            shortcut = x[:, :, ::self.stride, ::self.stride]
            x = self.conv1(self.norm1(x))
            x = self.conv2(self.norm2(x))
            x = self.conv3(self.norm3(x))
            return self.drop_path(x) + shortcut

    return StrideLastBottleneck


def _with_bias(conv):
    """Return a copy of a bias-free ``nn.Conv2d`` with a zero bias (Keras ``use_bias=True``)."""
    import torch
    from torch import nn

    new = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                    conv.padding, conv.dilation, conv.groups, bias=True)
    with torch.no_grad():
        new.weight.copy_(conv.weight)
        new.bias.zero_()
    return new


def build_resnet50v2(image_size: int, weights: WeightSource = RANDOM_WEIGHTS, options: Mapping[str, Any] | None = None):
    """Keras ``ResNet50V2(include_top=False)`` built from timm's pre-activation blocks.

    Parameter names stay timm's, so timm's ``resnetv2_50`` ImageNet weights load (the added
    Keras biases start at zero); note those weights were trained with the stride first.
    """
    import timm
    from timm.layers import BatchNormAct2d, create_conv2d
    from torch import nn

    net = timm.create_model("resnetv2_50", pretrained=False, num_classes=0)
    block_cls = _stride_last_block_class()
    # Keras: ZeroPadding2D(1) then MaxPooling2D(3, 2) after the (biased) 7×7 stem conv.
    net.stem.conv = _with_bias(net.stem.conv)
    net.stem.pool = nn.Sequential(nn.ConstantPad2d(1, 0.0), nn.MaxPool2d(3, stride=2))
    n_stages = len(net.stages)
    for i, stage in enumerate(net.stages):
        first, last_index = stage.blocks[0], len(stage.blocks) - 1
        first.conv2.stride = (1, 1)
        if first.downsample is not None:
            first.downsample.conv = _with_bias(first.downsample.conv)
            first.downsample.conv.stride = (1, 1)
        if i < n_stages - 1:  # Keras: stride 2 in the last block of conv2..conv4, none in conv5
            old = stage.blocks[last_index]
            new = block_cls(old.conv1.in_channels, old.conv3.out_channels, stride=2,
                            conv_layer=create_conv2d, norm_layer=BatchNormAct2d)
            new.load_state_dict(old.state_dict())
            stage.blocks[last_index] = new
        for block in stage.blocks:
            block.conv3 = _with_bias(block.conv3)
    _keras_batchnorm(net, KERAS_BN_EPS["resnet50v2"])
    module = _feature_module(net, 2048)
    added = {k for k in module.net.state_dict() if k.endswith(".bias") and
             (".conv3." in k or "downsample.conv" in k or k == "stem.conv.bias")}
    return _apply_weights(module, "resnet50v2", weights, allowed_missing=added)


BUILDERS = {
    "xception": build_xception,
    "resnet50v2": build_resnet50v2,
    "resnetv2_50_timm": build_resnetv2_50_timm,
}


def build_concat(image_size: int, weights: WeightSource = RANDOM_WEIGHTS, options: Mapping[str, Any] | None = None):
    """Two or more backbones on one input; feature maps concatenated on channels.

    ``options.members`` names them (default xception + resnet50v2). When their spatial
    sizes differ, each map is average-pooled to the smallest. ``weights: imagenet`` loads
    each member's own (the same source name); a file a state dict saved from this module.
    """
    import torch
    from torch import nn

    from .paper_models import ConcatOptions

    members = list(ConcatOptions.of(options).members)
    unknown = [m for m in members if m not in BUILDERS]
    if len(members) < 2 or unknown:
        raise HarnessError(f"concat: options.members must name two or more of "
                           f"{sorted(BUILDERS)}; got {members}")

    class Concat(nn.Module):
        def __init__(self):
            super().__init__()
            member_weights = weights if weights.kind == "named" else RANDOM_WEIGHTS
            self.members = nn.ModuleDict(
                {m: BUILDERS[m](image_size, member_weights, None) for m in members})
            self.out_channels = sum(m.out_channels for m in self.members.values())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            maps = [m(x) for m in self.members.values()]
            h = min(f.shape[-2] for f in maps)
            w = min(f.shape[-1] for f in maps)
            maps = [f if f.shape[-2:] == (h, w) else _pool_to(f, h, w) for f in maps]
            return torch.cat(maps, dim=1)

    module = Concat()
    if weights.kind == "file":
        state = read_state_dict(weights.path)
        missing, unexpected = module.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise HarnessError(f"weights {weights.location} do not fit concat({', '.join(members)}): "
                               f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    return module


def describe(model, image_size: int) -> dict[str, Any]:
    """Feature-map shape for one ``image_size`` image and the parameter counts."""
    import torch

    was_training = model.training
    model.eval()
    with torch.no_grad():
        shape = tuple(model(torch.zeros(1, 3, image_size, image_size)).shape[1:])
    model.train(was_training)
    params = list(model.parameters())
    return {
        "feature_shape": shape,
        "params_total": sum(p.numel() for p in params),
        "params_trainable": sum(p.numel() for p in params if p.requires_grad),
        "buffers": sum(b.numel() for name, b in model.named_buffers()
                       if not name.endswith("num_batches_tracked")),
    }
