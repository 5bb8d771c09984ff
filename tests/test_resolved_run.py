"""One resolved run per run: ``config.json`` is its serialisation, and the worker, the loop,
the engine's context and the report read it back typed."""

from __future__ import annotations

import dataclasses
import json
import typing

import pytest

from harness import BackboneSpec
from harness.analysis.budget import exposure, images_seen
from harness.config.suite import Training, expand, parse_suite, training_from_json
from harness.plugin.check import check_suite
from harness.plugin.engine import EngineContext
from harness.plugin.registry import build_registry
from harness.plugin.resolved import ResolvedRun, resolve
from harness.rundir.folder import DamagedFile, RunFolder
from harness.runs import worker
from harness.runs.runner import run_suite
from harness.testing import small_suite
from harness.training.loop import context_for

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def suite_data(**overrides):
    return small_suite(
        "resolved", **{"matrix": {"backbone": ["pixels"], "sampler": ["none", "phased"],
                                  "engine": ["centroid"]},
                       "samplers": {"phased": {"phases": 2}},
                       "backbones": {"pixels": {"batch_size": 8}},
                       "training": {"epochs_per_phase": 2, "batch_size": 16, "weights": "none",
                                    "threads": 0}, **overrides})


def resolved_runs(data):
    suite = parse_suite(data, "resolved.yaml")
    registry = build_registry(suite.plugins)
    checked = check_suite(suite, registry, backbones=False)
    return [resolve(suite, checked, r) for r in expand(suite)], registry


def test_a_resolved_run_holds_typed_settings_and_reads_back_equal():
    runs, registry = resolved_runs(suite_data())
    run = next(r for r in runs if r.run.sampler == "phased")
    assert isinstance(run.training, Training)
    assert run.training.batch_size == 8  # the backbone's override, merged
    assert run.training.threads >= 1  # ``0`` resolved to the cores
    assert type(run.sampler_options).__name__ != "Options" and run.sampler_options.phases == 2
    assert run.classes == ("normal", "pneumonia", "covid19") and run.image_size == 32
    # the plan's rules: every strategy gets the budget of phased's plan, with its options
    assert run.plan_rules.budget == "equal" and run.plan_rules.budget_reference == "phased"
    assert run.plan_rules.reference_options.phases == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.image_size = 64  # type: ignore[misc]
    text = json.dumps(run.to_json(), sort_keys=True)
    back = ResolvedRun.from_json(json.loads(text), registry, "config.json")
    assert back == run
    assert json.dumps(back.to_json(), sort_keys=True) == text


def test_config_json_is_the_resolved_run_and_the_worker_reads_it_typed(tmp_path):
    data = suite_data(matrix={"backbone": ["pixels"], "sampler": ["none"],
                              "engine": ["centroid"], "fold": [1]})
    result = run_suite(parse_suite(data, str(tmp_path / "resolved.yaml")),
                       runs_root=tmp_path / "runs", render=False, echo=lambda m: None,
                       show_progress=False, dry_run=True)
    (spec,) = result.runs
    folder = RunFolder(tmp_path / "runs" / "resolved" / spec.run_id)
    run_suite(parse_suite(data, str(tmp_path / "resolved.yaml")), runs_root=tmp_path / "runs",
              render=False, echo=lambda m: None, show_progress=False)
    written = json.loads(folder.config_path.read_text())
    registry = build_registry(written["suite"]["plugins"])
    resolved = ResolvedRun.read(folder.config(), registry, folder.config_path)
    assert resolved.to_json() == written  # config.json is exactly its serialisation
    (planned,), _ = resolved_runs(data)
    assert resolved.run == planned.run == spec
    assert resolved.sampler_options == planned.sampler_options
    assert resolved.cache and resolved.fingerprint and resolved.versions["harness"]

    job, _ = worker.load_job(folder.path)
    assert job.resolved == resolved
    # the one setting planning fixes on top (plan.json's ``select_evaluations``)
    assert dataclasses.replace(job.training, select_evaluations=None) == resolved.training
    context = context_for(job, threads=1)
    # what the engine sees is the resolved run's typed settings, not a copy re-validated
    assert context.training is job.training and isinstance(context.training, Training)
    assert context.backbone_options is job.resolved.backbone_options
    # the engine's backbone is the typed spec, declared so (no protocol standing in for it)
    assert typing.get_type_hints(EngineContext)["backbone"] is BackboneSpec
    assert isinstance(context.backbone, BackboneSpec) and context.backbone is job.backbone


