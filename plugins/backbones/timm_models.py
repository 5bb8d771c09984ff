"""Any timm model as a backbone: ``timm/<model>`` (``timm/resnet18``, ``timm/convnext_tiny``).

timm offers over a thousand models, so this plugin registers one :class:`harness.Family`
(prefix ``timm/``) instead of a spec per model; the registry asks it for a name when a
suite or a command uses one. The model is ``timm.create_model(name, pretrained=False,
num_classes=0, global_pool="")``: its ``forward_features`` is the feature map, its
``num_features`` the channels. torch engine only (``harness describe backbone timm/NAME``
shows shape and parameters).

Weights: ``none`` trains from scratch; ``imagenet`` loads timm's pretrained checkpoint from
the local cache only (Hugging Face hub cache, or torch hub), never downloading, and
otherwise fails naming the files it looked for; any other string is the path of a state
dict. The paper's own networks (``xception``, ``resnet50v2``) stay as they are.

Importing this module imports neither timm nor torch: ``harness list`` stays fast.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from harness import BackboneSpec, Family, hookimpl, suggest

PREFIX = "timm/"


def _timm():
    try:
        import timm
    except ImportError as exc:
        raise LookupError("timm backbones need timm and torch: "
                          "pip install 'cxr-harness[torch]'") from exc
    return timm


def build(model: str, image_size: int, weights: Any = "none", options: Any = None):
    """The timm model without pooling and classifier, as a feature extractor."""
    import timm
    from harness_plugins.backbones.torch_models import (
        _feature_module,
        load_imagenet,
        load_into,
        read_state_dict,
    )

    net = timm.create_model(model, pretrained=False, num_classes=0, global_pool="")
    module = _feature_module(net, int(net.num_features))
    if weights == "imagenet":
        load_imagenet(module, model, PREFIX + model)
    elif weights not in ("none", "", None):  # timm's keys, or the wrapper's ("net.")
        load_into(module.net, read_state_dict(weights), str(weights))
    return module


def builder(model: str):
    def build_timm(image_size: int, weights: Any = "none", options: Any = None):
        return build(model, image_size=image_size, weights=weights, options=options)

    build_timm.__doc__ = f"timm.create_model({model!r}) features (imported on first use)."
    return build_timm


def resolve(model: str) -> BackboneSpec:
    timm = _timm()
    if not timm.is_model(model):
        close = suggest(model, timm.list_models())
        hint = f" Did you mean {PREFIX}{close}?" if close else ""
        raise LookupError(f"timm {timm.__version__} has no model {model!r}.{hint} "
                          f"List them with: harness list backbones --timm 'PATTERN'")
    return BackboneSpec(
        name=PREFIX + model,
        description=f"timm {timm.__version__} {model}: forward_features, no pooling or "
                    "classifier (torch only)",
        builders={"torch": builder(model)},
    )


def members(pattern: str) -> list[str]:
    """timm's model names matching ``pattern`` (``*`` added at both ends when it has none)."""
    timm = _timm()
    if not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"
    return [m for m in timm.list_models() if fnmatch.fnmatchcase(m, pattern)]


@hookimpl
def register_backbones(register):
    register(Family(
        prefix=PREFIX,
        description="any timm model by name (timm/resnet18, timm/convnext_tiny); torch only",
        resolve=resolve,
        members=members,
    ))
