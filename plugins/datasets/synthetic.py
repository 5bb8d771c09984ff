"""A built-in, deterministic, CXR-like dataset: the whole flow without downloading anything.

Each image is drawn from ``(seed, index)`` alone, so the dataset needs no files and is the
same on every machine. The drawing is crude but has the structure a classifier must find:
two dark lung fields inside a brighter thorax, a spine, ribs and noise; ``pneumonia`` adds
one to three focal dense opacities in one lung; ``covid19`` adds bilateral, peripheral,
lower-zone hazy opacities; ``normal`` lungs are clear.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
from pydantic import Field

from harness import ClassName, DatasetContext, DatasetSpec, HarnessError, Options, hookimpl

DEFAULT_PROPORTIONS = {"normal": 0.60, "pneumonia": 0.37, "covid19": 0.03}
NATIVE_SIZE = 128


class SyntheticOptions(Options):
    n: int = Field(600, ge=1, description="number of images")
    seed: int = Field(0, description="seed of the drawing")
    images_per_patient: int = Field(2, ge=1, description="images per synthetic patient")
    proportions: dict[ClassName, float] = Field(
        default_factory=lambda: dict(DEFAULT_PROPORTIONS), validate_default=True,
        description="class proportions (class name: weight); the default names the three "
        "default classes, so a suite with other classes sets it")


def _proportions(options: SyntheticOptions, context: DatasetContext) -> dict[str, float]:
    proportions = dict(options.proportions)
    unknown = set(proportions) - set(context.classes)
    if unknown:
        raise HarnessError(f"synthetic: option 'proportions' names classes {sorted(unknown)} "
                           f"that the suite does not have ({list(context.classes)})")
    return proportions


def records(options: SyntheticOptions, context: DatasetContext) -> pd.DataFrame:
    """Labels drawn once from the proportions; patients own consecutive images of one class."""
    n, seed, per_patient = options.n, options.seed, options.images_per_patient
    proportions = _proportions(options, context)
    names = list(proportions)
    counts = np.floor(np.array([proportions[c] for c in names]) / sum(proportions.values()) * n)
    counts = counts.astype(int)
    counts[0] += n - counts.sum()
    labels = np.repeat(np.arange(len(names)), counts)
    rows = []
    patient = 0
    for c in range(len(names)):
        idx = np.flatnonzero(labels == c)
        for start in range(0, len(idx), per_patient):
            for i in idx[start:start + per_patient]:
                rows.append({"uid": f"synthetic/{seed}/{i:06d}", "path": f"synthetic://{seed}/{i}",
                             "label": names[c], "patient_id": f"synthetic-p{patient:05d}",
                             "source": "synthetic", "view": "PA", "index": int(i),
                             "seed": seed})
            patient += 1
    frame = pd.DataFrame(rows).sort_values("index", kind="stable").reset_index(drop=True)
    frame.attrs["exclusions"] = {}
    return frame


def _ellipse(yy, xx, cy, cx, ry, rx) -> np.ndarray:
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2


def draw(index: int, label: str, seed: int, size: int = NATIVE_SIZE) -> np.ndarray:
    """Draw one image; the same (index, label, seed) always gives the same pixels."""
    rng = np.random.default_rng([seed, index, 7919])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.full((size, size), 0.08, np.float32)
    img += 0.55 * np.clip(1.2 - _ellipse(yy, xx, 0.55, 0.5, 0.48, 0.42), 0, 1) ** 0.5  # thorax
    dy, dx = rng.normal(0, 0.02, 2)
    lung_rx, lung_ry = 0.15 + rng.normal(0, 0.01), 0.30 + rng.normal(0, 0.015)
    lungs = []
    for side in (-1, 1):
        cx, cy = 0.5 + side * 0.2 + dx, 0.52 + dy
        d = _ellipse(yy, xx, cy, cx, lung_ry, lung_rx)
        lungs.append((cx, cy, d))
        img -= 0.38 * np.clip(1.0 - d, 0, 1) ** 0.35
    img += 0.25 * np.exp(-((xx - 0.5 - dx) / 0.035) ** 2)  # spine
    ribs = 0.05 * (np.sin((yy + 0.03 * np.cos(xx * 6)) * 60) > 0.6)
    img += ribs * (lungs[0][2] < 1) + ribs * (lungs[1][2] < 1)
    if label == "pneumonia":
        cx, cy, d = lungs[rng.integers(2)]
        for _ in range(rng.integers(1, 4)):
            oy = cy + rng.uniform(-0.15, 0.2)
            ox = cx + rng.uniform(-0.06, 0.06)
            r = rng.uniform(0.04, 0.08)
            img += 0.45 * np.exp(-(((yy - oy) ** 2 + (xx - ox) ** 2) / (2 * r * r))) * (d < 1.1)
    elif label == "covid19":
        for side, (cx, cy, d) in zip((-1, 1), lungs):
            periphery = np.clip((np.abs(xx - 0.5) - 0.12) / 0.2, 0, 1)
            lower = np.clip((yy - cy + 0.05) / 0.3, 0, 1)
            haze = 0.40 * periphery * lower * (d < 1.0)
            img += haze * (0.8 + 0.4 * rng.random())
    img *= rng.uniform(0.85, 1.15)
    img += rng.normal(0, 0.035, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def read_image(record, options: SyntheticOptions, context: DatasetContext) -> np.ndarray:
    return draw(int(record["index"]), str(record["label"]), int(record["seed"]))


def fingerprint(options: SyntheticOptions, context: DatasetContext) -> str:
    proportions = _proportions(options, context)
    text = (f"v1 {options.n} {options.seed} {options.images_per_patient} "
            f"{sorted(proportions.items())}")
    return hashlib.sha1(text.encode()).hexdigest()[:12]


@hookimpl
def register_datasets(register):
    register(DatasetSpec(
        name="synthetic",
        description="Deterministic CXR-like images (normal / focal pneumonia / bilateral "
                    "peripheral covid19), made from a seed; no files needed",
        records=records,
        read_image=read_image,
        fingerprint=fingerprint,
        distinct_images=True,  # generated pictures of one class look alike by design
        options=SyntheticOptions,
    ))
