"""The torch engine: the primitives of ``harness.training.engine`` in PyTorch.

The core's loop (``harness.training.loop``) runs phases, epochs, selection, checkpoints and
history. ``model.py`` holds the primitives (the reference for a new engine), ``ops.py`` the
framework helpers (device, autocast, device-side augmentation, channels-last, loss,
optimizer, network, backbone contract), ``describe.py`` the bench/describe primitives.
torch is imported on the first ``build`` or ``check_backbone`` call only.
"""

from __future__ import annotations

from harness import EngineSpec, hookimpl
from harness.training.engine import lazy


@hookimpl
def register_engines(register):
    register(EngineSpec(
        name="torch", framework="torch", install="pip install 'cxr-harness[torch]'",
        build=lazy(f"{__name__}.model:TorchModel"),
        check_backbone=lazy(f"{__name__}.ops:check_backbone"),
        description="PyTorch + timm; device augmentation, channels-last, bf16/fp16 autocast",
    ))
