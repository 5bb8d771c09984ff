"""Runs planned by older code or data are reported, and redone on request (--rerun)."""

from __future__ import annotations

import json

import pytest

from harness.rundir.folder import RunFolder
from harness.runs.runner import run_suite

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

VERSIONED = '''
import os
from harness import DatasetSpec, hookimpl
from harness_plugins.datasets import synthetic

@hookimpl
def register_datasets(register):
    register(DatasetSpec(name="versioned", description="synthetic data with a version",
                         records=synthetic.records, read_image=synthetic.read_image,
                         fingerprint=synthetic.fingerprint, options=synthetic.SyntheticOptions,
                         version=lambda options, context: {"v": os.environ.get("DATA_VERSION",
                                                                               "1")}))
'''


def run(suite, tmp_path, messages=None, **kw):
    return run_suite(suite, runs_root=tmp_path / "runs", reports_root=tmp_path / "reports",
                     echo=(messages.append if messages is not None else lambda m: None),
                     show_progress=False, render=False, **kw)


def folders(tmp_path, name):
    return [RunFolder(p) for p in sorted((tmp_path / "runs" / name).iterdir()) if p.is_dir()]


def mtimes(tmp_path, name):
    return {f.name: f.file("predictions.csv").stat().st_mtime_ns for f in folders(tmp_path, name)}


def age(folder: RunFolder, part: str | None) -> None:
    """Make a run look planned by older code (one part) or an older harness (no fingerprint)."""
    config = json.loads(folder.file("config.json").read_text())
    if part is None:
        del config["fingerprint"]
    else:
        config["fingerprint"][part] = "0" * 12
    folder.file("config.json").write_text(json.dumps(config))


def test_fingerprint_is_stored_and_nothing_is_stale_when_nothing_changed(make_suite, tmp_path):
    suite = make_suite("fresh")
    run(suite, tmp_path)
    for f in folders(tmp_path, "fresh"):
        config = f.config()
        assert set(config.fingerprint) == {"run", "code", "data"}
        assert config.versions["plugins"]["engines:centroid"].startswith("cxr-harness==")
        assert config.versions["framework"].startswith("numpy==")
    assert run(suite, tmp_path, dry_run=True).stale == []
    messages = []
    assert run(suite, tmp_path, messages).stale == []
    assert not any("older suite" in m for m in messages)


@pytest.mark.parametrize("part", ["code", "run", None])
def test_stale_runs_are_reported_kept_and_redone_on_request(make_suite, tmp_path, run_harness,
                                                             part):
    suite = make_suite("old")
    run(suite, tmp_path)
    old, other = folders(tmp_path, "old")
    age(old, part)
    before = mtimes(tmp_path, "old")
    args = ["run", suite, "--runs-dir", tmp_path / "runs", "--no-report"]
    dry = run_harness(*args, "--dry-run")
    assert dry.exit_code == 0
    assert f"{old.name}" in dry.output and "done (stale)" in dry.output
    assert "1 run was planned by an older suite: `--rerun stale` to redo them" in dry.output
    kept = run_harness(*args)
    assert kept.exit_code == 0
    assert "1 run was planned by an older suite: `--rerun stale` to redo them" in kept.output
    assert mtimes(tmp_path, "old") == before  # reported, not retrained
    redo = run_harness(*args, "--rerun", "stale")
    assert redo.exit_code == 0, redo.output
    after = mtimes(tmp_path, "old")
    assert after[old.name] != before[old.name] and after[other.name] == before[other.name]
    assert old.verified() is None and set(old.config().fingerprint) == {"run", "code", "data"}
    assert "older suite" not in run_harness(*args, "--dry-run").output


def test_a_new_data_version_makes_runs_stale(make_suite, tmp_path, monkeypatch):
    (tmp_path / "versioned_plugin.py").write_text(VERSIONED)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv("DATA_VERSION", "1")
    suite = make_suite("data", plugins=["harness.testing.fakes", "versioned_plugin"],
                       datasets=[{"name": "versioned", "options": {"n": 120, "seed": 1}}])
    run(suite, tmp_path)
    assert folders(tmp_path, "data")[0].config().data["versioned"]["version"] == {"v": "1"}
    assert run(suite, tmp_path, dry_run=True).stale == []
    monkeypatch.setenv("DATA_VERSION", "2")
    ids = {f.name for f in folders(tmp_path, "data")}
    assert set(run(suite, tmp_path, dry_run=True).stale) == ids
    messages = []
    assert set(run(suite, tmp_path, messages).stale) == ids
    assert "2 runs were planned by an older suite: `--rerun stale` to redo them" in messages
    run(suite, tmp_path, rerun="stale")
    assert run(suite, tmp_path, dry_run=True).stale == []
    assert folders(tmp_path, "data")[0].config().data["versioned"]["version"] == {"v": "2"}


def test_an_unfinished_stale_run_is_planned_again_not_resumed(make_suite, tmp_path):
    suite = make_suite("resume")
    run(suite, tmp_path)
    folder = folders(tmp_path, "resume")[0]
    folder.write_status("failed", error="boom")
    age(folder, "code")
    plan = folder.file("plan.json").read_text()
    folder.file("plan.json").write_text(plan.replace('"sampler": "none"', '"sampler": "older"'))
    messages = []
    run(suite, tmp_path, messages)
    assert any(m.startswith(f"{folder.name}: planned by an older suite (code changed)")
               for m in messages)
    assert folder.plan().sampler == "none" and folder.verified() is None


@pytest.mark.parametrize("rerun, retrained", [("failed", {"failed"}), ("all", {"failed", "ok"})])
def test_rerun_failed_and_all(make_suite, tmp_path, rerun, retrained):
    suite = make_suite("again")
    run(suite, tmp_path)
    failed, ok = folders(tmp_path, "again")
    failed.write_status("failed", error="boom")
    failed.file("checkpoints").mkdir(exist_ok=True)  # a done run dropped its own
    (failed.file("checkpoints") / "marker").write_text("from the failed attempt")
    before = mtimes(tmp_path, "again")
    result = run(suite, tmp_path, rerun=rerun)
    assert [o.state for o in result.outcomes] == ["done", "done"]
    after = mtimes(tmp_path, "again")
    changed = {label for label, f in (("failed", failed), ("ok", ok))
               if after[f.name] != before[f.name]}
    assert changed == retrained
    assert not (failed.file("checkpoints") / "marker").exists()  # started over, not resumed


def test_unknown_rerun_value_is_a_usage_error(make_suite, tmp_path, run_harness):
    result = run_harness("run", make_suite("bad"), "--rerun", "everything", "--dry-run")
    assert result.exit_code == 2
    assert "'everything' is not one of 'stale', 'failed', 'all'" in result.output
