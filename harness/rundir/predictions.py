"""The predictions file of a run: one line per test image, its true and predicted class
and one probability per class. Written by the worker, read by the run folder's checks and by
every figure computed from it; this module is the one place its format is known.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import HarnessError


@dataclass
class Predictions:
    """A validated predictions table; labels are indices into ``classes``."""

    classes: list[str]
    uids: list[str]
    true: np.ndarray
    pred: np.ndarray
    #: (n, n_classes) probabilities, or None when the file has no ``p_`` columns.
    proba: np.ndarray | None
    source: str = ""

    def __len__(self) -> int:
        return len(self.uids)


def read_predictions(path: str | Path, classes: Sequence[str] | None = None) -> Predictions:
    """Read and check a predictions file; every problem names the file, line and column.

    ``classes`` fixes the class names and their order; without it they come from the
    ``p_<class>`` columns in header order (or, when there are none, from the labels seen).
    """
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"{path}: no such predictions file")
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise HarnessError(f"{path}: empty file; expected a header line "
                           "'uid,true,pred,p_<class>,...' and one line per image")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in ("uid", "true", "pred") if c not in header]
    if missing:
        raise HarnessError(
            f"{path}: missing column(s) {', '.join(missing)} in the header (found: "
            f"{', '.join(header)}); a predictions file needs uid,true,pred and one "
            "p_<class> column per class")
    prob_cols = [h for h in header if h.startswith("p_")]
    if classes is not None:
        classes = list(classes)
        wanted = [f"p_{c}" for c in classes]
        absent = [c for c in wanted if c not in header]
        if prob_cols and absent:
            raise HarnessError(
                f"{path}: missing column(s) {', '.join(absent)} for classes "
                f"{', '.join(classes)} (found: {', '.join(header)}); write one p_<class> column "
                "per class or pass the file's classes with --classes")
        extra = [c for c in prob_cols if c not in wanted]
        if extra:
            raise HarnessError(
                f"{path}: column(s) {', '.join(extra)} name no class of {', '.join(classes)}; "
                "pass the file's classes with --classes")
        prob_cols = wanted if prob_cols else []
    elif prob_cols:
        classes = [c[2:] for c in prob_cols]

    body = rows[1:]
    while body and not any(cell.strip() for cell in body[-1]):
        body.pop()  # a trailing blank line is harmless
    if not body:
        raise HarnessError(f"{path}: a header but no predictions (the file looks truncated); "
                           "re-run the run that wrote it")
    for i, row in enumerate(body):
        if len(row) != len(header):
            raise HarnessError(
                f"{path}, line {i + 2}: {len(row)} field(s) where the header has "
                f"{len(header)} (the file looks truncated or hand-edited); re-run the run "
                "that wrote it or fix that line")

    col = {name: header.index(name) for name in header}
    uids = [row[col["uid"]].strip() for row in body]
    if classes is None:
        seen = {row[col[k]].strip() for row in body for k in ("true", "pred")}
        classes = sorted(seen)
    index = {c: k for k, c in enumerate(classes)}
    labels = {}
    for name in ("true", "pred"):
        values = np.empty(len(body), dtype=np.int64)
        for i, row in enumerate(body):
            value = row[col[name]].strip()
            if value not in index:
                raise HarnessError(
                    f"{path}, line {i + 2}, column '{name}': unknown label {value!r}; known "
                    f"classes: {', '.join(classes)} (pass the file's classes with --classes)")
            values[i] = index[value]
        labels[name] = values

    proba = None
    if prob_cols:
        proba = np.empty((len(body), len(prob_cols)), dtype=np.float64)
        for j, name in enumerate(prob_cols):
            for i, row in enumerate(body):
                text = row[col[name]].strip()
                try:
                    value = float(text)
                except ValueError:
                    value = math.nan
                if not math.isfinite(value):
                    raise HarnessError(
                        f"{path}, line {i + 2}, column '{name}': {text!r} is not a finite "
                        "number; probabilities must be numbers (the file may be truncated)")
                proba[i, j] = value
    return Predictions(classes=list(classes), uids=uids, true=labels["true"],
                       pred=labels["pred"], proba=proba, source=str(path))


def predictions_csv(uids: list[str], true: list[str], probs: np.ndarray,
                    classes: list[str]) -> str:
    """The file's text: the predicted class is the most probable one."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["uid", "true", "pred"] + [f"p_{c}" for c in classes])
    for uid, t, p in zip(uids, true, probs):
        writer.writerow([uid, t, classes[int(np.argmax(p))]] + [f"{v:.6f}" for v in p])
    return buf.getvalue()


def confusion(true: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows = true class, columns = predicted class (the paper's Figure 4)."""
    codes = np.asarray(true) * n_classes + np.asarray(pred)
    return np.bincount(codes, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
