"""Any timm model as a backbone: ``timm/<model>`` (``timm/resnet18``, ``timm/convnext_tiny``).

timm offers over a thousand models, so this plugin registers one :class:`harness.Family`
(prefix ``timm/``) instead of a spec per model; the registry asks it for a name when a
suite or a command uses one. The model is ``timm.create_model(name, pretrained=False,
num_classes=0, global_pool="")``: its ``forward_features`` is the feature map, its
``num_features`` the channels. torch engine only (``harness describe backbone timm/NAME``
shows shape and parameters).

Weights: ``random`` trains from scratch; ``imagenet`` is timm's default pretrained
checkpoint of the model, declared from its ``pretrained_cfg`` (tag, hub id, and the
``mean``/``std`` it was trained with, as the ``normalization`` it expects), loaded from the
local cache only (Hugging Face hub cache, or torch hub), never downloading, and otherwise
failing with the files it looked for; a file is a state dict. The paper's own networks
(``xception``, ``resnet50v2``) stay as they are.

Importing this module imports neither timm nor torch: ``harness list`` stays fast.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from harness import RANDOM_WEIGHTS, BackboneSpec, Family, WeightSource, hookimpl, suggest
from harness.engine_api import NORMALIZATION

PREFIX = "timm/"


def _timm():
    try:
        import timm
    except ImportError as exc:
        raise LookupError("timm backbones need timm and torch: "
                          "pip install 'cxr-harness[torch]'") from exc
    return timm


def build(model: str, image_size: int, weights: WeightSource = RANDOM_WEIGHTS,
          options: Any = None):
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
    if weights.kind == "named":
        load_imagenet(module, model, PREFIX + model)
    elif weights.kind == "file":  # timm's keys, or the wrapper's ("net.")
        load_into(module.net, read_state_dict(weights.path), weights.location)
    return module


def builder(model: str):
    def build_timm(image_size: int, weights: WeightSource = RANDOM_WEIGHTS,
                   options: Any = None):
        return build(model, image_size=image_size, weights=weights, options=options)

    build_timm.__doc__ = f"timm.create_model({model!r}) features (imported on first use)."
    return build_timm


def normalization_of(mean, std) -> str | None:
    """The ``training.normalization`` whose statistics are ``mean``/``std`` (timm's cfg),
    or ``None`` when none is (CLIP's, for one): ``normalization: auto`` is then refused."""
    for name, stats in NORMALIZATION.items():
        want = stats or ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
        if all(abs(a - b) < 1e-3 for a, b in zip((*mean, *std), (*want[0], *want[1]))):
            return name
    return None


def pretrained_sources(timm, model: str) -> tuple[WeightSource, ...]:
    """``imagenet``: timm's default pretrained checkpoint of ``model``, as its cfg says."""
    cfg = timm.models.get_pretrained_cfg(model)
    where = (getattr(cfg, "hf_hub_id", None) or getattr(cfg, "url", None)) if cfg else None
    if not where:
        return ()
    mean, std = tuple(cfg.mean), tuple(cfg.std)
    tag = f"{model}.{cfg.tag}" if getattr(cfg, "tag", None) else model
    hub = (f"Hugging Face hub cache ({cfg.hf_hub_id})" if cfg.hf_hub_id
           else f"$TORCH_HOME/hub/checkpoints/{cfg.url.rsplit('/', 1)[-1]}")
    return (WeightSource("imagenet", f"timm {tag} pretrained weights (mean {mean}, std {std})",
                         normalization_of(mean, std), engines=("torch",),
                         location=f"{hub}; never downloaded"),)


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
        weights=pretrained_sources(timm, model),
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
