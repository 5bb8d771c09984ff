"""The shipped paper suites against the authors' published split files.

``suites/paper.yaml`` must plan, for every fold, the authors' phases (the ieee8023 images of
every phase and the number of new RSNA images per phase and class) and their test set, and
select on their 631 test images; with the authors' own RSNA draw (``split: files``) every
phase is their file, image for image. ``suites/paper-clean.yaml`` must keep the test sets
and select on training patients only.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED
from fixtures_data import records_from_all_csv

from harness.config.suite import expand, load_suite
from harness.data.prepare import check_folds, make_folds
from harness.plugin.check import check_data_options, check_suite
from harness.plugin.registry import build_registry
from harness.plugin.resolved import resolve
from harness.runs.runner import plan_for

SUITES = Path(__file__).resolve().parents[1] / "suites"
SPLITS = SHARED / "paper" / "mr7495-splits"
MINI = SHARED / "data" / "ieee8023-mini"
RSNA = re.compile(r"[0-9a-f-]{36}\.png")

pytestmark = pytest.mark.skipif(not SPLITS.is_dir(), reason="the authors' split files are absent")


def authors_phases(fold: int) -> list[set[str]]:
    return [set(pd.read_csv(SPLITS / f"fold{fold}" / f"train{i}.csv")["filename"])
            for i in range(1, 9)]


def names(plan: dict, part: str, idx=None) -> set[str]:
    uids = np.asarray(plan[part]["uids"])
    chosen = uids if idx is None else uids[np.asarray(idx, dtype=np.int64)]
    return {u[2:].replace(".dcm", ".png") for u in chosen}


def names_list(plan: dict, part: str) -> list[str]:
    return [u[2:].replace(".dcm", ".png") for u in plan[part]["uids"]]


def plans(suite_file: str, records: pd.DataFrame, **split) -> dict[int, dict]:
    """plan.json of the concat run of every fold, as ``harness run`` would write it."""
    suite = load_suite(SUITES / suite_file)
    if split:
        suite.split = dataclasses.replace(suite.split, **split)
    registry = build_registry(suite.plugins)
    checked = check_suite(suite, registry, backbones=False)
    folds = make_folds(suite, records, registry, checked)
    runs = [resolve(suite, checked, r) for r in expand(suite) if r.backbone == "concat"]
    return {r.run.fold: plan_for(r, records, folds[r.run.fold - 1], registry) for r in runs}


@pytest.fixture(scope="module")
def all_records() -> pd.DataFrame:
    return records_from_all_csv(SPLITS)


@pytest.fixture(scope="module")
def records_with_patients(all_records) -> pd.DataFrame:
    """All.csv with the ieee8023 patient ids of the metadata (the split needs them); the 8
    ieee8023 images of All.csv that the mini copy lacks are left out."""
    if not MINI.is_dir():
        pytest.skip("ieee8023-mini not present")
    meta = pd.read_csv(MINI / "metadata.csv", dtype=str, keep_default_na=False)
    ids = dict(zip(meta["filename"].str.strip(), meta["patientid"].str.strip()))
    records = all_records.copy()
    ieee = records["source"] == "ieee8023"
    records["original_patient_id"] = [ids.get(n, "") if i else n
                                      for n, i in zip(records["filename"], ieee)]
    records = records[~ieee | (records["original_patient_id"] != "")].reset_index(drop=True)
    assert (records["source"] == "ieee8023").sum() == 214
    records["patient_id"] = records["source"] + "/" + records["original_patient_id"]
    return records


def is_rsna(name: str) -> bool:
    return RSNA.fullmatch(name) is not None


def test_paper_suite_plans_the_authors_phases_test_set_and_selection(records_with_patients):
    records = records_with_patients
    known = {n.replace(".dcm", ".png") for n in records["filename"]}
    listed = set(pd.read_csv(SPLITS / "All.csv")["filename"]) & known
    for k, plan in plans("paper.yaml", records).items():
        uids = names_list(plan, "train")
        labels = plan["train"]["labels"]
        theirs = [p & known for p in authors_phases(k)]
        rsna_seen: set[str] = set()
        assert len(plan["plan"]["phases"]) == 8
        for phase, their in zip(plan["plan"]["phases"], theirs):
            ours = {uids[i] for i in phase["indices"]}
            assert {n for n in ours if not is_rsna(n)} == {n for n in their if not is_rsna(n)}
            drawn = [labels[i] for i in phase["indices"] if is_rsna(uids[i])]
            assert (drawn.count("normal"), drawn.count("pneumonia")) == (250, 200)
            assert len(drawn) == len(their) - len([n for n in their if not is_rsna(n)])
            new = {n for n in ours if is_rsna(n)}
            assert not rsna_seen & new  # new RSNA images every phase
            rsna_seen |= new
        distinct = set().union(*theirs)
        assert len(set(uids)) == len(distinct)
        their_test = listed - distinct
        ours_test = names(plan, "test")
        assert len(ours_test) == len(their_test)
        assert {n for n in ours_test if not is_rsna(n)} == {n for n in their_test
                                                            if not is_rsna(n)}
        select = names(plan, "select")
        covid_test = {u for u, lab in zip(names_list(plan, "test"), plan["test"]["labels"])
                      if lab == "covid19"}
        assert select <= ours_test and covid_test <= select
        assert len(select) == len(covid_test) + 600
        assert sorted(pd.Series(plan["select"]["labels"]).value_counts().items()) == sorted(
            [("covid19", len(covid_test)), ("normal", 300), ("pneumonia", 300)])


def test_paper_suite_with_the_authors_draw_is_their_files_image_for_image(all_records):
    listed = set(pd.read_csv(SPLITS / "All.csv")["filename"])
    result = plans("paper.yaml", all_records, kind="files",
                   options={"dir": str(SPLITS), "select_from": "none"})
    for k, plan in result.items():
        theirs = authors_phases(k)
        ours = [names(plan, "train", p["indices"]) for p in plan["plan"]["phases"]]
        assert ours == theirs
        distinct = set().union(*theirs)
        assert len(distinct) == (3784 if k == 3 else 3783)
        assert names(plan, "test") == listed - distinct
        counts = pd.Series(plan["test"]["labels"]).value_counts().to_dict()
        covid = 30 if k == 3 else 31
        assert counts == {"normal": 6851, "pneumonia": 4420, "covid19": covid}
        phase_counts = plan["phase_class_counts"]
        assert phase_counts == [{"normal": 250, "pneumonia": 234, "covid19": 180 - covid}] * 8
        select = pd.Series(plan["select"]["labels"]).value_counts().to_dict()
        assert select == {"normal": 300, "pneumonia": 300, "covid19": covid}
        assert len(plan["select"]["uids"]) == (630 if k == 3 else 631)
        assert set(plan["select"]["uids"]) <= set(plan["test"]["uids"])
    again = plans("paper.yaml", all_records, kind="files",
                  options={"dir": str(SPLITS), "select_from": "none"})
    assert again[2]["select"] == result[2]["select"]  # the same set every time


def test_paper_clean_keeps_the_test_sets_and_never_selects_on_them(records_with_patients):
    records = records_with_patients
    paper = plans("paper.yaml", records)
    clean = plans("paper-clean.yaml", records)
    suite = load_suite(SUITES / "paper-clean.yaml")
    registry = build_registry()
    check_folds(make_folds(suite, records, registry, check_data_options(suite, registry)),
                records, "paper")
    for k in paper:
        assert clean[k]["test"] == paper[k]["test"]
        select = set(clean[k]["select"]["uids"])
        assert select and not select & set(clean[k]["test"]["uids"])
        assert not select & set(clean[k]["train"]["uids"])
        assert {"covid19", "pneumonia", "normal"} <= set(clean[k]["select"]["labels"])
        for ours, theirs in zip(clean[k]["plan"]["phases"], paper[k]["plan"]["phases"]):
            assert names(clean[k], "train", ours["indices"]) <= names(
                paper[k], "train", theirs["indices"])
