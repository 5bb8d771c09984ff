"""The ``tiny`` backbone: a few conv blocks that learn the synthetic data on a laptop CPU.

It exists so the whole flow (cache, phases, training, report) runs in minutes without a GPU;
it makes no claim about chest X-rays. Frameworks are imported inside the builders only.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, PositiveInt

from harness import RANDOM_WEIGHTS, BackboneSpec, HarnessError, Options, WeightSource, hookimpl

DEFAULT_CHANNELS = (16, 32, 64, 64)
#: BatchNorm settings of both builds (Keras convention: running = m * running + (1 - m) * batch).
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-3


class TinyOptions(Options):
    channels: list[PositiveInt] = Field(default_factory=lambda: list(DEFAULT_CHANNELS),
                                        min_length=1,
                                        description="output channels of each conv block")


def _channels(options: TinyOptions | None) -> list[int]:
    return list(TinyOptions.of(options).channels)


def _no_named(weights: WeightSource) -> None:
    """``tiny`` declares no named weights; the core refuses one, a direct call too."""
    if weights.kind == "named":
        raise HarnessError(f"backbone 'tiny' has no weights {weights.name!r}; use weights: "
                           "random or the path of saved weights")


def build_torch(image_size: int, weights: WeightSource = RANDOM_WEIGHTS,
                options: TinyOptions | None = None):
    """conv3×3-BN-ReLU-maxpool blocks; the feature map is ``S / 2**blocks`` on a side."""
    import torch
    from torch import nn

    layers: list[nn.Module] = []
    in_chs = 3
    for out_chs in _channels(options):
        # One BatchNorm in both builds: Keras's epsilon, and statistics that settle within
        # the few hundred steps of a demo (torch momentum 0.1 = Keras momentum 0.9).
        layers += [nn.Conv2d(in_chs, out_chs, 3, padding=1, bias=False),
                   nn.BatchNorm2d(out_chs, eps=BN_EPSILON, momentum=1.0 - BN_MOMENTUM),
                   nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        in_chs = out_chs
    model = nn.Sequential(*layers)
    model.out_channels = in_chs
    _no_named(weights)
    if weights.kind == "file":
        model.load_state_dict(torch.load(weights.path, map_location="cpu", weights_only=True))
    return model


def build_keras(image_size: int, weights: WeightSource = RANDOM_WEIGHTS,
                options: TinyOptions | None = None):
    """The same blocks in Keras (channels last)."""
    import keras

    layers: list[Any] = [keras.Input((image_size, image_size, 3))]
    for out_chs in _channels(options):
        layers += [keras.layers.Conv2D(out_chs, 3, padding="same", use_bias=False),
                   keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON),
                   keras.layers.ReLU(),
                   keras.layers.MaxPooling2D(2)]
    model = keras.Sequential(layers, name="tiny")
    _no_named(weights)
    if weights.kind == "file":
        model.load_weights(str(weights.path))
    return model


@hookimpl
def register_backbones(register):
    register(BackboneSpec(
        name="tiny",
        description="Four conv-BN-ReLU-pool blocks (16-64 channels) for CPU demos and tests",
        builders={"torch": build_torch, "keras": build_keras},
        options=TinyOptions,
    ))
