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
    columns = list(zip(*body))  # one tuple of cells per column
    uids = [u.strip() for u in columns[col["uid"]]]
    if classes is None:
        seen = {v.strip() for k in ("true", "pred") for v in columns[col[k]]}
        classes = sorted(seen)
    index = {c: k for k, c in enumerate(classes)}
    labels = {}
    for name in ("true", "pred"):
        cells = columns[col[name]]
        try:
            labels[name] = np.fromiter((index[v.strip()] for v in cells), dtype=np.int64,
                                       count=len(cells))
        except KeyError:
            i = next(i for i, v in enumerate(cells) if v.strip() not in index)
            raise HarnessError(
                f"{path}, line {i + 2}, column '{name}': unknown label {cells[i].strip()!r}; "
                f"known classes: {', '.join(classes)} (pass the file's classes with --classes)"
            ) from None

    proba = None
    if prob_cols:
        # Whole columns at once (numpy parses the decimal strings); a cell that is not a
        # finite number is then looked for cell by cell, to name its line.
        proba = np.empty((len(body), len(prob_cols)), dtype=np.float64)
        for j, name in enumerate(prob_cols):
            cells = columns[col[name]]
            try:
                proba[:, j] = np.asarray(cells, dtype=np.float64)
                bad = np.flatnonzero(~np.isfinite(proba[:, j]))
            except ValueError:
                bad = [i for i, text in enumerate(cells) if not _finite(text)]
            if len(bad):
                i = int(bad[0])
                raise HarnessError(
                    f"{path}, line {i + 2}, column '{name}': {cells[i].strip()!r} is not a "
                    "finite number; probabilities must be numbers (the file may be truncated)")
    return Predictions(classes=list(classes), uids=uids, true=labels["true"],
                       pred=labels["pred"], proba=proba, source=str(path))


def _finite(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


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
