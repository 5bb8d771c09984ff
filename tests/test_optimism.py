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


def write_run(root, fold: int, accuracy: float, covid_sensitivity: float, test: str = "a",
              train: int = 0, selection: str = "holdout"):
    """A finished run of 100 test images (10 covid19) with the given figures; ``test``
    names its test set; ``train`` > 0 gives it that many training images of its own
    (else it trains on the 100 images named like its test set, as every other run)."""
    run_id = f"concat-phased-keras-f{fold}-s0-abc123"
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    run = {"backbone": "concat", "sampler": "phased", "engine": "keras", "fold": fold,
           "seed": 0, "run_id": run_id,
           "training": {"epochs_per_phase": 100, "selection": selection}}
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
    trained = part if not train else {"uids": [f"tr{i:04d}" for i in range(train)],
                                      "labels": ["normal"] * train}
    (run_dir / "plan.json").write_text(json.dumps({
        "sampler": "phased", "budget": 100, "plan": {"phases": [{"indices": [0]}]},
        "train": trained, "select": {"uids": [], "labels": []}, "test": part}))
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


def test_the_gap_says_whether_it_is_selection_alone(tmp_path):
    """The issue's case: ``paper`` trains on 3,776 images in fold 1 where ``paper-clean``
    trains on 3,212; a test-selected twin of paper-clean trains on exactly its images."""
    paper, clean, twin = tmp_path / "paper", tmp_path / "clean", tmp_path / "twin"
    write_run(paper, 1, 0.97, 1.0, train=3776, selection="paper")
    write_run(clean, 1, 0.90, 1.0, train=3212)
    write_run(twin, 1, 0.95, 1.0, train=3212, selection="paper")
    confounded = optimism_gap(paper, clean)
    assert confounded["selection_only"] is False
    assert confounded["compared"].startswith("selection and training: 1 of 1 pairs")
    assert "3,776 vs 3,212 training images" in confounded["compared"]
    assert confounded["unlike_pairs"][0]["differences"] == ["3,776 vs 3,212 training images"]
    isolated = optimism_gap(twin, clean)
    assert isolated["selection_only"] is True and not isolated["unlike_pairs"]
    assert isolated["compared"].startswith("selection only")
    assert isolated["metrics"]["accuracy"]["mean"] == pytest.approx(0.05)
    out = CliRunner().invoke(main, ["optimism", str(twin), str(clean)])
    assert out.exit_code == 0 and "compared: selection only" in out.output, out.output
    # A setting that changes training (not selection) breaks the pairing's likeness too.
    config = json.loads((twin / "concat-phased-keras-f1-s0-abc123" / "config.json").read_text())
    config["run"]["training"]["epochs_per_phase"] = 50
    (twin / "concat-phased-keras-f1-s0-abc123" / "config.json").write_text(json.dumps(config))
    assert optimism_gap(twin, clean)["unlike_pairs"][0]["differences"] == [
        "settings epochs_per_phase"]


def test_a_test_selected_twin_trains_exactly_as_the_clean_suite(make_suite, tmp_path):
    """End to end with the centroid engine: the same split with a held-out selection part,
    checkpoints chosen on it (clean) or on test images (twin). Every epoch trains the same,
    so the gap is selection alone; the report of the clean suite says so."""
    from harness.analysis.report import render_report
    from harness.rundir.folder import RunFolder
    from harness.runs.runner import run_suite

    def run(name, selection, **report):
        suite = make_suite(name, split={"select_fraction": 0.2},
                           training={"epochs_per_phase": 3, "batch_size": 16,
                                     "weights": "none", "selection": selection,
                                     "select_per_class": 10},
                           report={"bootstrap": 0, **report})
        run_suite(suite, runs_root=tmp_path / "runs", reports_root=tmp_path / "reports",
                  echo=lambda m: None, show_progress=False, render=False)
        return tmp_path / "runs" / name

    clean = run("clean", "holdout", optimism_against="twin")
    twin = run("twin", "paper")
    for a in sorted(p for p in clean.iterdir() if p.is_dir()):
        b = next(twin.glob(a.name.split("-s0-")[0] + "-s0-*"))
        plan_a, plan_b = (RunFolder(d).plan_document() for d in (a, b))
        assert plan_a["train"] == plan_b["train"] and plan_a["plan"] == plan_b["plan"]
        assert plan_a["test"] == plan_b["test"]
        assert set(plan_b["select"]["uids"]) <= set(plan_b["test"]["uids"])
        assert not set(plan_a["select"]["uids"]) & set(plan_a["test"]["uids"])
        loss = [(d / "history.csv").read_text().splitlines() for d in (a, b)]
        column = loss[0][0].split(",").index("loss")
        assert [r.split(",")[column] for r in loss[0][1:]] == \
            [r.split(",")[column] for r in loss[1][1:]]
    gap = optimism_gap(twin, clean)
    assert gap["pairs"] == 2 and gap["selection_only"] is True
    html = render_report(clean, tmp_path / "out").read_text()
    assert "Compared: selection only: every pair trained on the same images" in html


def test_paper_clean_testselect_differs_from_paper_clean_in_selection_alone():
    """On the authors' split files (with the mini ieee8023 copy's patient ids): the twin's
    training images and phases are paper-clean's, its selection set is paper's (every
    COVID-19 test image + 300 normal + 300 pneumonia), and paper trains on more images."""
    import test_paper_suite as ps

    if not (ps.SPLITS.is_dir() and ps.MINI.is_dir()):
        pytest.skip("the authors' split files or ieee8023-mini are absent")
    records = ps.records_with_patients.__wrapped__(ps.records_from_all_csv(ps.SPLITS))
    paper, clean = ps.plans("paper.yaml", records), ps.plans("paper-clean.yaml", records)
    twin = ps.plans("paper-clean-testselect.yaml", records)
    for k in paper:
        assert twin[k]["train"] == clean[k]["train"] and twin[k]["plan"] == clean[k]["plan"]
        assert twin[k]["test"] == clean[k]["test"] == paper[k]["test"]
        assert twin[k]["select"] == paper[k]["select"]
        covid = twin[k]["test"]["labels"].count("covid19")  # 31 (30) with the full copy
        assert len(twin[k]["select"]["uids"]) == covid + 600
        assert len(set(paper[k]["train"]["uids"])) > len(set(twin[k]["train"]["uids"]))
