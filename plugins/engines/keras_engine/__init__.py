"""The keras engine: the primitives of ``harness.engine_api`` in TensorFlow / Keras.

``keras.applications``, the paper's own framework. The core's loop (``harness.training.loop``)
runs phases, epochs, selection, checkpoints and history. ``model.py`` holds the primitives,
``ops.py`` the framework helpers (TensorFlow set-up, mixed precision, the network, device
batches with ``ImageProjectiveTransformV3`` augmentation, loss, optimizer, backbone contract),
``describe.py`` the bench/describe primitives. TensorFlow is imported on the first ``build``
or ``check_backbone`` call only.
"""

from __future__ import annotations

from harness import EngineSpec, hookimpl, lazy


@hookimpl
def register_engines(register):
    register(EngineSpec(
        name="keras", framework="tensorflow", libraries=("keras",), install="pip install 'cxr-harness[tf]'",
        description="TensorFlow / keras.applications (the paper's framework); "
                    "augmentation on the device, mixed precision on GPU",
        build=lazy(f"{__name__}.model:KerasModel"),
        check_backbone=lazy(f"{__name__}.ops:check_backbone")))
