"""Writers of small datasets in the exact layouts of ieee8023 and RSNA, for tests.

The ieee8023 writer covers both metadata generations and the real quirks: ``.jpg`` files
holding PNG data, trailing spaces in file names (in the metadata and on disk), one image
shared by two patient ids, CT rows, lateral and blank views, ``todo`` rows and a missing
file. The RSNA writer produces DICOMs the way the challenge files are: 1024×1024 8-bit
MONOCHROME2 JPEG Baseline, Secondary Capture, PatientAge a bare number.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from harness_plugins.datasets.dicom import base_dataset, chest_like, write_jpeg_dicom
from PIL import Image

# (patientid, finding flat, finding hierarchical, view, modality, filename in metadata,
#  name on disk or None, how the file is written)
IEEE_ROWS = [
    ("1", "COVID-19", "Pneumonia/Viral/COVID-19", "PA", "X-ray", "c1.jpg", "c1.jpg", "jpeg-rgb"),
    ("1", "COVID-19", "Pneumonia/Viral/COVID-19", "L", "X-ray", "c1-lat.jpg", "c1-lat.jpg",
     "jpeg-l"),
    ("2", "COVID-19, ARDS", "Pneumonia/Viral/COVID-19", "AP Supine", "X-ray", "c2.jpg", "c2.jpg",
     "png-in-jpg"),
    ("3", "SARS", "Pneumonia/Viral/SARS", "AP", "X-ray", "c3.png", "c3.png", "png-p"),
    ("4", "Streptococcus", "Pneumonia/Bacterial/Streptococcus", "PA", "X-ray", "c4.png ",
     "c4.png", "png-rgba"),
    ("5", "Klebsiella", "Pneumonia/Bacterial/Klebsiella", "PA", "X-ray", "k5.jpeg", "k5.jpeg",
     "jpeg-l"),
    ("6", "No Finding", "No Finding", "PA", "X-ray", "n6.png", "n6.png", "png-16"),
    ("7", "todo", "todo", "PA", "X-ray", "t7.jpg", "t7.jpg", "jpeg-l"),
    ("8", "COVID-19", "Pneumonia/Viral/COVID-19", "Axial", "CT", "ct8.jpg", "ct8.jpg", "jpeg-l"),
    ("9", "ARDS", "ARDS", "PA", "X-ray", "a9.jpg", "a9.jpg", "jpeg-l"),
    ("10", "COVID-19", "Pneumonia/Viral/COVID-19", "PA", "X-ray", "missing.jpg", None, ""),
    ("11", "Pneumocystis", "Pneumonia/Fungal/Pneumocystis", "PA", "X-ray", "shared.jpg",
     "shared.jpg", "jpeg-l"),
    ("12", "Pneumocystis", "Pneumonia/Fungal/Pneumocystis", "PA", "X-ray", "shared.jpg", None, ""),
    ("12", "Pneumocystis", "Pneumonia/Fungal/Pneumocystis", "AP", "X-ray", "p12b.jpg",
     "p12b.jpg", "jpeg-l"),
    ("13", "COVID-19", "Pneumonia/Viral/COVID-19", "", "X-ray", "b13.jpg", "b13.jpg", "jpeg-l"),
    ("14", "COVID-19", "Pneumonia/Viral/COVID-19", "AP", "X-ray", "sp14.jpg", "sp14.jpg ",
     "jpeg-l"),
]

#: What the ieee8023 plugin must report for IEEE_ROWS (same for both generations).
IEEE_EXPECTED = {
    "paper": {
        "classes": {"covid19": 3, "pneumonia": 4},
        "exclusions": {"view": 2, "unmapped finding": 3, "todo/unknown": 1, "ct": 1,
                       "missing file": 1, "duplicate image": 1},
    },
    "current": {
        "classes": {"covid19": 3, "pneumonia": 5, "normal": 1},
        "exclusions": {"view": 2, "unmapped finding": 1, "todo/unknown": 1, "ct": 1,
                       "missing file": 1, "duplicate image": 1},
    },
}

FLAT_HEADER = ["Patientid", "offset", "sex", "age", "finding", "survival", "view", "modality",
               "date", "location", "folder", "filename", "doi", "url", "license",
               "clinical_notes", "other_notes", ""]
#: February 2020: no ``modality`` (CT only in ``view``), no ``folder``, spaced note columns.
EARLIEST_HEADER = ["Patientid", "offset", "sex", "age", "finding", "survival", "view", "date",
                   "location", "filename", "doi", "url", "license", "clinical notes",
                   "other notes"]
#: Capitalised, spaced headers.
SPACED_HEADER = ["Patient ID", "Offset", "Sex", "Age", "Finding", "Survival", "View",
                 "Modality", "Date", "Location", "Folder", "File name", "DOI", "URL",
                 "License", "Clinical notes", "Other notes"]
#: Schema generations: header and whether findings are hierarchical.
GENERATIONS = {"earliest": (EARLIEST_HEADER, False), "spaced": (SPACED_HEADER, False)}
HIERARCHICAL_HEADER = ["patientid", "offset", "sex", "age", "finding", "RT_PCR_positive",
                       "survival", "intubated", "view", "modality", "date", "location", "folder",
                       "filename", "doi", "url", "license", "clinical_notes", "other_notes"]


def gradient(height: int = 40, width: int = 32, seed: int = 0) -> np.ndarray:
    """A small non-constant uint8 picture (a gradient with noise)."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 200, height)[:, None] + np.linspace(0, 40, width)[None, :]
    return np.clip(y + rng.normal(0, 5, (height, width)), 0, 255).astype(np.uint8)


