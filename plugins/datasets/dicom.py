"""Any chest X-ray file (DICOM, PNG, JPEG, ...) to the 2-D uint8 grayscale the cache stores.

Files are recognised by their content, never by their extension: public datasets hold
``.jpg`` files that are PNGs, and DICOMs are known by the ``DICM`` marker at byte 128.

DICOM pixel values go through the modality LUT (rescale slope/intercept), then the VOI LUT
or window when the file has one, then to uint8: a window maps its range linearly onto
0..255; without one the values are min-max scaled, except plain 8-bit data without any LUT
(the RSNA files), which is kept as stored so that it equals the PNG conversions the paper's
authors trained on. MONOCHROME1 (white = low values) is inverted.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

DICOM_MAGIC_OFFSET = 128
DICOM_MAGIC = b"DICM"


class UnreadableImage(ValueError):
    """A file that exists but cannot be turned into an image; the message says why."""


def is_dicom(path: str | Path) -> bool:
    """True when the file carries the DICOM Part 10 marker (preamble + ``DICM``)."""
    with open(path, "rb") as fh:
        head = fh.read(DICOM_MAGIC_OFFSET + 4)
    return head[DICOM_MAGIC_OFFSET:] == DICOM_MAGIC


def read_image_file(path: str | Path) -> np.ndarray:
    """Read any supported file by content and return a 2-D uint8 grayscale array."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such image file: {path}")
    if is_dicom(path):
        return read_dicom(path)
    return read_picture(path)


# --- ordinary pictures (PNG, JPEG, ...) -------------------------------------------------

def read_picture(path: str | Path) -> np.ndarray:
    """Open with Pillow (which detects the format from the bytes) and convert to uint8 gray."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            return picture_to_gray(image)
    except UnidentifiedImageError as exc:
        raise UnreadableImage(f"not an image Pillow can read (and no DICOM marker): {exc}") from exc
    except OSError as exc:  # truncated or corrupt data
        raise UnreadableImage(f"corrupt image data: {exc}") from exc


def picture_to_gray(image) -> np.ndarray:
    """Any Pillow mode to 8-bit gray; 16-bit and float data are min-max scaled, not clipped."""
    from PIL import Image

    mode = image.mode
    if mode == "L":
        return np.asarray(image, dtype=np.uint8).copy()
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # Pillow's own convert("L") clips these at 255, which turns a 16-bit X-ray white.
        return minmax_uint8(np.asarray(image))
    if mode == "RGBA" or mode == "LA" or (mode == "P" and "transparency" in image.info):
        # Transparent pixels become black, the background of a radiograph.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        background.alpha_composite(rgba)
        return np.asarray(background.convert("L"), dtype=np.uint8).copy()
    return np.asarray(image.convert("L"), dtype=np.uint8).copy()


def minmax_uint8(values: np.ndarray) -> np.ndarray:
    """Scale the value range of any numeric array linearly onto 0..255."""
    values = np.asarray(values, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.round((values - low) * (255.0 / (high - low))).astype(np.uint8)


# --- DICOM ------------------------------------------------------------------------------

def read_dicom(path: str | Path) -> np.ndarray:
    """Decode one DICOM file to 2-D uint8 gray (see the module docstring for the rules)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(path)
    except InvalidDicomError as exc:
        raise UnreadableImage(f"not a valid DICOM file: {exc}") from exc
    except Exception as exc:  # truncated headers raise many kinds of errors
        raise UnreadableImage(f"corrupt DICOM header: {type(exc).__name__}: {exc}") from exc
    if "PixelData" not in ds:
        ended = [str(w.message) for w in caught if "End of file" in str(w.message)]
        if ended:
            raise UnreadableImage(f"truncated DICOM file (the pixel data is cut off): {ended[0]}")
        raise UnreadableImage("DICOM file has no pixel data (PixelData element missing)")
    try:
        pixels = decode_pixels(ds)
    except Exception as exc:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", str(syntax))
        hint = (" Install a decoder: pip install pylibjpeg pylibjpeg-libjpeg"
                if "dependenc" in str(exc).lower() else "")
        raise UnreadableImage(f"cannot decode DICOM pixel data (transfer syntax {name}): "
                              f"{type(exc).__name__}: {exc}{hint}") from exc
    return dicom_to_gray(ds, pixels)


#: Transfer syntax → the pydicom decoding plugin tried first, where it is faster than
#: pydicom's default choice and gives the same pixels. JPEG Baseline: Pillow (libjpeg-turbo)
#: decodes a 1024² RSNA image ~3.5× faster than pylibjpeg, at most 1 grey level apart
#: (tests/test_dicom.py). Every other syntax keeps pydicom's choice.
FASTEST_PLUGIN = {"1.2.840.10008.1.2.4.50": "pillow"}


