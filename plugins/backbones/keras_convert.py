"""The Keras ImageNet weights of the paper's networks, converted for the torch builds.

The authors trained ``keras.applications`` Xception and ResNet50V2 from Keras's ImageNet
weights. timm's checkpoints are other trainings (``resnetv2_50`` another recipe with the
stride first), so the torch suite loads these conversions instead (``weights:
keras-imagenet``). ``harness weights convert-keras`` builds each Keras model from its local
``.h5`` file and writes a torch state dict per backbone; layers are matched by name, the
shortcut convolutions of Xception (unnamed in Keras) by order.

Layout: Keras kernels are ``(kh, kw, in, out)`` → torch ``(out, in, kh, kw)``; depthwise
kernels ``(kh, kw, in, 1)`` → ``(in, 1, kh, kw)``; BatchNorm gamma, beta, moving mean and
variance → weight, bias, running_mean, running_var.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
import numpy as np

from harness import RANDOM_WEIGHTS, HarnessError

NAMES = ("xception", "resnet50v2")
#: Where converted files go by default, and where ``weights: keras-imagenet`` looks.
WEIGHTS_ENV = "HARNESS_WEIGHTS_DIR"


def weights_dir() -> Path:
    default = Path.home() / ".cache" / "cxr-harness" / "weights"
    return Path(os.environ.get(WEIGHTS_ENV) or default)


def converted_file(name: str) -> Path:
    return weights_dir() / f"{name}-keras-imagenet.pt"


def _conv(kernel: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))


def _depthwise(kernel: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(kernel.transpose(2, 3, 0, 1))


def _bn(prefix: str, layer) -> dict[str, np.ndarray]:
    gamma, beta, mean, var = layer.get_weights()
    return {f"{prefix}.weight": gamma, f"{prefix}.bias": beta,
            f"{prefix}.running_mean": mean, f"{prefix}.running_var": var}


def _conv_layer(prefix: str, layer) -> dict[str, np.ndarray]:
    weights = layer.get_weights()
    out = {f"{prefix}.weight": _conv(weights[0])}
    if len(weights) > 1:
        out[f"{prefix}.bias"] = weights[1]
    return out


def _separable(prefix: str, layer) -> dict[str, np.ndarray]:
    depthwise, pointwise = layer.get_weights()[:2]
    return {f"{prefix}.conv1.weight": _depthwise(depthwise),
            f"{prefix}.pointwise.weight": _conv(pointwise)}


def xception_state(model) -> dict[str, np.ndarray]:
    """Keras ``Xception(include_top=False)`` → state dict of the torch ``xception`` build."""
    import torch
    from harness_plugins.backbones.torch_models import build_xception

    target = build_xception(32 * 3, RANDOM_WEIGHTS).net
    layers = {layer.name: layer for layer in model.layers}
    shortcut_convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"
                      and not layer.name.startswith("block")]
    shortcut_bns = [layer for layer in model.layers
                    if type(layer).__name__ == "BatchNormalization"
                    and not layer.name.startswith("block")]
    state = {**_conv_layer("conv1", layers["block1_conv1"]), **_bn("bn1", layers["block1_conv1_bn"]),
             **_conv_layer("conv2", layers["block1_conv2"]), **_bn("bn2", layers["block1_conv2_bn"]),
             **_separable("conv3", layers["block14_sepconv1"]),
             **_bn("bn3", layers["block14_sepconv1_bn"]),
             **_separable("conv4", layers["block14_sepconv2"]),
             **_bn("bn4", layers["block14_sepconv2_bn"])}
    shortcut = 0
    for k in range(1, 13):  # torch block k is Keras block k + 1
        block = getattr(target, f"block{k}")
        seps = [n for n, m in block.rep.named_children() if type(m).__name__ == "SeparableConv2d"]
        bns = [n for n, m in block.rep.named_children() if isinstance(m, torch.nn.BatchNorm2d)]
        for i, (sep, bn) in enumerate(zip(seps, bns), start=1):
            state.update(_separable(f"block{k}.rep.{sep}", layers[f"block{k + 1}_sepconv{i}"]))
            state.update(_bn(f"block{k}.rep.{bn}", layers[f"block{k + 1}_sepconv{i}_bn"]))
        if getattr(block, "skip", None) is not None:
            state.update(_conv_layer(f"block{k}.skip", shortcut_convs[shortcut]))
            state.update(_bn(f"block{k}.skipbn", shortcut_bns[shortcut]))
            shortcut += 1
    if shortcut != len(shortcut_convs):
        raise HarnessError(f"the Keras Xception has {len(shortcut_convs)} shortcut convolutions, "
                           f"the torch build {shortcut}; not the same network")
    return {f"net.{k}": v for k, v in state.items()}


def resnet50v2_state(model) -> dict[str, np.ndarray]:
    """Keras ``ResNet50V2(include_top=False)`` → state dict of the torch ``resnet50v2``."""
    layers = {layer.name: layer for layer in model.layers}
    state = {**_conv_layer("stem.conv", layers["conv1_conv"]), **_bn("norm", layers["post_bn"])}
    for s, blocks in enumerate((3, 4, 6, 3)):
        for b in range(blocks):
            keras, torch_ = f"conv{s + 2}_block{b + 1}", f"stages.{s}.blocks.{b}"
            state.update(_bn(f"{torch_}.norm1", layers[f"{keras}_preact_bn"]))
            state.update(_conv_layer(f"{torch_}.conv1", layers[f"{keras}_1_conv"]))
            state.update(_bn(f"{torch_}.norm2", layers[f"{keras}_1_bn"]))
            state.update(_conv_layer(f"{torch_}.conv2", layers[f"{keras}_2_conv"]))
            state.update(_bn(f"{torch_}.norm3", layers[f"{keras}_2_bn"]))
            state.update(_conv_layer(f"{torch_}.conv3", layers[f"{keras}_3_conv"]))
            if f"{keras}_0_conv" in layers:
                state.update(_conv_layer(f"{torch_}.downsample.conv", layers[f"{keras}_0_conv"]))
    return {f"net.{k}": v for k, v in state.items()}


CONVERTERS = {"xception": xception_state, "resnet50v2": resnet50v2_state}


def convert(name: str, model) -> dict[str, Any]:
    """A Keras model of backbone ``name`` → torch tensors for the torch build's wrapper."""
    import torch

    return {k: torch.from_numpy(np.asarray(v, dtype=np.float32).copy())
            for k, v in CONVERTERS[name](model).items()}


