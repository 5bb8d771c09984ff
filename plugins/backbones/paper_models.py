"""The paper's networks as backbones: Xception, ResNet50V2 and their concatenation.

Each name means the same network in both engines (``keras``: ``keras.applications``;
``torch``: timm blocks in the Keras layout); timm's own ResNet-v2 layout is offered
separately as ``resnetv2_50_timm``. Builders are lazy wrappers, so importing this module
(``harness list``) imports neither torch nor TensorFlow.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from harness import BackboneSpec, Options, hookimpl, lazy

TORCH = "harness_plugins.backbones.torch_models"
KERAS = "harness_plugins.backbones.keras_models"

#: The paper's batch sizes: 30 for a single network, 20 for the concatenation.
PAPER_BATCH, PAPER_CONCAT_BATCH = 30, 20


class ConcatOptions(Options):
    members: list[str] = Field(default_factory=lambda: ["xception", "resnet50v2"],
                               description="backbones to concatenate (two or more)")

    @field_validator("members")
    @classmethod
    def _two_or_more(cls, value: list[str]) -> list[str]:
        if len(value) < 2:
            raise ValueError(f"expected two or more backbone names, got {value}")
        return value


def builders(function: str, engines: tuple[str, ...] = ("torch", "keras")) -> dict[str, Any]:
    modules = {"torch": TORCH, "keras": KERAS}
    return {engine: lazy(f"{modules[engine]}:{function}") for engine in engines}


@hookimpl
def register_backbones(register):
    register(BackboneSpec(
        name="xception",
        description="Xception without its top (keras.applications / timm legacy_xception); "
                    "10x10x2048 at 300",
        builders=builders("build_xception"),
        published_batch_size=PAPER_BATCH, bench_default=True,
    ))
    register(BackboneSpec(
        name="resnet50v2",
        description="ResNet50V2 without its top, Keras layout (stride in each stage's last "
                    "block) in both engines; 10x10x2048 at 300",
        builders=builders("build_resnet50v2"),
        published_batch_size=PAPER_BATCH, bench_default=True,
    ))
    register(BackboneSpec(
        name="resnetv2_50_timm",
        description="timm's resnetv2_50 (stride in each stage's first block); torch only",
        builders=builders("build_resnetv2_50_timm", engines=("torch",)),
    ))
    register(BackboneSpec(
        name="concat",
        description="Two or more backbones on one shared input, feature maps concatenated "
                    "on channels (the paper: xception + resnet50v2)",
        builders=builders("build_concat"),
        options=ConcatOptions,
        published_batch_size=PAPER_CONCAT_BATCH, bench_default=True,
    ))
