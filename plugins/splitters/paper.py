"""The paper's splits: ``paper`` (the authors' rule, redrawn) and ``files`` (their exact files).

``paper``: per fold, the authors' hand-picked ieee8023 patients are the test set of that
source and every other ieee8023 image is in every training phase; the other source (RSNA)
is shuffled and each phase takes new images per class (250 normal, 200 pneumonia), never
repeated; whatever is not drawn is test. On the full data this gives the paper's 149/1634/2000
training and 31/4420/6851 test images per fold (150/30 COVID-19 in fold 3).

``files``: the authors' published ``All.csv`` and ``fold<k>/train<i>.csv`` name every image
of every phase; the test set of a fold is ``All.csv`` minus its phases. Rows are matched to
records by file name (RSNA ``<patientId>.png`` matches the record of ``<patientId>.dcm``).

Both return the phases in ``Fold.phases`` so a run can train on exactly these images. A
patient-grouped selection split is carved from training (``select_from: train``) unless
``select_from: none``, which keeps the paper's counts for runs that select on the last
epoch or, like the authors, on the test set.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, ValidationInfo, field_validator

from harness import (
    ClassName,
    Fold,
    HarnessError,
    Options,
    SplitterContext,
    SplitterSpec,
    hookimpl,
    suite_of,
)

from .grouped_kfold import carve_selection

#: The authors' per-fold ieee8023 test patients (``patientid`` of the April 2020 metadata),
#: as listed in their training code (github.com/mr7495/covid19, commit d8da352).
PNEUMONIA_TEST_PATIENTS = ("8", "31", "171")
COVID_TEST_PATIENTS = {
    1: ("19", "20", "36", "42", "86", "13", "96", "51", "49", "116", "150", "151", "168", "56",
        "70"),
    2: ("2", "4", "6", "11", "12", "13", "14", "15", "117", "152", "163", "167", "142"),
    3: ("16", "17", "18", "21", "33", "34", "36", "37", "44", "45", "46", "47", "165", "166",
        "164", "161", "160", "132", "162", "159", "158"),
    4: ("39", "40", "41", "43", "44", "45", "46", "47", "48", "50", "51", "52", "157", "156",
        "155", "154", "153", "151", "149", "148", "147", "146", "145", "71", "72", "73", "74"),
    5: ("53", "56", "57", "58", "59", "60", "61", "62", "63", "64", "65", "66", "67", "68", "69",
        "118", "132", "139", "138", "141", "144"),
}
AUTHORS_TEST_PATIENTS = {k: v + PNEUMONIA_TEST_PATIENTS for k, v in COVID_TEST_PATIENTS.items()}

#: New images per phase and class from the drawn source (the paper: 250 normal, 200 pneumonia).
PAPER_PER_PHASE = {"normal": 250, "pneumonia": 200}
PAPER_PHASES = 8

#: The paper's Table 1 (images per class) and the per-phase share of the fixed source's
#: training images (every phase: 149 COVID-19, 150 in fold 3, and 34 pneumonia).
PAPER_TABLE1 = {"covid19": 180, "pneumonia": 6054, "normal": 8851}
PAPER_FIXED_PER_PHASE = {"covid19": 149, "pneumonia": 34}

#: Class names of the authors' CSV files → the suite's default class names.
FILE_CLASSES = {"COVID-19": "covid19", "covid": "covid19", "normal": "normal",
                "pneumonia": "pneumonia"}

class CommonOptions(Options):
    select_from: Literal["train", "none"] = Field(
        "train", description="'train': carve a patient-grouped selection split from training; "
        "'none': no selection split (the paper's exact counts)")


class PaperOptions(CommonOptions):
    fixed_source: str = Field("ieee8023", description="source whose patients are split by "
                              "the lists")
    test_patients: dict[int, list[str]] | None = Field(
        None, validate_default=True,
        description="{fold: [patient ids]}; default: the authors' lists")
    phases: int = Field(PAPER_PHASES, ge=1, description="training phases")
    per_phase: dict[ClassName, int] = Field(
        default_factory=lambda: dict(PAPER_PER_PHASE), validate_default=True,
        description="new images per phase and class from the other sources")

    @field_validator("test_patients")
    @classmethod
    def _one_list_per_fold(cls, value, info: ValidationInfo):
        """One list of test patients per fold of the suite's split (checked at --dry-run)."""
        suite = suite_of(info)
        n = len(value or AUTHORS_TEST_PATIENTS)
        if suite is not None and suite.folds is not None and n != suite.folds:
            given = "" if value else " (the authors' lists, by default)"
            raise ValueError(f"{n} lists of test patients{given}, one per fold, but "
                             f"split.folds is {suite.folds}; set split.folds: {n}")
        return value


