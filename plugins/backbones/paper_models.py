"""The paper's networks as backbones: Xception, ResNet50V2 and their concatenation.

Each name means the same network in both engines (``keras``: ``keras.applications``;
``torch``: timm blocks in the Keras layout); timm's own ResNet-v2 layout is offered
separately as ``resnetv2_50_timm``. Builders are lazy wrappers, so importing this module
(``harness list``) imports neither torch nor TensorFlow.

Weight sources (``harness describe backbone NAME``): ``imagenet`` is Keras's ImageNet
checkpoint in the keras engine (the authors' start) and timm's in the torch engine (another
training); ``keras-imagenet`` is Keras's in both (for torch converted by ``harness weights
convert-keras``). All of them expect inputs in [-1, 1] (``inception``: Keras
``preprocess_input`` mode "tf", timm's cfg mean = std = 0.5); the authors fed [0, 1]
(``unit``), which the paper suites state.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field, field_validator

from harness import BackboneSpec, Options, WeightSource, hookimpl, lazy

TORCH = "harness_plugins.backbones.torch_models"
KERAS = "harness_plugins.backbones.keras_models"

#: The paper's batch sizes: 30 for a single network, 20 for the concatenation.
PAPER_BATCH, PAPER_CONCAT_BATCH = 30, 20


#: The paper's concatenation.
PAPER_MEMBERS = ("xception", "resnet50v2")


class ConcatOptions(Options):
    members: list[str] = Field(default_factory=lambda: list(PAPER_MEMBERS),
                               description="backbones to concatenate (two or more)")

    @field_validator("members")
    @classmethod
    def _two_or_more(cls, value: list[str]) -> list[str]:
        if len(value) < 2:
            raise ValueError(f"expected two or more backbone names, got {value}")
        return value


#: The file names ``keras.applications`` gives the top-less ImageNet weights (in
#: ``$KERAS_HOME/models``, default ``~/.keras/models``).
KERAS_FILES = {
    "xception": "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "resnet50v2": "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
}
#: timm's checkpoint each torch build loads for ``imagenet`` (model.tag; its pretrained cfg).
TIMM_CHECKPOINTS = {"xception": "legacy_xception.tf_in1k",
                    "resnet50v2": "resnetv2_50.a1h_in1k",
                    "resnetv2_50_timm": "resnetv2_50.a1h_in1k"}
#: Folders of the files, by the rule the builders apply ($KERAS_HOME/models and
#: $HARNESS_WEIGHTS_DIR move them): ``--dry-run`` checks the files there.
KERAS_DIR = os.path.join(os.environ.get("KERAS_HOME") or "~/.keras", "models")
CONVERTED_DIR = os.environ.get("HARNESS_WEIGHTS_DIR") or "~/.cache/cxr-harness/weights"


def paper_sources(names: tuple[str, ...], keras: bool = True) -> tuple[WeightSource, ...]:
    """``imagenet``: Keras's checkpoint in keras (the authors' start), timm's in torch (local
    cache only); ``keras-imagenet``: Keras's in both (converted for torch)."""
    checkpoints = " + ".join(f"timm {TIMM_CHECKPOINTS[n]}" for n in names)
    timm = WeightSource("imagenet", f"{checkpoints} (other trainings than Keras's)",
                        "inception", engines=("torch",),
                        location="timm's local cache (Hugging Face hub cache or "
                                 "$TORCH_HOME/hub/checkpoints); never downloaded")
    if not keras:
        return (timm,)
    files = ", ".join(f"{KERAS_DIR}/{KERAS_FILES[n]}" for n in names)
    which = " + ".join(f"keras.applications {n}" for n in names)
    authors = f"Keras's ImageNet weights ({which}; the authors' start)"
    return (
        WeightSource("imagenet", authors, "inception", engines=("keras",), location=files),
        timm,
        WeightSource("keras-imagenet", authors, "inception", engines=("keras",),
                     location=files),
        WeightSource("keras-imagenet", f"Keras's ImageNet weights ({which}) converted by "
                     "`harness weights convert-keras`", "inception", engines=("torch",),
                     location=", ".join(f"{CONVERTED_DIR}/{n}-keras-imagenet.pt"
                                        for n in names)),
    )


def builders(function: str, engines: tuple[str, ...] = ("torch", "keras")) -> dict[str, Any]:
    modules = {"torch": TORCH, "keras": KERAS}
    return {engine: lazy(f"{modules[engine]}:{function}") for engine in engines}


#: The specs, by name (``keras_convert`` resolves weights with them too).
SPECS = {spec.name: spec for spec in (
    BackboneSpec(
        name="xception",
        description="Xception without its top (keras.applications / timm legacy_xception); "
                    "10x10x2048 at 300",
        builders=builders("build_xception"),
        weights=paper_sources(("xception",)),
        published_batch_size=PAPER_BATCH, bench_default=True,
    ),
    BackboneSpec(
        name="resnet50v2",
        description="ResNet50V2 without its top, Keras layout (stride in each stage's last "
                    "block) in both engines; 10x10x2048 at 300",
        builders=builders("build_resnet50v2"),
        weights=paper_sources(("resnet50v2",)),
        published_batch_size=PAPER_BATCH, bench_default=True,
    ),
    BackboneSpec(
        name="resnetv2_50_timm",
        description="timm's resnetv2_50 (stride in each stage's first block); torch only",
        builders=builders("build_resnetv2_50_timm", engines=("torch",)),
        weights=paper_sources(("resnetv2_50_timm",), keras=False),
    ),
    BackboneSpec(
        name="concat",
        description="Two or more backbones on one shared input, feature maps concatenated "
                    "on channels (the paper: xception + resnet50v2)",
        builders=builders("build_concat"),
        options=ConcatOptions,
        # Each member loads its own; declared for the default members.
        weights=paper_sources(PAPER_MEMBERS),
        published_batch_size=PAPER_CONCAT_BATCH, bench_default=True,
    ),
)}


@hookimpl
def register_backbones(register):
    for spec in SPECS.values():
        register(spec)
