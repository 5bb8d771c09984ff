"""The shared augmentation: Keras ImageDataGenerator ranges, exact geometry on known images."""

from __future__ import annotations

import numpy as np
import pytest

from harness.config.suite import Augmentation
from harness.training.augment import (
    AugmentParams,
    affine_matrices,
    centred_matrices,
    pixel_matrices,
    sample_batches,
    sample_params,
)

S = 9


def marked(r: int, c: int, size: int = S) -> np.ndarray:
    img = np.zeros((size, size), np.float32)
    img[r, c] = 1.0
    return img


def warp_pixels(img: np.ndarray, params: AugmentParams) -> np.ndarray:
    """Nearest-neighbour resampling with ``pixel_matrices`` (the TF convention), in numpy."""
    h, w = img.shape
    m = pixel_matrices(params, (h, w))[0].astype(np.float64)
    ys, xs = np.mgrid[:h, :w]
    src = m @ np.stack([xs.ravel(), ys.ravel(), np.ones(h * w)])
    sx = np.clip(np.rint(src[0]), 0, w - 1).astype(int)  # fill "nearest" = clamp to the border
    sy = np.clip(np.rint(src[1]), 0, h - 1).astype(int)
    return img[sy, sx].reshape(h, w)


def warp_torch(img: np.ndarray, params: AugmentParams, mode: str = "bilinear") -> np.ndarray:
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    theta = torch.from_numpy(affine_matrices(params, img.shape))
    x = torch.from_numpy(img)[None, None]
    grid = F.affine_grid(theta, [1, 1, *img.shape], align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)[0, 0].numpy()


def one(**kw) -> AugmentParams:
    p = AugmentParams.identity(1)
    for key, value in kw.items():
        getattr(p, key)[:] = value
    return p


@pytest.mark.parametrize("warp", [warp_pixels, warp_torch])
def test_identity_keeps_the_image(warp):
    img = np.random.default_rng(0).random((S, S)).astype(np.float32)
    assert np.allclose(warp(img, one()), img, atol=1e-5)


@pytest.mark.parametrize("warp", [warp_pixels, warp_torch])
def test_rotation_by_90_degrees_is_a_quarter_turn_clockwise(warp):
    img = marked(1, 6)
    out = warp(img, one(theta=90.0))
    # Keras's rotation matrix, rows pointing down: +90° turns the image clockwise.
    assert np.allclose(out, np.rot90(img, k=-1), atol=1e-5)
    assert np.argwhere(out > 0.5).tolist() == [[6, S - 1 - 1]]
    assert np.allclose(warp(img, one(theta=-90.0)), np.rot90(img, k=1), atol=1e-5)


@pytest.mark.parametrize("warp", [warp_pixels, warp_torch])
def test_flips_mirror_the_marked_pixel(warp):
    img = marked(2, 1)
    assert np.argwhere(warp(img, one(hflip=True)) > 0.5).tolist() == [[2, S - 1 - 1]]
    assert np.argwhere(warp(img, one(vflip=True)) > 0.5).tolist() == [[S - 1 - 2, 1]]


@pytest.mark.parametrize("warp", [warp_pixels, warp_torch])
def test_shift_moves_by_whole_pixels(warp):
    # As Keras: the output samples the input at (row + tx, col + ty), so content moves by -t.
    out = warp(marked(4, 4), one(tx=2.0, ty=-3.0))
    assert np.argwhere(out > 0.5).tolist() == [[2, 7]]


def test_zoom_above_one_shows_less_of_the_image():
    # Output rows read input rows twice as far from the centre (4): row 2 lands on row 3.
    out = warp_pixels(marked(2, 4), one(zx=2.0))
    assert np.argwhere(out > 0.5).tolist() == [[3, 4]]


def test_composition_order_is_rotation_shift_shear_zoom_then_flip():
    p = one(theta=30.0, tx=1.5, ty=-2.0, shear=10.0, zx=1.1, zy=0.9, hflip=True)
    t, s = np.deg2rad(30.0), np.deg2rad(10.0)
    rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    shift = np.array([[1, 0, 1.5], [0, 1, -2.0], [0, 0, 1]])
    shear = np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]])
    zoom = np.diag([1.1, 0.9, 1.0])
    flip = np.diag([1.0, -1.0, 1.0])
    assert np.allclose(centred_matrices(p)[0], rot @ shift @ shear @ zoom @ flip)


