"""Stratified, patient-grouped k folds with a patient-grouped selection split.

Folds are drawn over patients, not images: each patient gets one label (its rarest class,
so a patient with any COVID-19 image counts as COVID-19) and scikit-learn's
``StratifiedKFold`` / ``StratifiedShuffleSplit`` stratify the patients. Every image of a
patient follows its patient, so no patient is on two sides, and the cost stays linear in
the number of patients (``StratifiedGroupKFold`` is quadratic-ish and takes minutes on RSNA).
"""

from __future__ import annotations

import warnings

import numpy as np

from harness import Fold, HarnessError, Options, SplitterContext, SplitterSpec, hookimpl


def patient_table(records, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(patients, patient label, image → patient position) for the images ``idx``."""
    groups = records["patient_id"].astype(str).to_numpy()[idx]
    labels = records["label"].astype(str).to_numpy()[idx]
    patients, where = np.unique(groups, return_inverse=True)
    classes, counts = np.unique(labels, return_counts=True)
    rarity = {c: r for r, c in enumerate(classes[np.argsort(counts, kind="stable")])}
    patient_label = np.full(len(patients), len(classes), dtype=np.int64)
    np.minimum.at(patient_label, where, np.array([rarity[x] for x in labels], dtype=np.int64))
    return patients, patient_label, where


def _stratify(labels: np.ndarray, n_splits: int) -> np.ndarray:
    """Classes with fewer patients than splits cannot be stratified: pool them."""
    values, counts = np.unique(labels, return_counts=True)
    rare = values[counts < n_splits]
    out = labels.copy()
    if len(rare):
        out[np.isin(out, rare)] = rare[0]
    return out


def carve_selection(records, train_idx: np.ndarray, fraction: float, seed: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Split ``train_idx`` into (train, select) by patient, stratified by patient label."""
    from sklearn.model_selection import StratifiedShuffleSplit

    train_idx = np.asarray(train_idx, dtype=np.int64)
    patients, labels, where = patient_table(records, train_idx)
    n_select = round(len(patients) * fraction)
    if n_select < 1 or len(patients) - n_select < 1:
        return train_idx, train_idx[:0]
    strata = _stratify(labels, 2)
    try:
        _, select = next(StratifiedShuffleSplit(1, test_size=n_select, random_state=seed)
                            .split(patients, strata))
    except ValueError:  # too few patients per class to stratify: plain shuffle
        order = np.random.default_rng(seed).permutation(len(patients))
        select = order[:n_select]
    chosen = np.zeros(len(patients), dtype=bool)
    chosen[select] = True
    return np.sort(train_idx[~chosen[where]]), np.sort(train_idx[chosen[where]])


def split(records, options: Options, context: SplitterContext) -> list[Fold]:
    from sklearn.model_selection import StratifiedKFold

    n_folds, seed = context.folds, context.seed
    everything = np.arange(len(records))
    patients, labels, where = patient_table(records, everything)
    if len(patients) < n_folds:
        raise HarnessError(f"split.folds is {n_folds} but the data has only {len(patients)} "
                           "patients; lower split.folds")
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a class with fewer patients than folds cannot be in all
        warnings.simplefilter("ignore", UserWarning)
        parts = list(splitter.split(patients, _stratify(labels, n_folds)))
    folds = []
    for k, (_, test_patients) in enumerate(parts):
        in_test = np.zeros(len(patients), dtype=bool)
        in_test[test_patients] = True
        test = everything[in_test[where]]
        train, select = carve_selection(records, everything[~in_test[where]],
                                        context.select_fraction, seed + 1000 + k)
        folds.append(Fold(train=train, select=select, test=test))
    return folds


@hookimpl
def register_splitters(register):
    register(SplitterSpec(
        name="grouped-kfold",
        description="Stratified k folds grouped by patient, with a patient-grouped selection split",
        split=split,
    ))