class FilesOptions(CommonOptions):
    dir: str = Field(description="folder with All.csv and fold<k>/ (relative to the suite "
                     "file)")


def _select(records, fold_number: int, train: np.ndarray, phases: list[np.ndarray],
            options: CommonOptions, context: SplitterContext
            ) -> tuple[np.ndarray, np.ndarray, list]:
    if options.select_from == "none":
        return train, train[:0], phases
    train, select = carve_selection(records, train, context.select_fraction,
                                    context.seed + 1000 + fold_number)
    return train, select, [p[np.isin(p, train)] for p in phases]


def _original_ids(records) -> np.ndarray:
    column = "original_patient_id" if "original_patient_id" in records else "patient_id"
    return records[column].astype(str).str.strip().to_numpy()


# --- paper -------------------------------------------------------------------------------

def split_paper(records, options: PaperOptions, context: SplitterContext) -> list[Fold]:
    n_folds, seed = context.folds, context.seed
    test_patients = options.test_patients or AUTHORS_TEST_PATIENTS
    test_patients = {int(k): [str(p) for p in v] for k, v in test_patients.items()}
    if n_folds != len(test_patients):
        raise HarnessError(f"split 'paper' has {len(test_patients)} folds (one list of test "
                           f"patients per fold) but split.folds is {n_folds}; set split.folds: "
                           f"{len(test_patients)}")
    fixed_source = options.fixed_source
    per_phase = dict(options.per_phase)
    n_phases = options.phases
    sources = records["source"].astype(str).to_numpy()
    labels = records["label"].astype(str).to_numpy()
    groups = records["patient_id"].astype(str).to_numpy()
    fixed = sources == fixed_source
    if not fixed.any():
        raise HarnessError(f"split 'paper' needs records of source {fixed_source!r} (option "
                           f"'fixed_source'); the suite's records come from "
                           f"{sorted(set(sources))}")
    original = _original_ids(records)
    everything = np.arange(len(records))
    for cls, n in per_phase.items():
        available = int((~fixed & (labels == cls)).sum())
        if available < n * n_phases:
            warnings.warn(f"split 'paper': only {available} {cls} images to draw phases from, "
                          f"{n * n_phases} wanted ({n_phases} phases x {n}); the last phases "
                          "get fewer", stacklevel=2)
    folds = []
    authors = not options.test_patients and "per_phase" not in options.model_fields_set
    for k in sorted(test_patients):
        # A listed patient takes its whole group (ids sharing an image) to test.
        test_groups = set(groups[fixed & np.isin(original, test_patients[k])])
        fixed_train = np.flatnonzero(fixed & ~np.isin(groups, list(test_groups)))
        rng = np.random.default_rng([seed, k])
        drawn: list[list[np.ndarray]] = [[] for _ in range(n_phases)]
        for cls, n in per_phase.items():
            pool = rng.permutation(np.flatnonzero(~fixed & (labels == cls)))
            for i in range(n_phases):
                drawn[i].append(pool[i * n:(i + 1) * n])
        phases = [np.sort(np.concatenate([fixed_train, *d])).astype(np.int64) for d in drawn]
        train = np.unique(np.concatenate(phases)) if phases else fixed_train
        test = np.setdiff1d(everything, train)
        if authors and k == min(test_patients):
            compare_with_paper(labels, labels[fixed_train])
        train, select, phases = _select(records, k, train, phases, options, context)
        folds.append(Fold(train=train, select=select, test=test, phases=phases))
    return folds


