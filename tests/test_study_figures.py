"""What makes the 180-run study cheap to report: per-run figures computed once, bootstraps
vectorised, plans stored as arrays (``harness bench --study`` measures the whole)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from test_report import CLASSES, write_run

from harness.analysis import calibration
from harness.analysis.calibration import (
    macro_auroc,
    macro_auroc_interval,
    macro_auroc_resampled,
    resample_counts,
    run_calibration,
)
from harness.analysis.cost import device_kind, suite_cost
from harness.analysis.loading import load_runs
from harness.analysis.report import render_report
from harness.rundir.folder import DamagedFile, Part, PlanFile, RunFolder, SuiteRuns
from harness.rundir.predictions import read_predictions


def _data(n=90, seed=0):
    rng = np.random.default_rng(seed)
    true = rng.choice(3, size=n, p=[0.6, 0.3, 0.1])
    proba = rng.dirichlet([1, 1, 1], size=n) + 0.8 * np.eye(3)[true]
    proba = np.round(proba / proba.sum(axis=1, keepdims=True), 2)  # rounded: many ties
    return true, proba


def _reference_auroc(true, proba):
    """Macro AUROC as scikit-learn computes it (each class against the rest)."""
    return np.mean([roc_auc_score(true == k, proba[:, k]) for k in range(proba.shape[1])
                    if 0 < (true == k).sum() < len(true)])


def _reference_interval(true, proba, n_boot, seed):
    """The straightforward bootstrap: a Python loop, each resample re-ranked."""
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(true == k) for k in range(proba.shape[1])]
    values = []
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(c, size=len(c)) for c in by_class if len(c)])
        values.append(_reference_auroc(true[idx], proba[idx]))
    return np.percentile(values, [2.5, 97.5])


def test_vectorised_auroc_bootstrap_equals_the_reference_per_resample():
    true, proba = _data()
    counts = resample_counts(true, 3, 40, np.random.default_rng(3))
    # every class keeps its size in every resample
    for k in range(3):
        assert (counts[:, true == k].sum(axis=1) == (true == k).sum()).all()
    fast = macro_auroc_resampled(true, proba, counts)
    slow = [_reference_auroc(true[np.repeat(np.arange(len(true)), c)],
                             proba[np.repeat(np.arange(len(true)), c)]) for c in counts]
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)
    # no resampling at all: the plain macro AUROC
    assert macro_auroc(true, proba) == pytest.approx(_reference_auroc(true, proba), abs=1e-12)


def test_vectorised_interval_is_seeded_and_agrees_with_the_loop():
    true, proba = _data(n=150, seed=1)
    low, high = macro_auroc_interval(true, proba, 2000, seed=5)
    assert (low, high) == macro_auroc_interval(true, proba, 2000, seed=5)
    assert (low, high) != macro_auroc_interval(true, proba, 2000, seed=6)
    ref_low, ref_high = _reference_interval(true, proba, 1000, seed=5)
    width = ref_high - ref_low
    assert low < macro_auroc(true, proba) < high
    # different draws, same distribution: the ends agree to a small share of the width
    assert abs(low - ref_low) < 0.2 * width and abs(high - ref_high) < 0.2 * width


def _plan(n_train=12_000, n_test=3_000) -> PlanFile:
    rng = np.random.default_rng(0)

    def part(n, start):
        return Part([f"synthetic/0/{i:06d}" for i in range(start, start + n)],
                    [CLASSES[int(c)] for c in rng.choice(3, size=n, p=[0.6, 0.37, 0.03])],
                    [f"synthetic-p{i // 2:05d}" for i in range(start, start + n)],
                    ["synthetic"] * n)

    phases = [{"indices": rng.choice(n_train, size=790, replace=False).tolist(),
               "sample_weights": None, "draws": None, "epochs": None} for _ in range(8)]
    # weighted draws: one weight per class (inverse frequency), as the samplers give them
    weights = np.array([1 / 0.6, 1 / 0.37, 1 / 0.03])[rng.choice(3, size=n_train)] / n_train
    phases.append({"indices": list(range(n_train)), "sample_weights": weights.tolist(),
                   "draws": 790})
    return PlanFile(sampler="phased", budget=158_000,
                    plan={"phases": phases, "class_weights": None, "loss": "cross_entropy",
                          "loss_options": {}, "notes": ""},
                    train=part(n_train, 0), select=part(500, n_train),
                    test=part(n_test, n_train + 500), phase_class_counts=[{"normal": 250}])


def test_plan_arrays_round_trip_small_and_checked(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    plan = _plan()
    folder.write_plan(plan)
    assert folder.plan().to_json() == plan.to_json()  # exactly: floats and order kept
    doc = json.loads(folder.plan_path.read_text())
    assert doc["train"]["uids"] == {"array": "train.uids", "n": 12_000}
    assert doc["plan"]["phases"][8]["draws"] == 790  # the rest stays readable
    arrays = folder.path / doc["arrays"]["file"]
    with np.load(arrays, allow_pickle=False) as npz:
        assert npz["phase9.sample_weights"].dtype == np.float64
        assert npz["test.uids"][0] == "synthetic/0/012500"
        assert set(doc["arrays"]["sha256"]) == set(npz.files)
    # 15,000 images' uids, labels, patients and sources and 9 phases: under 150 KB in all
    # (as JSON lists: ~1.2 MB)
    size = folder.plan_path.stat().st_size + arrays.stat().st_size
    assert size < 150_000, size
    assert len(json.dumps(plan.to_json())) > 8 * size

    # an array that does not match its hash, or a missing file, names plan.npz
    with np.load(arrays, allow_pickle=False) as npz:
        data = {k: npz[k] for k in npz.files}
    data["test.labels"] = data["test.labels"][::-1].copy()
    np.savez_compressed(arrays, **data)
    with pytest.raises(DamagedFile, match=r"plan\.npz: array 'test\.labels' does not match"
                       ) as damage:
        folder.plan()
    assert folder.is_run_file(damage.value)  # the runner plans such a run anew
    arrays.unlink()
    with pytest.raises(DamagedFile, match=r"plan\.npz: missing"):
        folder.plan()


def test_plans_with_inline_lists_still_read(tmp_path):
    """Run folders written before plan.npz: plan.json holds the lists itself."""
    run_dir = write_run(tmp_path / "runs" / "fixture", "none", 1, n=40)
    plan = RunFolder(run_dir).plan()
    assert len(plan.test.uids) == 40 and plan.plan["phases"][0]["indices"][:3] == [0, 1, 2]


def test_per_run_figures_are_stored_and_the_report_does_not_recompute_them(
        tmp_path, monkeypatch):
    root = tmp_path / "runs" / "fixture"
    stored = {}
    for sampler in ("none", "phased"):
        for fold in (1, 2):
            run_dir = write_run(root, sampler, fold, n=80)
            p = read_predictions(run_dir / "predictions.csv", CLASSES)
            metrics = json.loads((run_dir / "metrics.json").read_text())
            metrics["calibration"] = run_calibration(p.true, p.proba, 100, seed=fold)
            stored[run_dir.name] = metrics["calibration"]
            (run_dir / "metrics.json").write_text(json.dumps(metrics))

    def no_bootstrap(*args, **kwargs):
        raise AssertionError("the report recomputed a per-run bootstrap")

    monkeypatch.setattr(calibration, "macro_auroc_interval", no_bootstrap)
    monkeypatch.setattr(calibration, "macro_auroc_resampled", no_bootstrap)
    render_report(root, tmp_path / "out")
    rows = list((tmp_path / "out" / "calibration.csv").read_text().splitlines())[1:]
    assert len(rows) == 4
    for row in rows:
        cells = row.split(",")
        figures = stored[cells[5]]
        assert float(cells[9]) == pytest.approx(figures["auroc_ci"][0])
        assert float(cells[7]) == pytest.approx(figures["brier"])
    # an older folder (no stored figures) is computed at render time: the same figures
    run_dir = root / next(iter(stored))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    del metrics["calibration"]
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(AssertionError, match="recomputed"):
        render_report(root, tmp_path / "out")


def test_the_worker_stores_the_figures_and_the_device(make_suite, tmp_path):
    from harness.analysis.loading import read_resolved
    from harness.runs.runner import run_suite

    suite = make_suite("one", matrix={"sampler": ["none"], "fold": [1]},
                       training={"device": "cpu"})
    run_suite(suite, runs_root=tmp_path / "runs", render=False, echo=lambda m: None,
              show_progress=False)
    (folder,) = SuiteRuns(tmp_path / "runs" / "one").folders()
    run = folder.finished(metrics_required=True)
    p = run.predictions
    n_boot = read_resolved(run.config, folder).report.bootstrap  # as the worker read it
    # read back from predictions.csv, the same figures (JSON keeps floats exactly)
    assert run.metrics["calibration"] == run_calibration(p.true, p.proba, n_boot, seed=1)
    assert run.status.device == "cpu"
    (loaded,) = load_runs(tmp_path / "runs" / "one")
    assert loaded.seconds > 0 and loaded.train_seconds > 0
    cost = suite_cost([loaded])
    assert cost["kinds"][0]["unit"] == "CPU-hours" and cost["kinds"][0]["runs"] == 1
    assert cost["hours"] == pytest.approx(loaded.seconds / 3600)
    assert "CPU-hours for 1 run" in cost["text"]


def test_device_kinds():
    assert device_kind("cpu") == "CPU" and device_kind("NVIDIA H200") == "GPU"
    assert device_kind("") == "device"


def test_the_study_benchmark_is_the_sampling_suite_with_the_fake_engine(tmp_path):
    from harness.config.suite import expand, load_suite
    from harness.testing.study_bench import sampling_suite, study_suite

    full = study_suite(180, tmp_path / "cache")
    path = tmp_path / "study.yaml"
    path.write_text(json.dumps(full))  # JSON is YAML
    suite = load_suite(path)
    runs = expand(suite)
    assert len(runs) == 180 and {r.engine for r in runs} == {"centroid"}
    sampling = sampling_suite()
    assert suite.matrix.sampler == sampling["matrix"]["sampler"]
    assert full["samplers"] == sampling["samplers"] and full["budget"] == sampling["budget"]
    assert full["split"] == sampling["split"] and full["report"] == sampling["report"]
    assert full["datasets"][0]["options"]["n"] == 15_000
    assert len(expand(load_suite(_written(tmp_path, study_suite(45, tmp_path))))) == 45


def _written(tmp_path, data):
    path = tmp_path / "small.yaml"
    path.write_text(json.dumps(data))
    return path