def write_picture(path: Path, how: str, seed: int = 0) -> np.ndarray:
    """Write one image in a given encoding; returns the gray values it should decode to."""
    gray = gradient(seed=seed)
    if how == "jpeg-l":
        Image.fromarray(gray).save(path, format="JPEG", quality=95)
    elif how == "jpeg-rgb":
        Image.fromarray(np.stack([gray] * 3, -1)).save(path, format="JPEG", quality=95)
    elif how == "png-in-jpg":
        Image.fromarray(np.stack([gray] * 3, -1)).save(path, format="PNG")
    elif how == "png-p":
        Image.fromarray(np.stack([gray] * 3, -1)).convert("P", palette=Image.ADAPTIVE).save(
            path, format="PNG")
    elif how == "png-rgba":
        rgba = np.dstack([gray, gray, gray, np.full_like(gray, 255)])
        Image.fromarray(rgba).save(path, format="PNG")
    elif how == "png-16":
        Image.fromarray(gray.astype(np.uint16) * 256).save(path, format="PNG")
    else:
        raise ValueError(how)
    return gray


def write_ieee8023(root: Path, generation: str = "flat", rows=IEEE_ROWS) -> Path:
    """An ieee8023 copy: ``metadata.csv`` (``flat`` 2020 or ``hierarchical`` schema) + images/."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    header, hierarchical = GENERATIONS.get(generation, (
        FLAT_HEADER if generation == "flat" else HIERARCHICAL_HEADER, generation != "flat"))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for i, (pid, flat, hier, view, modality, name, disk, how) in enumerate(rows):
        values = {"offset": "0", "sex": "M", "age": "50",
                  "finding": hier if hierarchical else flat, "view": view,
                  "modality": modality, "folder": "images", "filename": name,
                  "clinicalnotes": "line one\nline two, with a comma"}
        key = [h.lower().replace(" ", "").replace("_", "") for h in header]
        writer.writerow([pid if j == 0 else values.get(k, "") for j, k in enumerate(key)])
        if disk is not None:
            write_picture(root / "images" / disk, how, seed=i)
    (root / "metadata.csv").write_text(buf.getvalue())
    return root


# --- RSNA ------------------------------------------------------------------------------

def write_rsna_dicom(path: Path, pixels: np.ndarray | None = None, size: int = 1024,
                     patient_id: str | None = None, view: str = "AP", sex: str = "F",
                     age: str = "68", seed: int = 0) -> np.ndarray:
    """A DICOM like the challenge files: 8-bit MONOCHROME2, JPEG Baseline, Secondary Capture,
    PatientAge a bare number. Returns the pixel values as the JPEG decodes them (lossy)."""
    pixels = chest_like(size, seed) if pixels is None else pixels
    return write_jpeg_dicom(path, pixels, patient_id=patient_id, view=view, sex=sex, age=age)


def write_uncompressed_dicom(path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2",
                             bits_stored: int | None = None, slope: float | None = None,
                             intercept: float | None = None, window: tuple | None = None,
                             signed: bool = False) -> None:
    """Explicit VR little endian DICOM with 8- or 16-bit pixels and optional LUT tags."""
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

    ds = base_dataset(Path(path).stem, ExplicitVRLittleEndian, SecondaryCaptureImageStorage)
    bits = pixels.dtype.itemsize * 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = bits
    ds.BitsStored = bits_stored or bits
    ds.HighBit = (bits_stored or bits) - 1
    ds.PixelRepresentation = 1 if signed else 0
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept or 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_broken_dicom(path: Path, how: str = "truncated") -> None:
    """``truncated``: a real-looking file cut in the JPEG data; ``corrupt-jpeg``: the JPEG
    start-of-image marker of the pixel data destroyed; ``garbage``: not DICOM at all; ``no-pixels``: a valid
    header without PixelData."""
    path = Path(path)
    if how == "garbage":
        path.write_bytes(b"this is not an image\n" * 10)
        return
    write_rsna_dicom(path, size=64)
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) - 600])
    elif how == "corrupt-jpeg":
        start = data.index(b"\xff\xd8\xff")  # remove the JPEG start-of-image marker
        path.write_bytes(data[:start] + b"\x00\x00" + data[start + 2:])
    elif how == "no-pixels":
        import pydicom

        ds = pydicom.dcmread(path)
        del ds.PixelData
        ds.save_as(path, enforce_file_format=True)
    else:
        raise ValueError(how)


def write_rsna(root: Path, patients: dict[str, tuple[str, int]], size: int = 64,
               png: tuple[str, ...] = (), missing: tuple[str, ...] = (),
               images: str = "stage_2_train_images") -> Path:
    """An RSNA copy. ``patients`` maps patientId → (detailed class, number of boxes); boxes
    > 0 means Target 1 (one label row per box), 0 means one row with empty box columns."""
    root = Path(root)
    folder = root / images
    folder.mkdir(parents=True, exist_ok=True)
    labels = ["patientId,x,y,width,height,Target"]
    info = ["patientId,class"]
    for i, (pid, (cls, boxes)) in enumerate(patients.items()):
        for b in range(max(boxes, 1)):
            labels.append(f"{pid},{100 + b}.0,{200 + b}.0,50.0,60.0,1" if boxes else f"{pid},,,,,0")
            info.append(f"{pid},{cls}")  # row-aligned with the labels, as in the real files
        if pid in missing:
            continue
        if pid in png:
            Image.fromarray(chest_like(size, i)).save(folder / f"{pid}.png")
        else:
            write_rsna_dicom(folder / f"{pid}.dcm", size=size, seed=i)
    (root / "stage_2_train_labels.csv").write_text("\n".join(labels) + "\n")
    (root / "stage_2_detailed_class_info.csv").write_text("\n".join(info) + "\n")
    return root


# --- records with the paper's composition (no images: the split needs none) --------------

#: Images per COVID-19 test patient where not 1, so each fold's test set has the paper's 31
#: images (30 in fold 3) with the authors' patient lists.
PAPER_COVID_IMAGES = {"13": 6, "36": 4, "47": 2, "56": 6, "132": 6, "151": 4, "152": 4,
                      "163": 6, "167": 6}


def paper_records():
    """Records like the paper's data: 180 COVID-19 images of 118 ieee8023 patients, 42
    pneumonia images of 25 patients, and RSNA's 6,012 pneumonia and 8,851 normal patients."""
    import pandas as pd
    from harness_plugins.splitters.paper import COVID_TEST_PATIENTS, PNEUMONIA_TEST_PATIENTS

    listed = sorted({p for ids in COVID_TEST_PATIENTS.values() for p in ids}, key=int)
    covid = {p: PAPER_COVID_IMAGES.get(p, 1) for p in listed}
    covid.update({str(200 + i): (2 if i < 27 else 1) for i in range(31)})
    pneumonia = dict(zip(PNEUMONIA_TEST_PATIENTS, (3, 3, 2)))
    pneumonia.update({str(300 + i): (2 if i < 12 else 1) for i in range(22)})
    rows = []
    for label, patients in (("covid19", covid), ("pneumonia", pneumonia)):
        for pid, n in patients.items():
            for j in range(n):
                name = f"{label}-{pid}-{j}.jpg"
                rows.append(("ieee8023/" + name, label, f"ieee8023/{pid}", pid, "ieee8023", name))
    for label, n in (("pneumonia", 6012), ("normal", 8851)):
        for j in range(n):
            pid = f"{label[:2]}{j:05d}-0000-0000-0000-000000000000"
            rows.append((f"rsna/{pid}", label, f"rsna/{pid}", pid, "rsna", f"{pid}.dcm"))
    frame = pd.DataFrame(rows, columns=["uid", "label", "patient_id", "original_patient_id",
                                        "source", "filename"])
    frame["path"] = "/nonexistent/" + frame["filename"]
    frame["view"] = "PA"
    return frame


def records_from_all_csv(path):
    """Full-size records named like the authors' files (RSNA as .dcm, as on disk)."""
    import pandas as pd

    listed = pd.read_csv(path / "All.csv")
    rsna = listed["filename"].str.fullmatch(r"[0-9a-f-]{36}\.png")
    names = listed["filename"].where(~rsna, listed["filename"].str.replace(".png", ".dcm"))
    label = listed["class"].replace({"COVID-19": "covid19"})
    return pd.DataFrame({"uid": "x/" + names, "path": "/nonexistent/" + names, "label": label,
                         "patient_id": "p/" + names, "source": np.where(rsna, "rsna", "ieee8023"),
                         "view": "PA", "filename": names})
