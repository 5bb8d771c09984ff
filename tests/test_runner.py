"""harness run end to end with the framework-free centroid engine: folders, resume, failures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import store
from harness.rundir.folder import RunFolder
from harness.runs.runner import run_suite

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def run_dirs(folder: Path) -> list[Path]:
    """The run folders of a suite (``manifest.json`` lies beside them)."""
    return sorted(p for p in folder.iterdir() if p.is_dir())


def run(suite, tmp_path, **kw):
    kw.setdefault("render", False)
    return run_suite(suite, runs_root=tmp_path / "runs", reports_root=tmp_path / "reports",
                     echo=lambda m: None, show_progress=False, **kw)


def test_run_writes_every_file_and_skips_finished_runs(make_suite, tmp_path):
    suite = make_suite("e2e", matrix={"sampler": ["none", "phased"]})
    result = run(suite, tmp_path)
    assert [o.state for o in result.outcomes] == ["done"] * 4
    folders = run_dirs(tmp_path / "runs" / "e2e")
    assert len(folders) == 4
    manifest = store.read_json(tmp_path / "runs" / "e2e" / "manifest.json")
    assert sorted(manifest["run_ids"]) == [d.name for d in folders]
    for d in folders:
        for name in ("config.json", "plan.json", "history.csv", "predictions.csv",
                     "metrics.json", "status.json"):
            assert (d / name).is_file(), f"{d.name}/{name}"
        config = store.read_json(d / "config.json")
        assert config["run"]["run_id"] == d.name
        assert config["versions"]["python"]
        plan = RunFolder(d).plan_document()
        assert set(plan["train"]["uids"]).isdisjoint(plan["test"]["uids"])
        assert set(plan["select"]["uids"]).isdisjoint(plan["test"]["uids"])
        header = (d / "predictions.csv").read_text().splitlines()[0]
        assert header == "uid,true,pred,p_normal,p_pneumonia,p_covid19"
        n_test = len((d / "predictions.csv").read_text().splitlines()) - 1
        assert n_test == len(plan["test"]["uids"])
        metrics = store.read_json(d / "metrics.json")
        assert metrics["n"] == n_test
        assert metrics["bootstrap"]["resampled"] == "patients"
        history = (d / "history.csv").read_text().splitlines()
        assert history[0].startswith("phase,epoch")
        # done: the resumable checkpoint is gone (nothing reads it after the run ends)
        assert not (d / "checkpoints").exists(), d.name
        assert not list(d.glob(".checkpoints*")), d.name
    # budget: equal also equalises selection evaluations: one per pass over the fold's
    # training images that the budget pays for (every epoch of a run that has fewer).
    for fold in (1, 2):
        plans = [RunFolder(d).plan_document() for d in folders if f"-f{fold}-" in d.name]
        for plan in plans:
            passes = -(-plan["budget"] // len(plan["train"]["uids"]))
            epochs = sum(p["epochs"] or 2 for p in plan["plan"]["phases"])
            assert plan["select_evaluations"] == min(passes, epochs)
    mtimes = {d.name: (d / "predictions.csv").stat().st_mtime_ns for d in folders}
    again = run(suite, tmp_path)
    assert [o.state for o in again.outcomes] == ["done"] * 4
    assert {d.name: (d / "predictions.csv").stat().st_mtime_ns for d in folders} == mtimes


def test_the_two_folds_test_every_image_once(make_suite, tmp_path):
    suite = make_suite("cover")
    run(suite, tmp_path)
    tested = []
    for d in run_dirs(tmp_path / "runs" / "cover"):
        tested += RunFolder(d).plan_document()["test"]["uids"]
    assert len(tested) == len(set(tested)) == 120


def test_centroid_engine_beats_chance(make_suite, tmp_path):
    suite = make_suite("acc", datasets=[{"name": "synthetic", "options": {"n": 240}}])
    run(suite, tmp_path)
    for d in run_dirs(tmp_path / "runs" / "acc"):
        metrics = store.read_json(d / "metrics.json")
        assert metrics["balanced_accuracy"] > 0.5  # chance is 1/3


def test_dry_run_and_only(make_suite, tmp_path):
    suite = make_suite("dry", matrix={"sampler": ["none", "phased"]})
    result = run(suite, tmp_path, dry_run=True)
    assert len(result.runs) == 4 and not (tmp_path / "runs").exists()
    only = run(suite, tmp_path, only=["sampler=phased", "fold=2"])
    assert [(o.run.sampler, o.run.fold, o.state) for o in only.outcomes] == [("phased", 2, "done")]


def test_failing_run_is_recorded_and_others_go_on(make_suite, tmp_path, monkeypatch):
    suite = make_suite("fail", matrix={"sampler": ["none", "phased"]},
                       training={"epochs_per_phase": 1})
    from harness.runs import runner

    real = runner.run_worker

    def flaky(run_dir, env=None):
        if "-none-" in Path(run_dir).name and "-f1-" in Path(run_dir).name:
            store.write_json(Path(run_dir) / "status.json",
                             {"state": "failed", "error": "CUDA out of memory"})
            return 1
        return real(run_dir, env)

    monkeypatch.setattr(runner, "run_worker", flaky)
    monkeypatch.setenv("HARNESS_WARM_WORKERS", "0")  # every run through run_worker
    result = run(suite, tmp_path)
    states = {(o.run.sampler, o.run.fold): (o.state, o.error) for o in result.outcomes}
    assert states[("none", 1)] == ("failed", "CUDA out of memory")
    assert sum(1 for s, _ in states.values() if s == "done") == 3
    with pytest.raises(runner.StopSuite, match="CUDA out of memory"):
        run(suite, tmp_path, fail_fast=True)
    monkeypatch.setattr(runner, "run_worker", real)
    retried = run(suite, tmp_path)  # a failed run is tried again; finished ones are kept
    assert [o.state for o in retried.outcomes] == ["done"] * 4


def test_bad_sampler_option_fails_before_training(make_suite, tmp_path):
    from harness.errors import HarnessError

    suite = make_suite("werr", samplers={"none": {"no_such_option": 1}})
    with pytest.raises(HarnessError, match=r"werr.yaml: samplers.none.no_such_option: unknown "
                                           r"option. Options here: epochs, budget"):
        run(suite, tmp_path)
    assert not list((tmp_path / "runs").glob("*/*/status.json"))


def test_unknown_names_fail_before_any_work(make_suite, tmp_path):
    from harness.plugin.registry import UnknownNameError

    suite = make_suite("unk", matrix={"sampler": ["phazed"]})
    with pytest.raises(UnknownNameError, match=r"unk.yaml: matrix.sampler: unknown sampler "
                                               r"'phazed'. Did you mean 'phased'"):
        run(suite, tmp_path)
    assert not (tmp_path / "runs").exists()


def test_missing_dataset_root_is_clear(make_suite, tmp_path):
    suite = make_suite("root", datasets=[{"name": "ieee8023",
                                          "options": {"root": str(tmp_path / "nowhere")}}])
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="nowhere"):
        run(suite, tmp_path)


def test_killed_run_resumes_and_completes(make_suite, tmp_path):
    """Kill `harness run` midway; running it again finishes the suite from checkpoints."""
    # A checkpoint policy of 0.3 s with 0.4 s epochs: a checkpoint after every epoch.
    suite = make_suite("kill", training={"epochs_per_phase": 6, "checkpoint_minutes": 0.005},
                       budget="natural")
    env = {**os.environ, "HARNESS_FAKE_EPOCH_SECONDS": "0.4", "HARNESS_QUIET": "1"}
    cmd = [sys.executable, "-m", "harness.cli.main", "run", str(suite), "--runs-dir",
           str(tmp_path / "runs"), "--no-report"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = tmp_path / "runs" / "kill"
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until the first run has logged some epochs
        histories = list(runs.glob("*/history.csv")) if runs.exists() else []
        if histories and len(histories[0].read_text().splitlines()) >= 3:
            break
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = histories[0].parent
    assert RunFolder(first).state() != "done"
    from harness.training import checkpoint

    _, meta = checkpoint.load(first / "checkpoints" / checkpoint.FILE)
    assert meta["position"]["epoch"] > 0
    env["HARNESS_FAKE_EPOCH_SECONDS"] = "0"
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    assert all(RunFolder(d).state() == "done" for d in run_dirs(runs))
    rows = (first / "history.csv").read_text().splitlines()[1:]
    assert len(rows) == len(set(rows)) == 6  # resumed, no epoch twice
    # the resumed run, once done, kept no resumable checkpoint either
    assert not any((d / "checkpoints").exists() for d in run_dirs(runs))


def test_report_is_rendered_once_and_again_when_runs_change(make_suite, tmp_path):
    suite = make_suite("rep")
    first = run(suite, tmp_path, render=True)
    assert first.report.name == "index.html" and first.report.exists()
    built = first.report.stat().st_mtime_ns
    again = run(suite, tmp_path, render=True)  # nothing new: the report is kept as it is
    assert again.report.stat().st_mtime_ns == built
    status = next((tmp_path / "runs" / "rep").glob("*/status.json"))
    store.write_json(status, store.read_json(status))  # a run folder changed after rendering
    os.utime(status, (time.time() + 5, time.time() + 5))
    third = run(suite, tmp_path, render=True)
    assert third.report.stat().st_mtime_ns != built


SPLITTER_PLUGIN = '''
import numpy as np
from harness import Fold, SplitterSpec, hookimpl

def split(records, options, context):
    n_folds = context.folds
    idx = np.arange(len(records))
    folds = []
    for k in range(n_folds):
        test = idx[idx % n_folds == k]
        train = idx[idx % n_folds != k]
        folds.append(Fold(train=train, select=train[:0], test=test,
                          phases=[train[: len(train) // 2], train[len(train) // 2:]]))
    return folds

@hookimpl
def register_splitters(register):
    register(SplitterSpec(name="fixed-phases", description="phases fixed by the split",
                          split=split))
'''


def test_phases_fixed_by_the_split_reach_the_plan(make_suite, tmp_path, plugin_module):
    plugin = plugin_module("fixed_phases_plugin", SPLITTER_PLUGIN)
    suite = make_suite("fixed", plugins=["harness.testing.fakes", plugin],
                       split={"kind": "fixed-phases", "folds": 2},
                       datasets=[{"name": "synthetic",
                                  "options": {"n": 120, "images_per_patient": 1}}],
                       matrix={"sampler": ["phased"]}, budget="natural",
                       training={"selection": "last"})
    result = run(suite, tmp_path)
    assert [o.state for o in result.outcomes] == ["done", "done"]
    for d in run_dirs(tmp_path / "runs" / "fixed"):
        plan = RunFolder(d).plan_document()
        train = plan["train"]["uids"]
        phases = [[train[i] for i in p["indices"]] for p in plan["plan"]["phases"]]
        assert phases == [train[: len(train) // 2], train[len(train) // 2:]]
        assert "fixed by the split" in plan["plan"]["notes"]
        # test patients are recorded: the report's bootstrap resamples them
        assert len(plan["test"]["patients"]) == len(plan["test"]["uids"]) > 0


def test_report_leaves_out_runs_of_earlier_settings(make_suite, tmp_path):
    from harness.analysis.loading import load_runs

    run(make_suite("evolve", training={"epochs_per_phase": 1}), tmp_path)
    run(make_suite("evolve", training={"epochs_per_phase": 2}), tmp_path)
    runs_dir = tmp_path / "runs" / "evolve"
    assert len(run_dirs(runs_dir)) == 4  # nothing deleted
    shown = load_runs(runs_dir, bootstrap=0)
    assert len(shown) == 2
    assert {r.config["run"]["training"]["epochs_per_phase"] for r in shown} == {2}


def test_truncated_predictions_are_trained_again_not_reported(make_suite, tmp_path):
    suite = make_suite("trunc")
    run(suite, tmp_path)
    victim, other = sorted((tmp_path / "runs" / "trunc").glob("*/predictions.csv"))
    rows = victim.read_text().splitlines()
    victim.write_text("\n".join(rows[: len(rows) // 2]) + "\n")
    kept = other.stat().st_mtime_ns
    messages = []
    result = run_suite(suite, runs_root=tmp_path / "runs", echo=messages.append,
                       show_progress=False, render=False)
    assert any(m.startswith(f"{victim.parent.name}: predictions.csv is damaged")
               and "training this run again" in m for m in messages)
    assert [o.state for o in result.outcomes] == ["done", "done"]
    assert len(victim.read_text().splitlines()) == len(rows)
    assert other.stat().st_mtime_ns == kept  # the intact finished run is not touched


def test_run_prints_a_summary_per_combination(make_suite, run_harness, tmp_path):
    suite = make_suite("summ", matrix={"sampler": ["none", "phased"]})
    result = run_harness("run", suite, "--runs-dir", tmp_path / "runs", "--reports-dir",
                         tmp_path / "reports")
    assert result.exit_code == 0, result.output
    lines = {line.split("  ")[0]: line for line in result.output.splitlines()}
    for sampler in ("none", "phased"):
        row = lines[f"pixels / {sampler} / centroid"].split()
        accuracy = float(row[-4])
        metrics = [store.read_json(p) for p in (tmp_path / "runs" / "summ").glob(
            f"pixels-{sampler}-*/metrics.json")]
        assert accuracy == pytest.approx(100 * sum(m["accuracy"] for m in metrics) / 2, abs=0.06)
    assert "covid19 sensitivity" in result.output
    assert (tmp_path / "reports" / "summ" / "index.html").exists()


def test_warm_workers_give_the_same_runs_as_fresh_processes(make_suite, tmp_path, monkeypatch):
    """Runs forked from a warm host (``harness.runs.warm``) train exactly as fresh workers."""
    from harness.runs import warm

    suite = make_suite("warm", training={"epochs_per_phase": 2})
    pools = []
    original = warm.Pool.run

    def spy(self, modules, run_dir, env=None):
        pools.append(modules)
        return original(self, modules, run_dir, env)

    monkeypatch.setattr(warm.Pool, "run", spy)
    run(suite, tmp_path / "warm")
    assert len(pools) == 2 and "harness.testing.fakes" in pools[0]
    monkeypatch.setenv("HARNESS_WARM_WORKERS", "0")
    run(suite, tmp_path / "fresh")
    assert len(pools) == 2  # the second suite started a fresh process per run
    for d in run_dirs(tmp_path / "warm" / "runs" / "warm"):
        twin = tmp_path / "fresh" / "runs" / "warm" / d.name
        assert (d / "predictions.csv").read_bytes() == (twin / "predictions.csv").read_bytes()
        assert RunFolder(d).state() == RunFolder(twin).state() == "done"
    # TensorFlow never runs in a forked child.
    assert warm.preload_for("tensorflow", "harness_plugins.engines.keras_engine") is None


def test_phase_class_counts_keep_the_order_classes_first_appear():
    """``plan.json``'s per-phase counts: counted with numpy, ordered as a ``Counter`` of
    the phase's images would be (first appearance), so the file reads as before."""
    from collections import Counter

    import numpy as np

    from harness.runs.runner import class_counts

    classes = ["normal", "pneumonia", "covid19"]
    labels = np.array([2, 0, 1, 0, 2, 2, 1])
    for indices in ([0, 1, 2, 3], [3, 6, 5, 5, 1], [6], []):
        expected = dict(Counter(classes[labels[i]] for i in indices))
        got = class_counts(classes, labels, indices)
        assert got == expected and list(got) == list(expected)