def decode_pixels(ds) -> np.ndarray:
    """``ds.pixel_array`` through :data:`FASTEST_PLUGIN` for its syntax, else pydicom's own
    plugin order (also when the fast plugin is missing or cannot decode this file)."""
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", ""))
    plugin = FASTEST_PLUGIN.get(syntax)
    if plugin and int(ds.get("SamplesPerPixel", 1) or 1) == 1:  # colour: pydicom converts
        try:
            ds.pixel_array_options(decoding_plugin=plugin)
            return ds.pixel_array
        except Exception:  # noqa: BLE001 - any failure here falls back to the default order
            ds.pixel_array_options(decoding_plugin="")
    return ds.pixel_array


def dicom_to_gray(ds, pixels: np.ndarray) -> np.ndarray:
    """Apply modality LUT, VOI LUT / window and photometric interpretation; return uint8."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
        pixels = pixels[0]
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    if pixels.ndim == 3:  # colour: RGB (pydicom converts YBR to RGB by default)
        from PIL import Image

        return np.asarray(Image.fromarray(pixels.astype(np.uint8)).convert("L"), dtype=np.uint8)
    if pixels.ndim != 2:
        raise UnreadableImage(f"unexpected DICOM pixel array shape {pixels.shape}")

    has_modality = "RescaleSlope" in ds or "RescaleIntercept" in ds or "ModalityLUTSequence" in ds
    has_voi_lut = "VOILUTSequence" in ds
    has_window = "WindowCenter" in ds and "WindowWidth" in ds
    values = apply_modality_lut(pixels, ds) if has_modality else pixels

    if has_voi_lut:
        values = minmax_uint8(apply_voi_lut(values, ds, index=0, prefer_lut=True))
    elif has_window:
        values = window_uint8(values, _first(ds.WindowCenter), _first(ds.WindowWidth))
    elif pixels.dtype == np.uint8 and not has_modality:
        values = np.asarray(pixels, dtype=np.uint8)
    else:
        values = minmax_uint8(values)
    if photometric == "MONOCHROME1":
        values = 255 - values
    return np.ascontiguousarray(values, dtype=np.uint8)


def window_uint8(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """The DICOM linear window (PS3.3 C.11.2.1.2) onto 0..255."""
    values = np.asarray(values, dtype=np.float64)
    width = max(float(width), 1.0)
    scaled = ((values - (float(center) - 0.5)) / (width - 1.0) + 0.5) * 255.0 if width > 1 \
        else np.where(values > center - 0.5, 255.0, 0.0)
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def _first(value) -> float:
    """Window tags may be multi-valued (several windows); the first is the default."""
    try:
        return float(value[0])
    except (TypeError, IndexError):
        return float(value)


# --- writing (test fixtures and benchmarks) ----------------------------------------------

def chest_like(size: int, seed: int = 0) -> np.ndarray:
    """A smooth picture with mild noise, so its JPEG has about the size of a real radiograph."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = 120 + 80 * np.sin(3 * x) * np.cos(2 * y) - 60 * ((x - 0.5) ** 2 + (y - 0.5) ** 2)
    return np.clip(base + rng.normal(0, 4, (size, size)), 0, 255).astype(np.uint8)


def base_dataset(patient_id: str, transfer_syntax: str, sop_class: str):
    """File meta and the patient/study tags the RSNA challenge files carry."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import generate_uid

    prefix = "1.2.276.0.7230010.3.1."
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid(prefix=prefix + "4.")
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationVersionName = "OFFIS_DCMTK_360"
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(prefix=prefix + "2.")
    ds.SeriesInstanceUID = generate_uid(prefix=prefix + "3.")
    ds.PatientName = patient_id
    ds.PatientID = patient_id
    ds.StudyDate = "19010101"
    ds.StudyTime = "000000.00"
    ds.Modality = "CR"
    ds.ConversionType = "WSD"
    ds.BodyPartExamined = "CHEST"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    return ds


def write_jpeg_dicom(path: str | Path, pixels: np.ndarray, patient_id: str | None = None,
                     view: str = "AP", sex: str = "F", age: str = "68",
                     quality: int = 90) -> np.ndarray:
    """Write an RSNA-challenge-style DICOM: 8-bit MONOCHROME2, JPEG Baseline encapsulated,
    Secondary Capture, PatientAge a bare number. Returns the pixels as the JPEG decodes."""
    import io
    import warnings

    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit, SecondaryCaptureImageStorage

    path = Path(path)
    buf = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buf, format="JPEG", quality=quality)
    ds = base_dataset(patient_id or path.stem, JPEGBaseline8Bit, SecondaryCaptureImageStorage)
    with warnings.catch_warnings():  # "68" is not a valid AS value; the real files hold it
        warnings.filterwarnings("ignore", message="Invalid value for VR AS")
        ds.PatientSex = sex
        ds.PatientAge = age
        ds.ViewPosition = view
        ds.SeriesDescription = f"view: {view}"
        ds.PixelSpacing = [0.168, 0.168]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = pixels.shape
        ds.BitsAllocated = 8
        ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelRepresentation = 0
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
        ds.PixelData = encapsulate([buf.getvalue()])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        ds.save_as(path, enforce_file_format=True)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())))
