"""Calibration figures and the per-source (shortcut) check of the report."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score
from test_report import write_run

from harness.analysis.calibration import (
    brier_score,
    expected_calibration_error,
    macro_auroc,
    macro_auroc_interval,
)
from harness.analysis.report import render_report
from harness.rundir.folder import RunFolder


def test_ece_is_zero_when_confidence_matches_accuracy_and_the_gap_otherwise():
    true = np.array([0] * 8 + [1] * 2)
    calibrated = np.tile([0.8, 0.2], (10, 1))  # says 80 % and is right 8 times of 10
    assert expected_calibration_error(true, calibrated) == pytest.approx(0.0)
    overconfident = np.tile([1.0, 0.0], (10, 1))
    assert expected_calibration_error(true, overconfident) == pytest.approx(0.2)
    mixed = np.array([[0.95, 0.05]] * 5 + [[0.55, 0.45]] * 5)  # two bins, each 80 % right
    true = np.array([0, 0, 0, 0, 1, 0, 0, 0, 0, 1])
    assert expected_calibration_error(true, mixed) == pytest.approx(0.5 * 0.15 + 0.5 * 0.25)


def test_brier_matches_scikit_learn_and_known_values():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 2, 200)
    p1 = rng.uniform(0, 1, 200)
    proba = np.column_stack([1 - p1, p1])
    # the multi-class form counts both columns: twice the binary score
    assert brier_score(true, proba) == pytest.approx(2 * brier_score_loss(true, p1))
    assert brier_score(np.array([0, 1, 2]), np.full((3, 3), 1 / 3)) == pytest.approx(2 / 3)
    assert brier_score(np.array([0, 2]), np.eye(3)[[0, 2]]) == 0.0


def test_auroc_interval_holds_the_estimate_and_narrows_with_more_images():
    rng = np.random.default_rng(1)

    def sample(n):
        true = rng.integers(0, 3, n)
        logits = rng.normal(size=(n, 3)) + 1.5 * np.eye(3)[true]
        return true, np.exp(logits) / np.exp(logits).sum(1, keepdims=True)

    true, proba = sample(150)
    point = macro_auroc(true, proba)
    expected = np.mean([roc_auc_score(true == k, proba[:, k]) for k in range(3)])
    assert point == pytest.approx(expected)
    low, high = macro_auroc_interval(true, proba, 300)
    assert low < point < high
    big_low, big_high = macro_auroc_interval(*sample(1500), 300)
    assert big_high - big_low < (high - low) / 2
    assert macro_auroc_interval(true, proba, 0) == (None, None)


def test_report_has_calibration_and_says_when_a_class_has_one_source(tmp_path):
    root = tmp_path / "runs" / "fixture"
    expected: dict[str, list[float]] = {"ieee8023": [], "rsna": []}
    for fold in (1, 2):
        run_dir = write_run(root, "phased", fold)
        rows = list(csv.DictReader((run_dir / "predictions.csv").open()))
        sources = ["ieee8023" if r["true"] == "covid19" else "rsna" if r["true"] == "normal"
                   else ("ieee8023" if i % 2 else "rsna") for i, r in enumerate(rows)]
        folder = RunFolder(run_dir)
        plan = folder.plan()
        plan.test.sources = sources
        folder.write_plan(plan)
        for src, values in expected.items():
            pn = [r for r, s in zip(rows, sources) if r["true"] == "pneumonia" and s == src]
            values.append(np.mean([r["pred"] == "pneumonia" for r in pn]))
    html = render_report(root, tmp_path / "out").read_text()
    assert "Reliability diagram" in html and "ECE" in html
    with (tmp_path / "out" / "sources.csv").open() as fh:
        exported = {(r["class"], r["source"]): float(r["sensitivity"]) for r in csv.DictReader(fh)}
    assert exported[("pneumonia", "rsna")] == pytest.approx(np.mean(expected["rsna"]))
    with (tmp_path / "out" / "calibration.csv").open() as fh:
        assert [r["fold"] for r in csv.DictReader(fh)] == ["1", "2"]
    assert "covid19 comes only from ieee8023" in html
    assert "normal comes only from rsna" in html
    assert "pneumonia comes only" not in html
    for src, values in expected.items():
        shown = f'<td class="label">pneumonia</td><td class="label">{src}</td>'
        assert shown in html
        assert f">{100 * np.mean(values):.2f}<" in html.split(shown)[1][:200]


def test_macro_auroc_equals_scikit_learns_with_ties():
    rng = np.random.default_rng(4)
    true = rng.integers(0, 3, 300)
    proba = rng.dirichlet([1, 1, 1], 300).round(1)  # many ties
    expected = np.mean([roc_auc_score(true == k, proba[:, k]) for k in range(3)])
    assert macro_auroc(true, proba) == pytest.approx(expected, abs=1e-12)


def test_plan_file_keeps_the_sources_the_report_reads():
    from harness.rundir.folder import PlanFile

    part = {"uids": ["a", "b"], "labels": ["normal", "covid19"], "sources": ["rsna", "ieee8023"]}
    plan = {"sampler": "phased", "budget": 2, "plan": {"phases": [{"indices": [0]}]},
            "train": part, "select": {"uids": [], "labels": []}, "test": part}
    back = PlanFile.from_json(plan).to_json()
    assert back["test"]["sources"] == ["rsna", "ieee8023"]
    assert "sources" not in back["select"]
    bad = {**plan, "test": {**part, "sources": ["rsna"]}}
    with pytest.raises(ValueError, match="1 sources"):
        PlanFile.from_json(bad)


def test_auroc_resamples_do_not_depend_on_the_block_size(monkeypatch):
    """The bootstrap computes its resamples in blocks (``ROWS``) for the CPU's cache: every
    sum is of integers, so any block size gives the same values, bit for bit."""
    from harness.analysis import calibration

    rng = np.random.default_rng(3)
    true = rng.integers(0, 3, 500)
    proba = rng.dirichlet([1, 1, 1], 500).round(2)  # rounded: ties, as in predictions.csv
    proba[:, 2] = 1 - proba[:, :2].sum(axis=1)
    counts = calibration.resample_counts(true, 3, 150, np.random.default_rng(4))
    values = {}
    for rows in (1, 7, 64, 1000):
        monkeypatch.setattr(calibration, "ROWS", rows)
        values[rows] = calibration.macro_auroc_resampled(true, proba, counts)
    assert all(np.array_equal(values[1], v) for v in values.values())
    # each resample is the Mann-Whitney AUROC of the images as often as drawn
    first = np.repeat(np.arange(500), counts[0])
    assert values[1][0] == pytest.approx(roc_auc_score(true[first], proba[first],
                                                       multi_class="ovr"), abs=1e-12)
    intervals = []
    for rows in (5, 1000):
        monkeypatch.setattr(calibration, "ROWS", rows)
        intervals.append(calibration.macro_auroc_interval(true, proba, 300, seed=1))
    assert intervals[0] == intervals[1]
    assert intervals[0][0] < calibration.macro_auroc(true, proba) < intervals[0][1]