def test_a_damaged_run_section_names_the_file(tmp_path):
    runs, registry = resolved_runs(suite_data())
    data = runs[0].to_json()
    data["run"]["training"]["batch_size"] = "many"
    with pytest.raises(Exception, match=r"config.json: run.training.batch_size: expected"):
        ResolvedRun.from_json(data, registry, "config.json")
    del data["run"]["seed"]
    folder = RunFolder(tmp_path)
    folder.config_path.write_text(json.dumps(data))
    with pytest.raises(DamagedFile, match="missing seed"):
        ResolvedRun.read(folder.config(), registry, folder.config_path)


def test_the_report_counts_epochs_with_the_real_default():
    """A run whose recorded settings leave ``epochs_per_phase`` out trained 100 epochs per
    phase (``Training``'s default), and the budget table says so."""
    plan = {"plan": {"phases": [{"indices": [0, 1, 2]}, {"indices": [3, 4], "epochs": 5}]}}
    training = training_from_json({}, "config.json")
    assert training.epochs_per_phase == 100
    assert images_seen(plan, training) == 3 * 100 + 2 * 5
    assert exposure(None, plan, training, None)["epochs"] == 105


def test_the_report_reads_config_json_as_the_resolved_run_even_without_its_plugins(tmp_path):
    """Plugin present: its options come back as its typed model. Plugin absent (a folder
    from another machine): its recorded options, frozen, and the report still renders."""
    from harness.analysis.loading import load_runs
    from harness.analysis.report import render_report
    from harness.config.frozen import FrozenDict
    from harness.plugin.options import Options

    data = suite_data(matrix={"backbone": ["pixels"], "sampler": ["none", "phased"],
                              "engine": ["centroid"], "fold": [1]})
    run_suite(parse_suite(data, str(tmp_path / "resolved.yaml")), runs_root=tmp_path / "runs",
              render=False, echo=lambda m: None, show_progress=False)
    runs_dir = tmp_path / "runs" / "resolved"
    loaded = load_runs(runs_dir)
    assert [r.state for r in loaded] == ["done", "done"]
    for r in loaded:
        assert isinstance(r.resolved, ResolvedRun) and r.resolved.run_id == r.run_id
        assert type(r.resolved.dataset_options[0]).__name__ == "SyntheticOptions"
        assert isinstance(r.resolved.backbone_options, Options)
    phased = next(r for r in loaded if r.sampler == "phased").resolved
    assert phased.sampler_options.phases == 2

    for folder in RunFolder(runs_dir).path.iterdir():
        if not (folder / "config.json").is_file():
            continue
        config = json.loads((folder / "config.json").read_text())
        config["suite"]["plugins"] = ["harness_plugins_not_installed_here"]
        config["suite"]["datasets"][0]["name"] = "elsewhere"
        (folder / "config.json").write_text(json.dumps(config))
    elsewhere = load_runs(runs_dir)
    assert [r.state for r in elsewhere] == ["done", "done"]
    for r in elsewhere:
        # the fakes module (``pixels``) and the dataset are unknown here: recorded mappings
        assert r.resolved.backbone_options == {} and \
            not isinstance(r.resolved.backbone_options, Options)
        assert r.resolved.dataset_options[0] == {"n": 120, "seed": 1}
        assert isinstance(r.resolved.dataset_options[0], FrozenDict)
        assert type(r.resolved.sampler_options).__name__ != "FrozenDict"  # built in: typed
    index = render_report(runs_dir, tmp_path / "report")
    html = index.read_text()
    assert "elsewhere" in html and "phased" in html
