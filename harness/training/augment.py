"""Per-sample augmentation parameters and their affine matrices, shared by every engine.

The paper augments with Keras ``ImageDataGenerator`` (Table 2). Here the random draw and the
geometry are plain numpy, so the torch and keras engines apply the *same* transforms from the
same seed; each engine only resamples the batch on its device.

Semantics (those of ``ImageDataGenerator.get_random_transform`` / ``apply_affine_transform``):

- rotation ``theta ~ U(-r, r)`` degrees (``r = 360`` draws any angle, as Keras does);
- shifts ``tx ~ U(-s, s) * height`` (rows) and ``ty ~ U(-s, s) * width`` (columns), in pixels;
- shear angle ``~ U(-k, k)`` in **degrees** (Keras's unit: 0.05 means 0.05°);
- zoom ``zx, zy ~ U(1 - z, 1 + z)`` drawn independently (``> 1`` shows less of the image);
- horizontal / vertical flips each with probability 1/2, applied after the affine part;
- the output→input map is ``rotation @ shift @ shear @ zoom`` about the image centre, then
  the flips; pixels that fall outside are filled as ``fill`` says (``nearest``: border).

One deliberate difference: Keras rotates about ``(h/2 + 0.5, w/2 + 0.5)``, one pixel off
the true centre; we use the true centre ``((h-1)/2, (w-1)/2)`` so a 90° turn is exact.

Interpolation is bilinear (Keras's ``interpolation_order=1``); see ``INTERPOLATION``.
"""

from __future__ import annotations

import numpy as np

from harness.config.suite import Augmentation
from harness.plugin.engine import AugmentParams

#: Resampling of the augmented image, as Keras ``ImageDataGenerator`` (order 1).
INTERPOLATION = "bilinear"

#: ``Augmentation.fill`` → ``torch.nn.functional.grid_sample(padding_mode=...)``.
TORCH_PADDING = {"nearest": "border", "constant": "zeros", "reflect": "reflection"}

#: ``Augmentation.fill`` → TensorFlow ``ImageProjectiveTransformV3(fill_mode=...)``.
TF_FILL_MODE = {"nearest": "NEAREST", "constant": "CONSTANT", "reflect": "REFLECT"}

#: ``Augmentation.fill`` → ``scipy.ndimage.affine_transform(mode=...)`` (``apply_on_host``).
SCIPY_MODE = {"nearest": "nearest", "constant": "grid-constant", "reflect": "reflect"}


def sample_params(rng: np.random.Generator, n: int, aug: Augmentation, size: int | tuple[int, int]
                  ) -> AugmentParams:
    """Draw ``n`` transforms from ``rng`` with the ranges of ``aug`` for ``size`` images."""
    h, w = (size, size) if isinstance(size, int) else size
    if not aug.enabled:
        return AugmentParams.identity(n)

    def uniform(limit: float, scale: float = 1.0) -> np.ndarray:
        return rng.uniform(-limit, limit, n) * scale if limit else np.zeros(n)

    theta = uniform(aug.rotation)
    tx = uniform(aug.shift, h if aug.shift < 1 else 1.0)
    ty = uniform(aug.shift, w if aug.shift < 1 else 1.0)
    shear = uniform(aug.shear)
    if aug.zoom:
        zx, zy = rng.uniform(1 - aug.zoom, 1 + aug.zoom, (2, n))
    else:
        zx, zy = np.ones(n), np.ones(n)
    hflip = (rng.random(n) < 0.5) & bool(aug.hflip)
    vflip = (rng.random(n) < 0.5) & bool(aug.vflip)
    return AugmentParams(theta, tx, ty, shear, zx, zy, hflip, vflip)


def sample_batches(rng: np.random.Generator, sizes: list[int], aug: Augmentation,
                   size: int | tuple[int, int]) -> list[AugmentParams]:
    """``[sample_params(rng, n, aug, size) for n in sizes]``, the same numbers from the same
    stream in one draw: ``Generator.uniform(lo, hi)`` is ``lo + (hi - lo) * random()`` and
    each batch takes its values in ``sample_params``'s order. Per batch and epoch, seven
    generator calls were a fifth of the harness's own time per run (``harness bench
    --study``); ``tests/test_augment.py`` checks that both give identical arrays."""
    h, w = (size, size) if isinstance(size, int) else size
    if not aug.enabled:
        return [AugmentParams.identity(n) for n in sizes]
    # (low, high, scale) of each row a batch draws, in draw order; None: no draw (zeros).
    rows = [(-aug.rotation, aug.rotation, 1.0) if aug.rotation else None,
            (-aug.shift, aug.shift, h if aug.shift < 1 else 1.0) if aug.shift else None,
            (-aug.shift, aug.shift, w if aug.shift < 1 else 1.0) if aug.shift else None,
            (-aug.shear, aug.shear, 1.0) if aug.shear else None]
    drawn = sum(r is not None for r in rows) + (2 if aug.zoom else 0) + 2
    stream = rng.random(drawn * sum(sizes))
    out, at, first = [], 0, 0
    while first < len(sizes):  # consecutive batches of one size: one array op per value
        n = sizes[first]
        last = first
        while last + 1 < len(sizes) and sizes[last + 1] == n:
            last += 1
        count = last - first + 1
        u = iter(stream[at:at + count * drawn * n].reshape(count, drawn, n).transpose(1, 0, 2))
        at += count * drawn * n
        values = [np.zeros((count, n)) if r is None else (r[0] + (r[1] - r[0]) * next(u)) * r[2]
                  for r in rows]
        if aug.zoom:
            low, high = 1 - aug.zoom, 1 + aug.zoom
            values += [low + (high - low) * next(u), low + (high - low) * next(u)]
        else:
            values += [np.ones((count, n)), np.ones((count, n))]
        values += [(next(u) < 0.5) & bool(aug.hflip), (next(u) < 0.5) & bool(aug.vflip)]
        out.extend(AugmentParams(*(v[i] for v in values)) for i in range(count))
        first = last + 1
    return out


