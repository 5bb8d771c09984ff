"""Stratified, patient-grouped k folds with a patient-grouped selection split.

scikit-learn's ``StratifiedGroupKFold`` does the hard part: folds keep class proportions
while every patient stays on one side.
"""

from __future__ import annotations

import warnings

import numpy as np

from harness import Fold, Option, SplitterSpec, hookimpl
from harness.errors import HarnessError


def _groups(records) -> np.ndarray:
    return records["patient_id"].astype(str).to_numpy()


def carve_selection(records, train_idx: np.ndarray, fraction: float, seed: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Split ``train_idx`` into (train, select), patient-grouped and stratified."""
    from sklearn.model_selection import StratifiedGroupKFold

    train_idx = np.asarray(train_idx, dtype=np.int64)
    n_splits = max(2, int(round(1.0 / fraction)))
    labels = records["label"].to_numpy()[train_idx]
    groups = _groups(records)[train_idx]
    if len(np.unique(groups)) < n_splits:
        return train_idx, train_idx[:0]
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a class rarer than n_splits is expected (covid19)
        warnings.simplefilter("ignore", UserWarning)
        keep, select = next(splitter.split(train_idx, labels, groups))
    return np.sort(train_idx[keep]), np.sort(train_idx[select])


def split(records, n_folds: int, seed: int, options) -> list[Fold]:
    from sklearn.model_selection import StratifiedGroupKFold

    labels = records["label"].to_numpy()
    groups = _groups(records)
    n_groups = len(np.unique(groups))
    if n_groups < n_folds:
        raise HarnessError(f"split.folds is {n_folds} but the data has only {n_groups} "
                           "patients; lower split.folds")
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = []
    for k, (train, test) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
        train, select = carve_selection(records, train, options.get("select_fraction", 0.15),
                                        seed + 1000 + k)
        folds.append(Fold(train=train, select=select, test=np.sort(test)))
    return folds


@hookimpl
def register_splitters(register):
    register(SplitterSpec(
        name="grouped-kfold",
        description="Stratified k folds grouped by patient, with a patient-grouped selection split",
        split=split,
        options=(Option("select_fraction", "fraction of training patients held out for "
                        "model selection", 0.15),),
    ))
