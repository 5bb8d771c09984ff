"""The paper's split kinds on records with the paper's full composition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plugin_calls as calls
import pytest
from fixtures_data import paper_records, records_from_all_csv
from harness_plugins.splitters import paper
from harness_plugins.splitters.paper import (
    AUTHORS_TEST_PATIENTS,
    match_files,
    read_split_files,
)

from harness.data.prepare import check_folds
from harness.errors import HarnessError

ORDER = ["covid19", "pneumonia", "normal"]


def composition(records, idx) -> list[int]:
    counts = records["label"].iloc[idx].value_counts()
    return [int(counts.get(c, 0)) for c in ORDER]


@pytest.fixture(scope="module")
def records():
    return paper_records()


@pytest.fixture(scope="module")
def folds(records):
    return calls.split(paper.split_paper, paper.PaperOptions, records, 5, 0, {"select_from": "none"})


def test_paper_split_gives_the_papers_composition_every_fold(records, folds):
    assert composition(records, np.arange(len(records))) == [180, 6054, 8851]
    for k, fold in enumerate(folds, start=1):
        covid_train = 150 if k == 3 else 149
        assert composition(records, fold.train) == [covid_train, 1634, 2000]
        assert composition(records, fold.test) == [180 - covid_train, 4420, 6851]
        assert len(fold.select) == 0
        assert len(fold.phases) == 8
        assert {len(p) for p in fold.phases} == {covid_train + 34 + 200 + 250}
        assert composition(records, fold.phases[0]) == [covid_train, 234, 250]
    check_folds(folds, records, "paper")


def test_phases_draw_new_rsna_images_and_repeat_all_ieee_training_images(records, folds):
    rsna = records["source"].to_numpy() == "rsna"
    for fold in folds:
        drawn = np.concatenate([p[rsna[p]] for p in fold.phases])
        assert len(drawn) == len(np.unique(drawn)) == 3600
        ieee = [set(p[~rsna[p]]) for p in fold.phases]
        assert all(s == ieee[0] for s in ieee)
        assert set(np.concatenate(fold.phases)) == set(fold.train)


def test_the_authors_test_patients_are_the_ieee_test_set(records, folds):
    ieee = records["source"] == "ieee8023"
    for k, fold in enumerate(folds, start=1):
        test_ids = set(records["original_patient_id"].iloc[fold.test][ieee.iloc[fold.test]])
        assert test_ids == set(AUTHORS_TEST_PATIENTS[k])


def test_the_draw_follows_the_seed(records, folds):
    again = calls.split(paper.split_paper, paper.PaperOptions, records, 5, 0, {"select_from": "none"})
    other = calls.split(paper.split_paper, paper.PaperOptions, records, 5, 1, {"select_from": "none"})
    assert all(np.array_equal(a.phases[3], b.phases[3]) for a, b in zip(folds, again))
    assert not np.array_equal(folds[0].phases[0], other[0].phases[0])


def test_a_selection_split_is_carved_from_training(records):
    small = records[(records["source"] == "ieee8023")
                    | (records.groupby("label").cumcount() < 700)].reset_index(drop=True)
    folds = calls.split(paper.split_paper, paper.PaperOptions, small, 5, 0, {"select_from": "train", "select_fraction": 0.2,
                                      "per_phase": {"normal": 40, "pneumonia": 30}})
    check_folds(folds, small, "paper")
    for fold in folds:
        assert len(fold.select) > 0
        assert not set(fold.select) & set(np.concatenate(fold.phases))
        total = composition(small, np.concatenate([fold.train, fold.select]))
        assert total[1:] == [34 + 240, 320]


def test_the_papers_composition_gives_no_warning_and_a_newer_copy_does(records):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calls.split(paper.split_paper, paper.PaperOptions, records, 5, 0, {"select_from": "none"})
    # a June-2020-like copy: many more COVID-19 images of patients outside the test lists
    extra = records[records["label"] == "covid19"].copy()
    extra["uid"] = extra["uid"] + "-new"
    extra["patient_id"] = extra["patient_id"] + "-new"
    extra["original_patient_id"] = "new" + extra["original_patient_id"]
    newer = pd.concat([records, extra], ignore_index=True)
    with pytest.warns(UserWarning) as caught:
        calls.split(paper.split_paper, paper.PaperOptions, newer, 5, 0, {"select_from": "none"})
    (message,) = [str(w.message) for w in caught]
    assert "covid19 329 per phase, the paper 149" in message
    assert "covid19 360 images in all, the paper 180" in message


def test_wrong_fold_count_or_missing_source_is_explained(records):
    with pytest.raises(HarnessError, match="split.folds is 3; set split.folds: 5"):
        calls.split(paper.split_paper, paper.PaperOptions, records, 3, 0, {})
    rsna_only = records[records["source"] == "rsna"].reset_index(drop=True)
    with pytest.raises(HarnessError, match="needs records of source 'ieee8023'"):
        calls.split(paper.split_paper, paper.PaperOptions, rsna_only, 5, 0, {})


def test_too_few_images_to_draw_warns_once(records):
    ieee_only = records[records["source"] == "ieee8023"].reset_index(drop=True)
    with pytest.warns(UserWarning) as caught:
        folds = calls.split(paper.split_paper, paper.PaperOptions, ieee_only, 5, 0, {"select_from": "none"})
    messages = sorted(str(w.message) for w in caught if "only" in str(w.message))
    assert len(messages) == 2  # normal and pneumonia, not once per fold
    assert messages[0].startswith("split 'paper': only 0 normal images to draw phases from")
    assert composition(ieee_only, folds[0].test) == [31, 8, 0]


# --- files: the authors' published split ---------------------------------------------------

@pytest.fixture
def split_dir(shared_file):
    return shared_file("paper/mr7495-splits/All.csv").parent


def test_files_split_reproduces_the_published_phases(split_dir):
    records = records_from_all_csv(split_dir)
    assert match_files(records, read_split_files(split_dir)).problems() == ""
    folds = calls.split(paper.split_files, paper.FilesOptions, records, 5, 0, {"dir": str(split_dir), "select_from": "none"})
    for k, fold in enumerate(folds, start=1):
        covid_train = 150 if k == 3 else 149
        assert composition(records, fold.train) == [covid_train, 1634, 2000]
        assert composition(records, fold.test) == [180 - covid_train, 4420, 6851]
        assert [len(p) for p in fold.phases] == [covid_train + 484] * 8
    published = set(pd.read_csv(split_dir / "fold2" / "train5.csv")["filename"])
    phase = records["filename"].iloc[folds[1].phases[4]].str.replace(".dcm", ".png")
    assert set(phase) == published


def test_files_split_reports_unmatched_names(split_dir, tmp_path):
    records = records_from_all_csv(split_dir).iloc[500:].reset_index(drop=True)
    with pytest.warns(UserWarning, match=r"500 name\(s\) of All.csv match no record"):
        folds = calls.split(paper.split_files, paper.FilesOptions, records, 5, 0, {"dir": str(split_dir), "select_from": "none"})
    assert len(folds) == 5
    with pytest.raises(HarnessError, match="has 5 folds but split.folds is 4"):
        calls.split(paper.split_files, paper.FilesOptions, records, 4, 0, {"dir": str(split_dir)})
    with pytest.raises(HarnessError, match="All.csv does not exist"):
        calls.split(paper.split_files, paper.FilesOptions, records, 5, 0, {"dir": str(tmp_path)})


def test_files_split_on_the_real_ieee_mini_keeps_patients_apart(split_dir, shared_file):
    from harness_plugins.datasets import ieee8023

    root = shared_file("data/ieee8023-mini")
    records = calls.records(ieee8023, {"root": str(root), "classes": ["normal", "pneumonia", "covid19"]})
    with pytest.warns(UserWarning, match="record\\(s\\) are not in All.csv"):
        folds = calls.split(paper.split_files, paper.FilesOptions, records, 5, 0, {"dir": str(split_dir), "select_from": "none"})
    check_folds(folds, records, "files")
    matched = match_files(records, read_split_files(split_dir))
    # 214 of the authors' 222 ieee8023 images are in the mini set; two of them are lateral
    # views in this (June 2020) metadata, so the default view filter leaves them out.
    assert len(matched.index) == 212 and not matched.label_mismatch