def centred_matrices(params: AugmentParams) -> np.ndarray:
    """``(n, 3, 3)`` output→input maps on ``(row, col, 1)`` pixel offsets from the centre."""
    n = len(params)
    t, s = np.deg2rad(params.theta), np.deg2rad(params.shear)
    eye = np.broadcast_to(np.eye(3), (n, 3, 3))
    rot, shift, shear, zoom, flip = (eye.copy() for _ in range(5))
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = np.cos(t), -np.sin(t), np.sin(t), np.cos(t)
    shift[:, 0, 2], shift[:, 1, 2] = params.tx, params.ty
    shear[:, 0, 1], shear[:, 1, 1] = -np.sin(s), np.cos(s)
    zoom[:, 0, 0], zoom[:, 1, 1] = params.zx, params.zy
    flip[:, 0, 0] = np.where(params.vflip, -1.0, 1.0)
    flip[:, 1, 1] = np.where(params.hflip, -1.0, 1.0)
    return rot @ shift @ shear @ zoom @ flip


def pixel_matrices(params: AugmentParams, size: int | tuple[int, int]) -> np.ndarray:
    """``(n, 3, 3)`` float32 maps from output pixel ``(x=col, y=row, 1)`` to input pixel.

    Pixel centres sit at integer coordinates, as in TensorFlow's ``ImageProjectiveTransformV3``
    (whose 8 ``transforms`` are the first 8 entries of each matrix, row-major).
    """
    h, w = (size, size) if isinstance(size, int) else size
    m = centred_matrices(params)
    swap = np.array([[0.0, 1, 0], [1, 0, 0], [0, 0, 1]])  # (row, col) <-> (x, y)
    to_centre = np.array([[1.0, 0, -(w - 1) / 2], [0, 1, -(h - 1) / 2], [0, 0, 1]])
    from_centre = np.array([[1.0, 0, (w - 1) / 2], [0, 1, (h - 1) / 2], [0, 0, 1]])
    return (from_centre @ swap @ m @ swap @ to_centre).astype(np.float32)


def projective_transforms(params: AugmentParams, size: int) -> np.ndarray:
    """``(n, 8)`` float32 ``transforms`` of ``ImageProjectiveTransformV3``: the first 8
    entries of each ``pixel_matrices`` matrix."""
    return pixel_matrices(params, size).reshape(-1, 9)[:, :8].astype(np.float32)


def affine_matrices(params: AugmentParams, size: int | tuple[int, int]) -> np.ndarray:
    """``(n, 2, 3)`` float32 ``theta`` for ``torch.nn.functional.affine_grid``.

    Convention: ``align_corners=False`` normalised coordinates, ``x`` along the width and
    ``y`` along the height in ``[-1, 1]`` (±1 are the outer pixel edges); each matrix maps an
    output location to the input location it samples.
    """
    h, w = (size, size) if isinstance(size, int) else size
    m = centred_matrices(params)
    swap = np.array([[0.0, 1, 0], [1, 0, 0], [0, 0, 1]])
    # A centred pixel offset c along an axis of n pixels is u = 2c/n in normalised units.
    to_pixels = np.diag([w / 2, h / 2, 1.0])
    to_norm = np.diag([2 / w, 2 / h, 1.0])
    return (to_norm @ swap @ m @ swap @ to_pixels)[:, :2, :].astype(np.float32)


def apply_on_host(images: np.ndarray, params: AugmentParams, fill: str = "nearest"
                  ) -> np.ndarray:
    """uint8 ``(B, S, S)`` → float32 ``(B, S, S)`` in [0, 1], each image transformed on the
    CPU by its ``params``: for engines that do not augment on their device. scipy's bilinear
    (order 1) resampling with the maps of ``centred_matrices``, the fills of ``SCIPY_MODE``.
    """
    from scipy import ndimage

    h, w = images.shape[1:]
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    maps = centred_matrices(params)
    out = np.empty(images.shape, np.float32)
    for i, image in enumerate(images):
        # input (row, col) = A @ (output - centre) + t + centre
        a, t = maps[i, :2, :2], maps[i, :2, 2]
        out[i] = ndimage.affine_transform(image.astype(np.float32) / 255.0, a,
                                          offset=centre + t - a @ centre, order=1,
                                          mode=SCIPY_MODE[fill], cval=0.0)
    return out