@click.group("weights")
def weights_group():
    """Convert pretrained weights between engines."""


@weights_group.command("convert-keras")
@click.option("--backbone", "names", multiple=True, type=click.Choice(NAMES),
              help="Backbone(s) to convert (default: both; concat uses both).")
@click.option("--h5", "h5_files", multiple=True, type=click.Path(dir_okay=False),
              help="The Keras .h5 file of each --backbone, in order (default: the Keras cache).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help=f"Folder for the .pt files (default: ${WEIGHTS_ENV} or "
                   "~/.cache/cxr-harness/weights, where 'weights: keras-imagenet' looks).")
def convert_keras_command(names, h5_files, out_dir):
    """Keras ImageNet weights (.h5) → torch state dicts for the torch xception, resnet50v2
    and concat (suites use them with `weights: keras-imagenet`). Nothing is downloaded."""
    import timm  # noqa: F401  (torch and timm before TensorFlow: the other order crashes)
    import torch
    from harness_plugins.backbones.keras_models import MEMBERS
    from harness_plugins.backbones.paper_models import SPECS

    names = list(names) or list(NAMES)
    if h5_files and len(h5_files) != len(names):
        raise HarnessError("--h5: give one file per --backbone, in the same order")
    out = Path(out_dir) if out_dir else weights_dir()
    out.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        weights = h5_files[i] if h5_files else "imagenet"
        source = SPECS[name].weights_for("keras", weights)
        model = MEMBERS[name](299 if name == "xception" else 224, source)
        state = convert(name, model)
        path = out / f"{name}-keras-imagenet.pt"
        torch.save(state, path)
        click.echo(f"{name}: {len(state)} tensors -> {path}")
