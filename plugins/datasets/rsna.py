"""The RSNA Pneumonia Detection Challenge (Kaggle, 2018) as normal / pneumonia images.

``stage_2_train_labels.csv`` has one row per box (``Target`` 1 = lung opacity), so patients
repeat; ``stage_2_detailed_class_info.csv`` says ``Normal``, ``Lung Opacity`` or
``No Lung Opacity / Not Normal``. The paper used Normal → normal and Target 1 → pneumonia
and left the third class out; that rule is the default ``mapping`` here. Images are
``<patientId>.dcm`` (JPEG Baseline DICOM) or the ``<patientId>.png`` conversions the
paper's authors used.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import Field

from harness import ClassName, DatasetContext, DatasetSpec, HarnessError, Options, hookimpl

from . import dataset_files
from .dicom import read_image_file

NAME = "rsna"
FETCH_HINT = "see: harness data fetch rsna DEST"

#: detailed class → suite class; a class mapped to None is dropped and counted.
DEFAULT_MAPPING: dict[str, str | None] = {
    "Normal": "normal",
    "Lung Opacity": "pneumonia",
    "No Lung Opacity / Not Normal": None,
}
IMAGE_SUFFIXES = (".dcm", ".dicom", ".png", ".jpg", ".jpeg")

class RsnaOptions(Options):
    root: str = Field(description="folder of the Kaggle download (relative to the suite file)")
    images: str = Field("stage_2_train_images", description="image folder inside root")
    labels: str = Field("stage_2_train_labels.csv", description="box labels CSV inside root "
                        "(patientId,...,Target); '' for none")
    class_info: str = Field("stage_2_detailed_class_info.csv", description="detailed class "
                            "CSV inside root (patientId,class); '' for none")
    mapping: dict[str, ClassName | None] = Field(
        default_factory=dict, description="detailed class → suite class (null drops); merged "
        "over the default {Normal: normal, Lung Opacity: pneumonia, No Lung Opacity / Not "
        "Normal: null}")
    headers: bool = Field(False, description="read ViewPosition, PatientSex and PatientAge "
                          "from every DICOM header (slow on the full set)")


def _mapping(options: RsnaOptions, context: DatasetContext) -> dict[str, str | None]:
    extra = options.mapping
    mapping = {**DEFAULT_MAPPING, **extra}
    classes = list(context.classes)
    for key, cls in extra.items():
        if cls is not None and classes and cls not in classes:
            raise HarnessError(f"{NAME}: option 'mapping' maps {key!r} to {cls!r}, which is not "
                               f"a class of the suite ({', '.join(classes)})")
    return mapping


def _read_csv(root: Path, name: str, columns: tuple[str, ...]) -> pd.DataFrame | None:
    if not name:
        return None
    path = root / name
    if not path.is_file():
        raise HarnessError(f"{NAME}: {path} does not exist; set option "
                           f"'{'labels' if 'Target' in columns else 'class_info'}' to the file "
                           "name or to '' if your copy has none")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise HarnessError(f"{NAME}: {path} lacks column(s) {', '.join(missing)}; found: "
                           f"{', '.join(frame.columns)}")
    frame["patientId"] = frame["patientId"].str.strip()
    return frame


def patient_classes(root: Path, options: RsnaOptions) -> pd.DataFrame:
    """One row per patient: ``patientId``, ``target`` (max over boxes or NA) and ``detail``."""
    labels = _read_csv(root, options.labels, ("patientId", "Target"))
    info = _read_csv(root, options.class_info, ("patientId", "class"))
    if labels is None and info is None:
        raise HarnessError(f"{NAME}: options 'labels' and 'class_info' are both empty; "
                           "at least one label file is needed")
    parts = []
    if labels is not None:
        target = pd.to_numeric(labels["Target"].str.strip(), errors="coerce")
        parts.append(target.groupby(labels["patientId"], sort=False).max().rename("target"))
    if info is not None:
        detail = info.assign(cls=info["class"].str.strip()).drop_duplicates(["patientId", "cls"])
        conflicting = detail["patientId"].duplicated(keep=False)
        detail.loc[conflicting, "cls"] = "<conflicting>"
        parts.append(detail.drop_duplicates("patientId").set_index("patientId")["cls"]
                     .rename("detail"))
    table = pd.concat(parts, axis=1, sort=False)
    table.index.name = "patientId"
    for column in ("target", "detail"):
        if column not in table:
            table[column] = pd.NA
    return table.reset_index()


def _label(target, detail, mapping) -> tuple[str | None, str | None]:
    """(class, exclusion reason): Target 1 means pneumonia whatever the detail file says."""
    if pd.notna(target) and target == 1 and mapping.get("Lung Opacity") is not None:
        return mapping["Lung Opacity"], None
    if isinstance(detail, str):
        if detail == "<conflicting>":
            return None, "conflicting labels"
        if detail not in mapping:
            return None, f"unknown class {detail!r}"
        cls = mapping[detail]
        return (cls, None) if cls is not None else (None, detail)
    return None, "no class info (Target 0 without detailed class)"


def records(options: RsnaOptions, context: DatasetContext) -> pd.DataFrame:
    root = dataset_files.resolve_root(options.root, context, NAME, FETCH_HINT)
    images = dataset_files.inside(root, options.images or "stage_2_train_images",
                                  f"{NAME}: option 'images'",
                                  "name a folder inside the root")
    if not images.is_dir():
        raise HarnessError(f"{NAME}: image folder {images} does not exist; set option 'images' "
                           f"(default stage_2_train_images) ({FETCH_HINT})")
    mapping = _mapping(options, context)
    classes = set(context.classes)
    files = _image_files(images)
    exclusions: dict[str, int] = {}
    rows = []
    for pid, target, detail in patient_classes(root, options)[
            ["patientId", "target", "detail"]].itertuples(index=False):
        cls, reason = _label(target, detail, mapping)
        if reason is None and classes and cls not in classes:
            reason = "class not in suite"
        if reason is None and pid not in files:
            reason = "missing file"
        if reason is not None:
            exclusions[reason] = exclusions.get(reason, 0) + 1
            continue
        path = images / files[pid]
        if path.is_symlink():  # a link may point anywhere: refused unless it stays inside
            dataset_files.inside(root, str(path.relative_to(root)),
                                 f"{NAME}: image of patient {pid!r}",
                                 "copy the file into the root or remove the link")
        rows.append({"uid": f"{NAME}/{pid}", "path": str(path), "label": cls,
                     "patient_id": f"{NAME}/{pid}", "source": NAME, "view": "",
                     "original_patient_id": pid, "filename": files[pid]})
    out = pd.DataFrame(rows, columns=["uid", "path", "label", "patient_id", "source", "view",
                                      "original_patient_id", "filename"])
    if options.headers and len(out):
        out = _with_headers(out)
    out.attrs["exclusions"] = exclusions
    return out


def _image_files(folder: Path) -> dict[str, str]:
    """``{patientId: file name}``; a DICOM wins over a PNG conversion of the same patient."""
    found: dict[str, str] = {}
    for stripped, real in sorted(dataset_files.listing(folder).items()):
        stem, suffix = Path(stripped).stem, Path(stripped).suffix.lower()
        if suffix not in IMAGE_SUFFIXES:
            continue
        if stem not in found or suffix in (".dcm", ".dicom"):
            found[stem] = real
    return found


def _with_headers(frame: pd.DataFrame) -> pd.DataFrame:
    import pydicom
    from pydicom.errors import InvalidDicomError

    views, sexes, ages = [], [], []
    for path in frame["path"]:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True,
                                 specific_tags=["ViewPosition", "PatientSex", "PatientAge"])
            views.append(str(ds.get("ViewPosition", "")))
            sexes.append(str(ds.get("PatientSex", "")))
            ages.append(str(ds.get("PatientAge", "")))  # a bare number in this dataset
        except (InvalidDicomError, OSError, ValueError):  # a PNG, or a broken file
            views.append("")
            sexes.append("")
            ages.append("")
    return frame.assign(view=views, sex=sexes, age=ages)


def read_image(record: Mapping[str, Any], options: RsnaOptions | None = None,
               context: DatasetContext | None = None):
    """DICOM or PNG conversion, recognised by content."""
    return read_image_file(record["path"])


def fingerprint(options: RsnaOptions, context: DatasetContext) -> str:
    root = dataset_files.resolve_root(options.root, context, NAME, FETCH_HINT)
    files = [root / name for name in (options.labels, options.class_info) if name]
    images = root / (options.images or "stage_2_train_images")
    return dataset_files.fingerprint(files, [images], salt="rsna-1")


RSNA_STEPS = """\
The RSNA Pneumonia Detection Challenge data needs a Kaggle account and the competition's
rules accepted (https://www.kaggle.com/c/rsna-pneumonia-detection-challenge/rules). Then:

  pip install kaggle
  # put your API token in ~/.kaggle/kaggle.json (Kaggle > Settings > API > Create New Token)
  chmod 600 ~/.kaggle/kaggle.json
  kaggle competitions download -c rsna-pneumonia-detection-challenge -p {dest}
  cd {dest} && unzip -q rsna-pneumonia-detection-challenge.zip

{dest} then holds stage_2_train_labels.csv, stage_2_detailed_class_info.csv and
stage_2_train_images/ (26,684 DICOMs, about 3.5 GB). Use it in a suite as:

  datasets:
    - name: rsna
      options: {{root: {dest}}}"""


def fetch(dest, options: Mapping[str, Any]) -> str:
    """The data sits behind Kaggle's terms: say how to get it, download nothing."""
    return RSNA_STEPS.format(dest=dest)


def version(options: RsnaOptions, context: DatasetContext) -> dict[str, Any]:
    root = dataset_files.resolve_root(options.root, context, NAME, FETCH_HINT)
    files = [root / name for name in (options.labels, options.class_info) if name]
    images = root / (options.images or "stage_2_train_images")
    return {**dataset_files.version(root, files, [images]),
            "class_to_label": _mapping(options, context)}


def check(options: RsnaOptions, context: DatasetContext) -> list[str]:
    """The root, the labels and class CSVs, and the image folder (not the images: cheap)."""
    return dataset_files.missing(options.root, context, NAME, FETCH_HINT,
                                 files=[options.labels, options.class_info],
                                 folders=[options.images or "stage_2_train_images"])


SPEC = DatasetSpec(
    name=NAME,
    description="RSNA Pneumonia Detection Challenge (Normal → normal, Lung Opacity → pneumonia)",
    records=records,
    read_image=read_image,
    options=RsnaOptions,
    fingerprint=fingerprint,
    version=version,
    fetch=fetch,
    check=check,
)


@hookimpl
def register_datasets(register):
    register(SPEC)