def compare_with_paper(labels: np.ndarray, fixed_train_labels: np.ndarray) -> list[str]:
    """Warn (once) where the data differ from the paper's Table 1 or its phases.

    A newer ieee8023 copy with the ``paper`` mapping holds far more COVID-19 images than
    the authors had, which turns the rare class into the largest one in every phase.
    """
    differences = []
    for cls, paper in PAPER_FIXED_PER_PHASE.items():
        n = int((fixed_train_labels == cls).sum())
        if abs(n - paper) > 1:  # fold 3 has 150
            differences.append(f"{cls} {n} per phase, the paper {paper}")
    for cls, paper in PAPER_TABLE1.items():
        n = int((labels == cls).sum())
        if n != paper:
            differences.append(f"{cls} {n} images in all, the paper {paper}")
    if differences:
        warnings.warn("split 'paper': the data differ from the paper's Table 1 and phases: "
                      + "; ".join(differences) + " (fold 1; check the dataset versions: "
                      "`harness data fetch ieee8023` pins a copy from the paper's time)",
                      stacklevel=3)
    return differences


# --- files -------------------------------------------------------------------------------

@dataclass
class SplitFiles:
    """The authors' CSV files: every listed image, and per fold the names of each phase."""

    all_names: list[str]
    all_classes: list[str]
    folds: dict[int, list[list[str]]]


@dataclass
class FileMatch:
    """Which record each listed name is, and what could not be matched."""

    index: dict[str, int]
    unmatched: dict[str, list[str]] = field(default_factory=dict)
    label_mismatch: list[str] = field(default_factory=list)
    not_listed: int = 0

    def problems(self) -> str:
        parts = [f"{len(v)} name(s) of {where} match no record (e.g. {v[0]!r})"
                 for where, v in self.unmatched.items() if v]
        if self.label_mismatch:
            parts.append(f"{len(self.label_mismatch)} image(s) have another class in the files "
                         f"than in the records (e.g. {self.label_mismatch[0]!r})")
        if self.not_listed:
            parts.append(f"{self.not_listed} record(s) are not in All.csv and are left out")
        return "; ".join(parts)


def split_dir(options: FilesOptions, context: SplitterContext) -> Path:
    if not options.dir:
        raise HarnessError("split 'files' needs option 'dir': the folder with All.csv and "
                           "fold<k>/train<i>.csv (e.g. the authors' mr7495/covid19 split files)")
    return context.resolve(options.dir)


def check_files(options: FilesOptions, context: SplitterContext) -> list[str]:
    """``dir``, its All.csv and at least one fold<k>/ folder (not their rows: cheap)."""
    try:
        folder = split_dir(options, context)
    except HarnessError as exc:
        return [str(exc)]
    if not folder.is_dir():
        return [f"split 'files': option 'dir' points to {folder}, which is not a folder"]
    problems = []
    if not (folder / "All.csv").is_file():
        problems.append(f"split 'files': {folder / 'All.csv'} does not exist; option 'dir' "
                        "must be the folder holding All.csv and fold1/, fold2/, ...")
    if not any(p.is_dir() and p.name[4:].isdigit() for p in folder.glob("fold*")):
        problems.append(f"split 'files': no fold<k>/ folder under {folder}")
    return problems


def read_split_files(folder: Path) -> SplitFiles:
    all_csv = folder / "All.csv"
    if not all_csv.is_file():
        raise HarnessError(f"split 'files': {all_csv} does not exist; option 'dir' must be the "
                           "folder holding All.csv and fold1/, fold2/, ...")
    listed = _read_names(all_csv)
    folds: dict[int, list[list[str]]] = {}
    for fold_dir in folder.glob("fold*"):
        number = fold_dir.name[4:]
        if not (fold_dir.is_dir() and number.isdigit()):
            continue
        files = sorted((p for p in fold_dir.glob("train*.csv") if p.stem[5:].isdigit()),
                       key=lambda p: int(p.stem[5:]))
        folds[int(number)] = [_read_names(p)["filename"].tolist() for p in files]
    if not folds:
        raise HarnessError(f"split 'files': no fold<k>/train<i>.csv files under {folder}")
    return SplitFiles(all_names=listed["filename"].tolist(),
                      all_classes=listed["class"].tolist(), folds=dict(sorted(folds.items())))


