"""The ieee8023 COVID-19 image data collection (github.com/ieee8023/covid-chestxray-dataset).

Reads ``metadata.csv`` and the image folders of every schema generation since February
2020: the flat ``finding`` values of 2020 (``COVID-19``, ``COVID-19, ARDS``, ``SARS``) and the
later hierarchical ones (``Pneumonia/Viral/COVID-19``); capitalised or spaced headers
(``Patientid``, ``clinical notes``) and the trailing empty column; the earliest files with no
``modality`` column (CT and MRI are then read from ``view``) and no ``folder`` column (the
images are in ``images/``).
The finding → class mapping is data (a preset or the suite's own dict), and every row that
is not used is counted by reason, so a summary accounts for the whole metadata file.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import Field, field_validator

from harness import ClassName, DatasetContext, DatasetSpec, HarnessError, Options, hookimpl

from . import dataset_files
from .dicom import is_dicom, read_image_file

NAME = "ieee8023"
FETCH_HINT = "get it with: harness data fetch ieee8023 DEST"
URL = "https://github.com/ieee8023/covid-chestxray-dataset"
#: Overrides the clone URL (a mirror, or a local repository in tests).
URL_ENV = "HARNESS_IEEE8023_URL"
#: ``fetch`` checks out the last commit before this instant unless told otherwise. The
#: authors recorded no commit; the paper's web references were accessed on 10 April 2020,
#: so this is the collection as it stood then. ``harness data summary`` on a paper suite
#: compares what it holds with the paper's Table 1.
PAPER_SNAPSHOT = "2020-04-11T00:00:00Z"

#: The views the paper kept (frontal radiographs).
PAPER_VIEWS = ("PA", "AP", "AP Supine", "AP semi erect")

#: Mapping presets: ``{finding pattern: class}``, first match wins. A pattern matches the
#: whole ``finding`` or its last ``/`` token, case-insensitively, with shell wildcards.
PRESETS: dict[str, dict[str, str]] = {
    # The authors' selection (paper section 3.1, early-April-2020 metadata): 180 COVID-19
    # images and 42 pneumonia images (Pneumocystis, Streptococcus, SARS).
    "paper": {
        "COVID-19": "covid19",
        "COVID-19, ARDS": "covid19",
        "Pneumocystis": "pneumonia",
        "SARS": "pneumonia",
        "Streptococcus": "pneumonia",
    },
    # Later versions: every pneumonia finding is pneumonia, "No Finding" is normal.
    "current": {
        "COVID-19": "covid19",
        "COVID-19, ARDS": "covid19",
        "No Finding": "normal",
        "Pneumonia": "pneumonia",
        "Pneumonia/*": "pneumonia",
        # flat spellings of 2020 for what later sits under Pneumonia/...
        "SARS": "pneumonia",
        "MERS*": "pneumonia",
        "Pneumocystis": "pneumonia",
        "Streptococcus": "pneumonia",
        "Staphylococcus*": "pneumonia",
        "Klebsiella": "pneumonia",
        "Legionella": "pneumonia",
        "Mycoplasma*": "pneumonia",
        "Chlamydophila": "pneumonia",
        "E.Coli": "pneumonia",
        "Bacterial": "pneumonia",
        "Viral": "pneumonia",
        "Fungal": "pneumonia",
        "Influenza": "pneumonia",
        "Varicella": "pneumonia",
        "Herpes*": "pneumonia",
        "Lipoid": "pneumonia",
        "Aspergillosis": "pneumonia",
        "Nocardia": "pneumonia",
        "Candida": "pneumonia",
    },
}

#: ``finding`` values that mean "not labelled yet".
UNLABELLED = ("", "todo", "unknown")

#: Exclusion reasons, in the order rows are tested.
CT, NOT_XRAY, UNLABELLED_REASON, VIEW, UNMAPPED, OTHER_CLASS, MISSING, UNREADABLE, DUPLICATE = (
    "ct", "not x-ray", "todo/unknown", "view", "unmapped finding", "class not in suite",
    "missing file", "unreadable file", "duplicate image",
)

class Ieee8023Options(Options):
    root: str = Field(description="folder holding metadata.csv and images/ (relative to the "
                      "suite file)")
    mapping: str | dict[str, ClassName | None] = Field(
        "paper", description="finding → class: a preset ('paper', 'current') or a dict "
        "{finding pattern: class}")
    views: list[str] = Field(default_factory=lambda: list(PAPER_VIEWS),
                             description="views to keep")
    metadata: str = Field("metadata.csv", description="metadata file name inside root")
    verify: bool = Field(False, description="open every image header now and count "
                         "unreadable files")

    @field_validator("mapping")
    @classmethod
    def _known_preset(cls, value):
        if isinstance(value, str) and value not in PRESETS:
            raise ValueError(f"expected a preset ({', '.join(PRESETS)}) or a dict "
                             f"{{finding: class}}, got {value!r}")
        return value


REQUIRED_COLUMNS = ("patientid", "finding", "view", "filename")

#: ``view`` values that meant a CT slice before the ``modality`` column existed.
CT_VIEWS = ("ct", "axial", "coronal", "sagittal")


def column_key(name: Any) -> str:
    """``Patient ID``, ``patient_id`` and ``patientid`` are one column across generations."""
    return "".join(ch for ch in str(name).strip().lower() if ch not in " _-")


def modality_from_view(view: str) -> str:
    """The earliest files recorded CT slices (and the odd MRI) only in ``view``."""
    v = view.strip().lower()
    if v in CT_VIEWS or v.startswith("ct"):
        return "CT"
    return "MRI" if "mri" in v else "X-ray"


def mapping_for(options: Ieee8023Options, context: DatasetContext) -> dict[str, str | None]:
    """The finding → class mapping the options ask for, checked against the suite classes."""
    mapping = options.mapping
    if isinstance(mapping, str):
        if mapping not in PRESETS:
            raise HarnessError(f"{NAME}: option 'mapping' is {mapping!r}; expected a preset "
                               f"({', '.join(PRESETS)}) or a dict {{finding: class}}")
        return dict(PRESETS[mapping])
    if not isinstance(mapping, Mapping):
        raise HarnessError(f"{NAME}: option 'mapping' must be a preset name or a dict "
                           f"{{finding: class}}, got {type(mapping).__name__}")
    classes = list(context.classes)
    for finding, cls in mapping.items():
        if cls is not None and classes and cls not in classes:
            raise HarnessError(f"{NAME}: option 'mapping' maps {finding!r} to {cls!r}, which "
                               f"is not a class of the suite ({', '.join(classes)})")
    return {str(k): (None if v is None else str(v)) for k, v in mapping.items()}


def map_finding(finding: str, mapping: Mapping[str, str | None]) -> str | None:
    """Class of one ``finding`` value, or None when no pattern matches."""
    whole = finding.strip().lower()
    last = whole.rsplit("/", 1)[-1].strip()
    for pattern, cls in mapping.items():
        p = pattern.strip().lower()
        if fnmatch.fnmatchcase(whole, p) or fnmatch.fnmatchcase(last, p):
            return cls
    return None


def read_metadata(path: Path) -> pd.DataFrame:
    """``metadata.csv`` of any version with lower-case column names and no empty columns."""
    if not path.is_file():
        raise HarnessError(f"{NAME}: no metadata file at {path}; option 'root' must be the "
                           f"dataset folder ({FETCH_HINT})")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise HarnessError(f"{NAME}: cannot read {path} as CSV: {exc}") from exc
    frame = frame.loc[:, [c for c in frame.columns
                          if str(c).strip() and not str(c).startswith("Unnamed:")]]
    original = [str(c).strip() for c in frame.columns]
    frame.columns = [column_key(c) for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise HarnessError(f"{NAME}: {path} lacks column(s) {', '.join(missing)}; found: "
                           f"{', '.join(original)}")
    if "modality" not in frame.columns:
        frame["modality"] = frame["view"].map(modality_from_view)
    if "folder" not in frame.columns:
        frame["folder"] = "images"
    return frame


def _modality_reason(modality: str) -> str | None:
    m = modality.strip().lower().replace("-", "").replace(" ", "")
    if m == "xray":
        return None
    return CT if m == "ct" else NOT_XRAY


def _readable(path: Path) -> bool:
    from PIL import Image

    try:
        if is_dicom(path):
            return True
        with Image.open(path):
            return True
    except (OSError, ValueError):  # Pillow's UnidentifiedImageError is an OSError
        return False


class _Groups:
    """Union-find over patient ids: patients that share an image become one group."""

    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def records(options: Ieee8023Options, context: DatasetContext) -> pd.DataFrame:
    """One row per usable image; ``attrs["exclusions"]`` counts every dropped row by reason."""
    root = dataset_files.resolve_root(options.root, context, NAME, FETCH_HINT)
    metadata = root / (options.metadata or "metadata.csv")
    frame = read_metadata(metadata)
    mapping = mapping_for(options, context)
    classes = set(context.classes)
    views = {str(v).strip().lower() for v in (options.views or PAPER_VIEWS)}
    verify = options.verify

    exclusions: dict[str, int] = {}
    listings: dict[str, dict[str, str]] = {}
    kept: list[dict[str, Any]] = []
    for i, row in enumerate(frame.to_dict("records")):
        reason = _modality_reason(row["modality"])
        finding = row["finding"].strip()
        cls = None
        if reason is None and finding.lower() in UNLABELLED:
            reason = UNLABELLED_REASON
        if reason is None and row["view"].strip().lower() not in views:
            reason = VIEW
        if reason is None:
            cls = map_finding(finding, mapping)
            if cls is None:
                reason = UNMAPPED
            elif classes and cls not in classes:
                reason = OTHER_CLASS
        path = None
        if reason is None:
            where = (f"{metadata} row {i + 1} (patientid {row['patientid']!r}, "
                     f"filename {row['filename']!r})")
            folder = row["folder"].strip() or "images"
            name = row["filename"].strip()
            path = dataset_files.inside(root, f"{folder}/{name}", where)
            if path.parent == root / folder and "/" not in name:
                if folder not in listings:
                    listings[folder] = dataset_files.listing(root / folder)
                real = listings[folder].get(name)
                path = root / folder / real if real is not None else None
            elif not path.is_file():
                path = None
            if path is None:
                reason = MISSING
            elif verify and not _readable(path):
                reason = UNREADABLE
        if reason is not None:
            exclusions[reason] = exclusions.get(reason, 0) + 1
            continue
        kept.append({
            "uid": f"{NAME}/{name}" if folder == "images" else f"{NAME}/{folder}/{name}",
            "path": str(path),
            "label": cls,
            "original_patient_id": row["patientid"].strip(),
            "source": NAME,
            "view": row["view"].strip(),
            "finding": finding,
            "filename": row["filename"].strip(),
            "modality": row["modality"].strip(),
            "sex": row.get("sex", "").strip(),
            "age": row.get("age", "").strip(),
        })
    out = _merge_shared_images(kept, exclusions)
    out.attrs["exclusions"] = exclusions
    return out


COLUMNS = ("uid", "path", "label", "patient_id", "source", "view", "original_patient_id",
           "finding", "filename", "modality", "sex", "age")


def _merge_shared_images(kept: list[dict[str, Any]], exclusions: dict[str, int]) -> pd.DataFrame:
    """One record per image file; patients sharing a file form one ``patient_id`` group."""
    groups = _Groups()
    owner: dict[str, str] = {}
    for rec in kept:
        pid = rec["original_patient_id"]
        groups.find(pid)
        if rec["path"] in owner:
            groups.union(owner[rec["path"]], pid)
        else:
            owner[rec["path"]] = pid
    members: dict[str, set[str]] = {}
    for pid in list(groups.parent):
        members.setdefault(groups.find(pid), set()).add(pid)

    by_path: dict[str, list[dict[str, Any]]] = {}
    for rec in kept:
        by_path.setdefault(rec["path"], []).append(rec)
    rows = []
    for rec in kept:
        same = by_path[rec["path"]]
        if rec is not same[0]:
            continue  # a later row for a file already used
        if len({r["label"] for r in same}) > 1:
            exclusions["conflicting labels"] = exclusions.get("conflicting labels", 0) + len(same)
            continue
        if len(same) > 1:
            exclusions[DUPLICATE] = exclusions.get(DUPLICATE, 0) + len(same) - 1
        group = sorted(members[groups.find(rec["original_patient_id"])], key=_id_order)
        rows.append({**rec, "patient_id": f"{NAME}/" + "+".join(group)})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _id_order(pid: str):
    return (0, int(pid), "") if pid.isdigit() else (1, 0, pid)


def read_image(record: Mapping[str, Any], options: Ieee8023Options | None = None,
               context: DatasetContext | None = None):
    """Decode one image by its content (some ``.jpg`` files hold PNG data)."""
    return read_image_file(record["path"])


def fingerprint(options: Ieee8023Options, context: DatasetContext) -> str:
    root = dataset_files.resolve_root(options.root, context, NAME, FETCH_HINT)
    metadata = root / (options.metadata or "metadata.csv")
    folders = sorted({str(f).strip() or "images"
                      for f in read_metadata(metadata)["folder"]})
    return dataset_files.fingerprint([metadata], [root / f for f in folders], salt="ieee8023-1")


def version(options: Ieee8023Options, context: DatasetContext) -> dict[str, Any]:
    """The clone's commit (else a content hash) and the finding → class mapping in force."""
    root = dataset_files.resolve_root(options.root, context, NAME, FETCH_HINT)
    metadata = root / (options.metadata or "metadata.csv")
    folders = sorted({str(f).strip() or "images" for f in read_metadata(metadata)["folder"]})
    mapping = options.mapping
    return {**dataset_files.version(root, [metadata], [root / f for f in folders]),
            "mapping": mapping if isinstance(mapping, str) else "custom",
            "finding_to_class": mapping_for(options, context)}


