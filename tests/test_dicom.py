"""DICOM and picture decoding to the uint8 grayscale the cache stores."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pydicom
import pytest
from fixtures_data import chest_like, write_broken_dicom, write_rsna_dicom, write_uncompressed_dicom
from harness_plugins.datasets import dicom, rsna
from harness_plugins.datasets.dicom import UnreadableImage, read_image_file, window_uint8
from PIL import Image
from pydicom.encaps import generate_frames

from harness.data.cache import fill_cache


def test_rsna_style_dicom_has_the_real_header_and_decodes_full_size(tmp_path):
    path = tmp_path / "0004cfab-14fd-4e49-80ba-63a80b6bddd6.dcm"
    expected = write_rsna_dicom(path)
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert (ds.Rows, ds.Columns, ds.BitsStored) == (1024, 1024, 8)
    assert ds.PhotometricInterpretation == "MONOCHROME2"
    assert str(ds.PatientAge) == "68" and ds.PatientID == path.stem
    assert path.read_bytes()[128:132] == b"DICM"

    image = read_image_file(path)
    assert image.shape == (1024, 1024) and image.dtype == np.uint8
    # 8-bit data without LUT is kept as stored (equal to a PNG conversion), up to the
    # rounding differences between JPEG decoders.
    assert np.abs(image.astype(int) - expected.astype(int)).max() <= 2


def test_files_are_read_by_content_not_extension(tmp_path):
    dicom_as_png = tmp_path / "a.png"
    write_rsna_dicom(dicom_as_png, size=32)
    png_as_dcm = tmp_path / "b.dcm"
    picture = chest_like(32)
    Image.fromarray(picture).save(png_as_dcm, format="PNG")
    assert read_image_file(dicom_as_png).shape == (32, 32)
    assert np.array_equal(read_image_file(png_as_dcm), picture)


def test_monochrome1_16bit_is_scaled_and_inverted(tmp_path):
    ramp = np.tile(np.arange(0, 4096, 64, dtype=np.uint16), (8, 1))  # 12-bit data in 16 bits
    path = tmp_path / "m1.dcm"
    write_uncompressed_dicom(path, ramp, photometric="MONOCHROME1", bits_stored=12)
    image = read_image_file(path)
    assert image.dtype == np.uint8 and image.shape == ramp.shape
    assert image[0, 0] == 255 and image[0, -1] == 0  # low values are white in MONOCHROME1
    assert np.all(np.diff(image[0].astype(int)) <= 0)


def test_rescale_and_window_are_applied(tmp_path):
    raw = np.array([[0, 1000, 2000, 3000, 4000]], dtype=np.uint16)
    path = tmp_path / "ct.dcm"
    # HU = raw - 1024; window 40 / 400 shows -160..240 HU.
    write_uncompressed_dicom(path, raw, slope=1.0, intercept=-1024.0, window=(40, 400))
    image = read_image_file(path)
    hu = raw.astype(float) - 1024
    assert np.array_equal(image, window_uint8(hu, 40, 400))
    assert image[0, 0] == 0 and image[0, 2] == 255  # -1024 HU black, 976 HU white
    assert image[0, 1] == np.round(((1000 - 1024 - 39.5) / 399 + 0.5) * 255)


def test_plain_8bit_dicom_is_kept_as_stored(tmp_path):
    pixels = chest_like(16)
    path = tmp_path / "u8.dcm"
    write_uncompressed_dicom(path, pixels)
    assert np.array_equal(read_image_file(path), pixels)


def test_sixteen_bit_png_is_not_clipped(tmp_path):
    values = (chest_like(16).astype(np.uint16) * 256)
    Image.fromarray(values).save(tmp_path / "x.png")
    image = read_image_file(tmp_path / "x.png")
    assert image.min() == 0 and image.max() == 255 and len(np.unique(image)) > 20


@pytest.mark.parametrize("how,message", [
    ("truncated", "truncated DICOM file"),
    ("corrupt-jpeg", "cannot decode DICOM pixel data (transfer syntax JPEG Baseline"),
    ("garbage", "not an image Pillow can read"),
    ("no-pixels", "no pixel data"),
])
def test_broken_files_raise_a_clear_error(tmp_path, how, message):
    path = tmp_path / f"{how}.dcm"
    write_broken_dicom(path, how)
    with pytest.raises(UnreadableImage, match=message.replace("(", r"\(")):
        read_image_file(path)


def test_cache_skips_a_corrupt_dicom_and_names_its_path(tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"p{i}.dcm")
        write_rsna_dicom(paths[-1], size=32, seed=i)
    write_broken_dicom(paths[1], "corrupt-jpeg")
    records = pd.DataFrame({"uid": [f"rsna/p{i}" for i in range(3)],
                            "path": [str(p) for p in paths], "_dataset": "rsna"})
    view, errors = fill_cache(tmp_path / "cache", records, {"rsna": rsna.read_image},
                              {"rsna": {}}, ["x"], 16, workers=1, show_progress=False)
    assert list(errors) == ["rsna/p1"]
    assert str(paths[1]) in errors["rsna/p1"] and "cannot decode DICOM" in errors["rsna/p1"]
    assert view.images[0].std() > 0 and view.images[2].std() > 0


def test_the_real_rsna_dicom_decodes_to_1024_uint8(shared_file):
    path = shared_file("data/rsna-mini/stage_2_train_images/"
                       "c64d5667-a776-4f95-9e21-bfabafb07740.dcm")
    image = read_image_file(path)
    assert image.shape == (1024, 1024) and image.dtype == np.uint8
    assert image.min() == 0 and image.max() == 255
    assert_pillow_decoded_within_one_grey_level(path, image)  # kept as stored


def reference_pixels(path, plugin):
    ds = pydicom.dcmread(path)
    ds.pixel_array_options(decoding_plugin=plugin)
    return ds.pixel_array


def assert_pillow_decoded_within_one_grey_level(path, image):
    """The image is Pillow's decoding of the JPEG frame, and within 1 of pylibjpeg's."""
    ds = pydicom.dcmread(path)
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    assert np.array_equal(image, np.asarray(Image.open(io.BytesIO(frame))))
    libjpeg = reference_pixels(path, "pylibjpeg").astype(int)
    assert np.abs(image.astype(int) - libjpeg).max() <= 1
    assert (image != libjpeg).mean() < 0.1


def test_jpeg_baseline_goes_through_pillow_within_one_grey_level(tmp_path):
    path = tmp_path / "a.dcm"
    write_rsna_dicom(path, size=256)
    assert_pillow_decoded_within_one_grey_level(path, read_image_file(path))


def test_other_syntaxes_and_failures_keep_pydicoms_choice(tmp_path, monkeypatch):
    ramp = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (4, 1))
    plain = tmp_path / "plain.dcm"
    write_uncompressed_dicom(plain, ramp)
    assert np.array_equal(dicom.decode_pixels(pydicom.dcmread(plain)), ramp)
    jpeg = tmp_path / "b.dcm"
    write_rsna_dicom(jpeg, size=64)
    monkeypatch.setitem(dicom.FASTEST_PLUGIN, "1.2.840.10008.1.2.4.50", "no-such-plugin")
    assert np.array_equal(dicom.decode_pixels(pydicom.dcmread(jpeg)),
                          pydicom.dcmread(jpeg).pixel_array)
