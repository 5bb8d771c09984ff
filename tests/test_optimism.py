"""The optimism gap between a suite that selects on test images and one that does not."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from harness.analysis.optimism import optimism_gap
from harness.cli.main import main
from harness.errors import HarnessError


def write_run(root, fold: int, accuracy: float, covid_sensitivity: float, test=("a", "b")):
    run_dir = root / f"concat-phased-keras-f{fold}-s0-abc123"
    run_dir.mkdir(parents=True)
    run = {"backbone": "concat", "sampler": "phased", "engine": "keras", "fold": fold,
           "seed": 0}
    (run_dir / "config.json").write_text(json.dumps({"run": run}))
    (run_dir / "plan.json").write_text(json.dumps({"test": {"uids": list(test)}}))
    (run_dir / "metrics.json").write_text(json.dumps({
        "accuracy": accuracy, "macro_auroc": None,
        "per_class": {"covid19": {"sensitivity": covid_sensitivity}}}))
    (run_dir / "predictions.csv").write_text("uid,true,pred\n")
    (run_dir / "status.json").write_text(json.dumps({"state": "done"}))


def test_gap_is_paired_by_run_and_skips_other_test_sets(tmp_path):
    paper, clean = tmp_path / "paper", tmp_path / "clean"
    write_run(paper, 1, 0.95, 0.90)
    write_run(clean, 1, 0.90, 0.70)
    write_run(paper, 2, 0.97, 1.00)
    write_run(clean, 2, 0.93, 0.80)
    write_run(paper, 3, 0.99, 1.00, test=("c",))
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