def test_torch_and_pixel_conventions_agree_on_a_random_transform():
    rng = np.random.default_rng(3)
    p = sample_params(rng, 1, Augmentation(shift=0.1, zoom=0.1, shear=20.0), 16)
    # Sample both at the same points: nearest neighbour differs only where a point lies on a
    # rounding boundary, so compare the source coordinates instead of the images.
    m = pixel_matrices(p, 16)[0]
    a = affine_matrices(p, 16)[0]
    xs = np.array([0.0, 5.0, 15.0])
    ys = np.array([3.0, 8.0, 12.0])
    src_px = m[:2] @ np.stack([xs, ys, np.ones(3)])
    u, v = (2 * xs + 1) / 16 - 1, (2 * ys + 1) / 16 - 1
    src_norm = a @ np.stack([u, v, np.ones(3)])
    assert np.allclose((src_norm + 1) * 16 / 2 - 0.5, src_px, atol=1e-4)


def test_sampled_ranges_follow_the_paper_settings():
    rng = np.random.default_rng(0)
    aug = Augmentation()  # Table 2: flips, rotation 360, zoom/shift/shear 0.05
    p = sample_params(rng, 20_000, aug, 300)
    assert -360 <= p.theta.min() < -350 and 350 < p.theta.max() <= 360
    assert np.abs(p.tx).max() <= 0.05 * 300 and np.abs(p.tx).max() > 14
    assert np.abs(p.shear).max() <= 0.05  # degrees, as Keras
    assert 0.95 <= p.zx.min() and p.zy.max() <= 1.05
    assert not np.allclose(p.zx, p.zy)  # independent per axis
    assert 0.48 < p.hflip.mean() < 0.52 and 0.48 < p.vflip.mean() < 0.52


def test_sampling_is_deterministic_and_can_be_switched_off():
    aug = Augmentation()
    a = sample_params(np.random.default_rng(5), 4, aug, 32)
    b = sample_params(np.random.default_rng(5), 4, aug, 32)
    assert np.array_equal(affine_matrices(a, 32), affine_matrices(b, 32))
    off = sample_params(np.random.default_rng(5), 3, Augmentation(enabled=False), 32)
    assert np.allclose(affine_matrices(off, 32), np.tile([[1, 0, 0], [0, 1, 0]], (3, 1, 1)))
    no_flip = sample_params(np.random.default_rng(5), 100, Augmentation(hflip=False, vflip=False), 32)
    assert not no_flip.hflip.any() and not no_flip.vflip.any()


def test_matrices_are_float32_with_the_documented_shapes():
    p = sample_params(np.random.default_rng(0), 5, Augmentation(), 64)
    assert affine_matrices(p, 64).shape == (5, 2, 3) and affine_matrices(p, 64).dtype == np.float32
    assert pixel_matrices(p, 64).shape == (5, 3, 3) and pixel_matrices(p, 64).dtype == np.float32


@pytest.mark.parametrize("aug", [
    Augmentation(), Augmentation(rotation=0.0, shear=0.0), Augmentation(zoom=0.0, shift=0.3),
    Augmentation(hflip=False, rotation=12.5, shear=0.9, zoom=0.9),
    Augmentation(enabled=False)])
def test_one_draw_for_an_epoch_gives_the_batches_of_one_draw_each(aug):
    # The loop draws an epoch's transforms at once (sample_batches); the numbers must be
    # those of drawing batch by batch, or a run would not repeat a run of an older version.
    for sizes in ([30, 30, 30, 7, 1], [5, 5, 3, 5, 5]):
        whole = sample_batches(np.random.default_rng(11), sizes, aug, (300, 224))
        rng = np.random.default_rng(11)
        assert len(whole) == len(sizes)
        for n, got in zip(sizes, whole):
            want = sample_params(rng, n, aug, (300, 224))
            for name in ("theta", "tx", "ty", "shear", "zx", "zy", "hflip", "vflip"):
                assert np.array_equal(getattr(got, name), getattr(want, name)), name
                assert getattr(got, name).dtype == getattr(want, name).dtype, name
