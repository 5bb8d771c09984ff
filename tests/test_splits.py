"""Stratified, patient-grouped folds with a grouped selection split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plugin_calls as calls
import pytest
from harness_plugins.splitters.grouped_kfold import split

from harness import Options
from harness.data.prepare import check_folds
from harness.errors import HarnessError
from harness.plugin.specs import Fold


def make_records(n_patients=200, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        label = rng.choice(["normal", "pneumonia", "covid19"], p=[0.6, 0.34, 0.06])
        for k in range(rng.integers(1, 4)):  # one to three images per patient
            rows.append({"uid": f"u{p}-{k}", "label": label, "patient_id": f"p{p}"})
    return pd.DataFrame(rows)


def test_no_patient_crosses_parts_and_test_sets_partition():
    records = make_records()
    folds = calls.split(split, Options, records, 5, 0, {"select_fraction": 0.2})
    assert len(folds) == 5
    patients = records["patient_id"].to_numpy()
    all_test = np.concatenate([f.test for f in folds])
    assert sorted(all_test) == list(range(len(records)))  # every image tested exactly once
    for f in folds:
        parts = [set(patients[f.train]), set(patients[f.select]), set(patients[f.test])]
        assert not parts[0] & parts[1] and not parts[0] & parts[2] and not parts[1] & parts[2]
        assert len(f.train) + len(f.select) + len(f.test) == len(records)
        assert 0.1 < len(f.select) / (len(f.train) + len(f.select)) < 0.3


def test_folds_are_stratified_and_deterministic():
    records = make_records()
    folds = calls.split(split, Options, records, 4, 3, {})
    overall = (records["label"] == "covid19").mean()
    for f in folds:
        share = (records["label"].to_numpy()[f.test] == "covid19").mean()
        assert abs(share - overall) < 0.05
    again = calls.split(split, Options, records, 4, 3, {})
    assert all(np.array_equal(a.test, b.test) for a, b in zip(folds, again))
    other = calls.split(split, Options, records, 4, 4, {})
    assert not all(np.array_equal(a.test, b.test) for a, b in zip(folds, other))


def test_too_few_patients_is_a_clear_error():
    records = make_records(n_patients=3)
    with pytest.raises(HarnessError, match="only 3 patients; lower split.folds"):
        calls.split(split, Options, records, 5, 0, {})


def test_leak_check_names_the_patient():
    records = pd.DataFrame({"patient_id": ["a", "a", "b"], "label": ["normal"] * 3})
    leaky = Fold(train=np.array([0]), select=np.array([], dtype=int), test=np.array([1, 2]))
    with pytest.raises(HarnessError, match="patient 'a' is in both train and test"):
        check_folds([leaky], records, "custom")