def _read_names(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.columns = [c.strip() for c in frame.columns]
    if "filename" not in frame.columns:
        raise HarnessError(f"split 'files': {path} has no 'filename' column "
                           f"(columns: {', '.join(frame.columns)})")
    if "class" not in frame.columns:
        frame["class"] = ""
    frame["filename"] = frame["filename"].str.strip()
    return frame


def match_files(records, files: SplitFiles) -> FileMatch:
    """Map listed file names to record indices: exact file name first, then the stem."""
    names = (records["filename"] if "filename" in records
             else records["path"].map(lambda p: Path(str(p)).name)).astype(str).str.strip()
    by_name: dict[str, int] = {}
    by_stem: dict[str, int | None] = {}
    for i, name in enumerate(names):
        by_name.setdefault(name, i)
        stem = Path(name).stem
        by_stem[stem] = None if stem in by_stem else i  # an ambiguous stem matches nothing

    def find(name: str) -> int | None:
        if name in by_name:
            return by_name[name]
        return by_stem.get(Path(name).stem)

    match = FileMatch(index={})
    labels = records["label"].astype(str).to_numpy()
    match.unmatched["All.csv"] = []
    for name, cls in zip(files.all_names, files.all_classes):
        i = find(name)
        if i is None:
            match.unmatched["All.csv"].append(name)
            continue
        match.index[name] = i
        wanted = FILE_CLASSES.get(cls, cls)
        if cls and wanted != labels[i]:
            match.label_mismatch.append(name)
    for k, phases in files.folds.items():
        missing = match.unmatched.setdefault(f"fold{k}", [])
        for phase in phases:
            for name in phase:
                i = find(name)
                if i is None:
                    missing.append(name)
                else:
                    match.index[name] = i
    match.not_listed = len(records) - len({match.index[n] for n in files.all_names
                                           if n in match.index})
    return match


def split_files(records, options: FilesOptions, context: SplitterContext) -> list[Fold]:
    n_folds = context.folds
    files = read_split_files(split_dir(options, context))
    if n_folds != len(files.folds):
        raise HarnessError(f"split 'files': {split_dir(options, context)} has {len(files.folds)} folds "
                           f"but split.folds is {n_folds}; set split.folds: {len(files.folds)}")
    match = match_files(records, files)
    if not match.index:
        raise HarnessError(f"split 'files': no name in {split_dir(options, context)} matches any "
                           "record; check that the suite's datasets are the ones listed")
    problems = match.problems()
    if problems:
        warnings.warn(f"split 'files': {problems}", stacklevel=2)
    listed = np.unique([match.index[n] for n in files.all_names if n in match.index])
    folds = []
    for k, phase_names in files.folds.items():
        phases = [np.unique([match.index[n] for n in names if n in match.index]).astype(np.int64)
                  for names in phase_names]
        train = np.unique(np.concatenate(phases)).astype(np.int64)
        test = np.setdiff1d(listed, train).astype(np.int64)
        train, select, phases = _select(records, k, train, phases, options, context)
        folds.append(Fold(train=train, select=select, test=test, phases=phases))
    return folds


@hookimpl
def register_splitters(register):
    register(SplitterSpec(
        name="paper",
        description="the authors' per-fold ieee8023 test patients; RSNA drawn per phase "
                    "(250 normal + 200 pneumonia), the rest is test",
        split=split_paper,
        options=PaperOptions,
    ))
    register(SplitterSpec(
        name="files",
        description="the authors' published split CSVs (All.csv + fold<k>/train<i>.csv)",
        split=split_files,
        options=FilesOptions,
        check=check_files,
    ))
