"""Accelerators' peak dense FLOP rates, to say how much of a GPU a training rate uses.

No library reports an accelerator's peak rate, so the figures are copied from the vendors'
datasheets (dense, without structured sparsity); fp32 is the TF32 tensor-core rate, which
torch (``allow_tf32``, set by the torch engine) and TensorFlow use for fp32 convolutions and
matrix products on these GPUs. Names are matched against the device name the engine reports.
"""

from __future__ import annotations

#: (substring of the device name, then of what must not be in it) -> TFLOP/s by precision.
PEAKS: list[tuple[str, str, dict[str, float]]] = [
    ("H100", "PCIe", {"bf16": 989.4, "fp16": 989.4, "fp32": 494.7}),  # H100 SXM5
    ("H100 PCIe", "", {"bf16": 756.5, "fp16": 756.5, "fp32": 378.0}),
    ("H200", "", {"bf16": 989.4, "fp16": 989.4, "fp32": 494.7}),
    ("A100", "", {"bf16": 312.0, "fp16": 312.0, "fp32": 156.0}),
]


def precision_key(precision: str) -> str:
    """An engine's precision in words (``bfloat16``, ``mixed_float16``, ``float32``) → key."""
    if "bfloat16" in precision or precision == "bf16":
        return "bf16"
    if "float16" in precision or precision == "fp16":
        return "fp16"
    return "fp32"


def peak_flops(device_name: str, precision: str) -> float | None:
    """FLOP/s at peak for this device and precision; ``None`` when the device is not listed."""
    key = precision_key(precision)
    for name, unless, peaks in PEAKS:
        if name in device_name and not (unless and unless in device_name):
            return peaks[key] * 1e12
    return None


def utilisation(forward_flops: float, images_per_s: float, peak: float,
                training: bool) -> float:
    """Model FLOPs utilisation: a training step costs 3 forward passes (forward, and the
    backward's two products per layer), an inference step one."""
    return (3 if training else 1) * forward_flops * images_per_s / peak
