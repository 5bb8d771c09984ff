"""The torch engine: the primitives of ``harness.engine_api`` in PyTorch.

The core's loop (``harness.training.loop``) runs phases, epochs, selection, checkpoints and
history. ``model.py`` holds the primitives (the reference for a new engine), ``ops.py`` the
framework helpers (device, autocast, device-side augmentation, channels-last, loss,
optimizer, network, backbone contract), ``describe.py`` the bench/describe primitives.
torch is imported on the first ``build`` or ``check_backbone`` call only.
"""

from __future__ import annotations

from harness import EngineSpec, hookimpl, lazy


@hookimpl
def register_engines(register):
    register(EngineSpec(
        name="torch", framework="torch", libraries=("timm",), install="pip install 'cxr-harness[torch]'",
        build=lazy(f"{__name__}.model:TorchModel"),
        check_backbone=lazy(f"{__name__}.ops:check_backbone"),
        description="PyTorch + timm; device augmentation, channels-last, bf16/fp16 autocast",
    ))
