"""The libraries a run's numbers depend on are recorded and part of its fingerprint: a new
version (timm for torch networks, numpy/scipy/scikit-learn for every run) marks runs stale
with a line saying which version changed."""

from __future__ import annotations

import json
from importlib import metadata

import pytest

from harness.config.suite import expand, load_suite
from harness.plugin.registry import build_registry
from harness.rundir.folder import RunFolder
from harness.runs import staleness
from harness.runs.runner import run_suite
from harness.testing import write_suite


def run(suite, tmp_path, messages=None, **kw):
    return run_suite(suite, runs_root=tmp_path / "runs", reports_root=tmp_path / "reports",
                     echo=(messages.append if messages is not None else lambda m: None),
                     show_progress=False, render=False, **kw)


def fake_version(monkeypatch, dist: str, version: str) -> None:
    """Make ``dist`` look installed at ``version`` to the fingerprint."""
    real = metadata.version
    monkeypatch.setattr(staleness.metadata, "version",
                        lambda name: version if name == dist else real(name))


def test_a_timm_backbone_run_records_timm_and_its_version_changes_the_fingerprint(
        tmp_path, monkeypatch):
    pytest.importorskip("timm")
    path = write_suite(tmp_path / "timm.yaml", "timm", plugins=[],
                       matrix={"backbone": ["timm/resnet18"], "sampler": ["none"],
                               "engine": ["torch"]})
    suite = load_suite(path)
    registry = build_registry(suite.plugins)
    run_spec = expand(suite)[0]
    code = staleness.code_versions(suite, registry, run_spec)
    assert code["framework"] == f"torch=={metadata.version('torch')}"
    assert code["libraries"]["timm"] == f"timm=={metadata.version('timm')}"
    assert set(staleness.CORE_LIBRARIES) <= set(code["libraries"])
    fake_version(monkeypatch, "timm", "0.0.1")
    other = staleness.code_versions(suite, registry, run_spec)
    assert other["libraries"]["timm"] == "timm==0.0.1"
    assert staleness.digest(other) != staleness.digest(code)


def test_a_new_library_version_marks_runs_stale_and_says_which(tmp_path, monkeypatch,
                                                                run_harness):
    suite = write_suite(tmp_path / "lib.yaml", "lib", plugins=["harness.testing.fakes"])
    run(suite, tmp_path)
    folders = [RunFolder(p) for p in sorted((tmp_path / "runs" / "lib").iterdir()) if p.is_dir()]
    versions = folders[0].config().versions
    scipy = metadata.version("scipy")
    assert versions["libraries"]["scipy"] == f"scipy=={scipy}"
    assert run(suite, tmp_path, dry_run=True).stale == []

    fake_version(monkeypatch, "scipy", "0.0.1")
    dry = run(suite, tmp_path, dry_run=True)
    assert sorted(dry.stale) == sorted(f.name for f in folders)
    assert dry.stale_why == [f"  code changed: scipy {scipy} -> 0.0.1 (2 runs)"]
    shown = run_harness("run", suite, "--runs-dir", tmp_path / "runs", "--no-report",
                        "--dry-run")
    assert "2 runs were planned by an older suite" in shown.output
    assert f"code changed: scipy {scipy} -> 0.0.1 (2 runs)" in shown.output
    messages = []
    assert sorted(run(suite, tmp_path, messages).stale) == sorted(dry.stale)  # kept, said
    assert f"  code changed: scipy {scipy} -> 0.0.1 (2 runs)" in messages


def test_a_run_recorded_without_libraries_is_stale_and_says_so(tmp_path):
    suite = write_suite(tmp_path / "old.yaml", "old", plugins=["harness.testing.fakes"])
    run(suite, tmp_path)
    folder = RunFolder(next(p for p in (tmp_path / "runs" / "old").iterdir() if p.is_dir()))
    config = json.loads(folder.file("config.json").read_text())
    del config["versions"]["libraries"]  # as an older harness wrote it
    config["fingerprint"]["code"] = "0" * 12
    folder.file("config.json").write_text(json.dumps(config))
    dry = run(suite, tmp_path, dry_run=True)
    assert dry.stale == [folder.name]
    assert dry.stale_why == ["  code changed: its libraries not recorded (1 run)"]
