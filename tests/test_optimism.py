"""The optimism gap between a suite that selects on test images and one that does not."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from harness.analysis.metrics import compute_metrics
from harness.analysis.optimism import optimism_gap
from harness.cli.main import main
from harness.errors import HarnessError
from harness.rundir.predictions import read_predictions

CLASSES = ["normal", "pneumonia", "covid19"]


def write_run(root, fold: int, accuracy: float, covid_sensitivity: float, test: str = "a"):
    """A finished run of 100 test images (10 covid19) with the given figures; ``test``
    names its test set."""
    run_id = f"concat-phased-keras-f{fold}-s0-abc123"
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    run = {"backbone": "concat", "sampler": "phased", "engine": "keras", "fold": fold,
           "seed": 0, "run_id": run_id}
    (run_dir / "config.json").write_text(json.dumps(
        {"run": run, "suite": {"name": root.name, "classes": CLASSES}}))
    true = [2] * 10 + [0] * 45 + [1] * 45
    pred = list(true)
    missed = round(10 * (1 - covid_sensitivity))
    wrong = round(100 * (1 - accuracy)) - missed
    pred[:missed] = [0] * missed
    pred[10:10 + wrong] = [1] * wrong
    uids = [f"{test}{i:03d}" for i in range(100)]
    part = {"uids": uids, "labels": [CLASSES[t] for t in true]}
    (run_dir / "plan.json").write_text(json.dumps({
        "sampler": "phased", "budget": 100, "plan": {"phases": [{"indices": [0]}]},
        "train": part, "select": {"uids": [], "labels": []}, "test": part}))
    lines = ["uid,true,pred," + ",".join(f"p_{c}" for c in CLASSES)]
    for u, t, k in zip(uids, true, pred):
        lines.append(f"{u},{CLASSES[t]},{CLASSES[k]}," + ",".join(
            "0.8" if j == k else "0.1" for j in range(3)))
    (run_dir / "predictions.csv").write_text("\n".join(lines) + "\n")
    metrics = compute_metrics(read_predictions(run_dir / "predictions.csv", CLASSES),
                              bootstrap=0)
    assert metrics["accuracy"] == pytest.approx(accuracy)
    metrics["macro_auroc"] = None  # a figure a run lacks is left out of the gap
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    (run_dir / "status.json").write_text(json.dumps({"state": "done"}))


def test_gap_is_paired_by_run_and_skips_other_test_sets(tmp_path):
    paper, clean = tmp_path / "paper", tmp_path / "clean"
    write_run(paper, 1, 0.95, 0.90)
    write_run(clean, 1, 0.90, 0.70)
    write_run(paper, 2, 0.97, 1.00)
    write_run(clean, 2, 0.93, 0.80)
    write_run(paper, 3, 0.99, 1.00, test="c")
    write_run(clean, 3, 0.50, 0.10)
    gap = optimism_gap(paper, clean)
    assert gap["pairs"] == 2 and gap["different_test_sets"] == 1
    assert gap["metrics"]["accuracy"]["mean"] == pytest.approx(0.045)
    assert gap["metrics"]["covid19_sensitivity"]["min"] == pytest.approx(0.2)
    assert "macro_auroc" not in gap["metrics"]
    out = CliRunner().invoke(main, ["optimism", str(paper), str(clean)])
    assert out.exit_code == 0, out.output
    assert "accuracy" in out.output and "+4.50" in out.output
    with pytest.raises(HarnessError, match="no finished run"):
        optimism_gap(paper, tmp_path / "nothing")


def test_the_clean_suites_report_shows_the_gap(tmp_path):
    from test_report import write_run as write_full_run

    from harness.analysis.report import render_report

    for fold in (1, 2):
        write_full_run(tmp_path / "runs" / "paper", "phased", fold, skill=3.0)
        clean = write_full_run(tmp_path / "runs" / "clean", "phased", fold, skill=1.0)
        config = json.loads((clean / "config.json").read_text())
        config["suite"]["report"] = {"bootstrap": 0, "optimism_against": "paper"}
        (clean / "config.json").write_text(json.dumps(config))
    gap = optimism_gap(tmp_path / "runs" / "paper", tmp_path / "runs" / "clean")
    assert gap["pairs"] == 2 and gap["metrics"]["accuracy"]["mean"] > 0
    html = render_report(tmp_path / "runs" / "clean", tmp_path / "out").read_text()
    assert "Optimism gap against suite paper" in html
    assert f"{100 * gap['metrics']['accuracy']['mean']:+.2f}" in html


def test_a_damaged_run_is_named_and_left_out_of_the_gap(tmp_path):
    paper, clean = tmp_path / "paper", tmp_path / "clean"
    for fold, (a, b) in enumerate([(0.95, 0.90), (0.97, 0.93)], start=1):
        write_run(paper, fold, a, 1.0)
        write_run(clean, fold, b, 1.0)
    lines = (paper / "concat-phased-keras-f2-s0-abc123" / "predictions.csv").read_text()
    (paper / "concat-phased-keras-f2-s0-abc123" / "predictions.csv").write_text(
        "\n".join(lines.splitlines()[:-1]) + "\n")   # one prediction missing
    gap = optimism_gap(paper, clean)
    assert gap["pairs"] == 1 and gap["metrics"]["accuracy"]["mean"] == pytest.approx(0.05)
    assert len(gap["damaged"]) == 1
    assert "predictions.csv: 99 rows where plan.json has 100 test images" in gap["damaged"][0]
    out = CliRunner().invoke(main, ["optimism", str(paper), str(clean)])
    assert out.exit_code == 0 and "left out, damaged:" in out.output, out.output