def fetch(dest, options: Mapping[str, Any]) -> str:
    """Clone the collection at the paper-time snapshot (``--commit latest``: the newest)."""
    import os

    url = options.get("url") or os.environ.get(URL_ENV) or URL
    commit = options.get("commit")
    latest = commit == "latest"
    head = dataset_files.git_clone(str(url), Path(dest), None if latest else commit,
                                   before=None if (latest or commit) else PAPER_SNAPSHOT)
    how = ("the newest commit" if latest else f"commit {commit}" if commit else
           f"the last commit before {PAPER_SNAPSHOT} (close to the paper's data; "
           "--commit latest for the newest)")
    return (f"ieee8023 is in {dest} at commit {head}: {how}\n"
            f"use it with: datasets: [{{name: ieee8023, options: {{root: {dest}}}}}]")


def check(options: Ieee8023Options, context: DatasetContext) -> list[str]:
    """The root, its metadata file and its ``images/`` folder (not the rows: cheap)."""
    return dataset_files.missing(options.root, context, NAME, FETCH_HINT,
                                 files=[options.metadata or "metadata.csv"], folders=["images"])


SPEC = DatasetSpec(
    name=NAME,
    description="ieee8023 COVID-19 image data collection (metadata.csv + images/)",
    records=records,
    read_image=read_image,
    options=Ieee8023Options,
    fingerprint=fingerprint,
    version=version,
    fetch=fetch,
    check=check,
)


@hookimpl
def register_datasets(register):
    register(SPEC)
