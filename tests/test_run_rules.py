"""A run's rules never depend on what else is in its suite, or when it was added.

Under ``budget: equal`` a run's budget comes from the reference sampler's plan and its
number of selection scores from that budget and the fold's training images: adding a
strategy (with options of its own) to a finished suite leaves the old runs as they are,
not stale, and a fresh folder plans the same ids, plans and rules.
"""

from __future__ import annotations

import pytest

from harness.config.suite import expand, load_suite
from harness.rundir.folder import RunFolder
from harness.runs.runner import run_suite

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

OLD = ["phased", "none"]
#: oversample has fewer epochs than any old strategy (it would have lowered the old rule,
#: the fewest epochs of any strategy); progressive brings options of its own.
NEW = OLD + ["oversample", "progressive"]


def suite(make_suite, samplers, name="rules"):
    return make_suite(name, matrix={"sampler": samplers, "fold": [1]},
                      samplers={"phased": {"phases": 3}, "progressive": {"phases": 3}},
                      training={"epochs_per_phase": 4}, budget="equal")


def run(path, runs_root, **kw):
    return run_suite(path, runs_root=runs_root, echo=lambda m: None, show_progress=False,
                     render=False, **kw)


def rules(runs_root, name="rules"):
    """Per run id: plan.json and the history's scored epochs (what the run was held to)."""
    out = {}
    for folder in (RunFolder(p) for p in sorted((runs_root / name).iterdir()) if p.is_dir()):
        plan = folder.plan_document()
        scored = [r["selected_evaluation"] for r in folder.history()]
        out[folder.name] = (plan, scored, folder.file("predictions.csv").read_bytes())
    return out


def test_adding_a_strategy_changes_no_old_run_and_a_fresh_folder_agrees(make_suite, tmp_path):
    first = tmp_path / "first"
    old_path = suite(make_suite, OLD)
    run(old_path, first)
    before = rules(first)
    assert len(before) == 2
    old_ids = {r.run_id for r in expand(load_suite(old_path))}

    new_path = suite(make_suite, NEW)
    assert old_ids <= {r.run_id for r in expand(load_suite(new_path))}
    result = run(new_path, first)
    assert result.stale == []
    assert {o.run.run_id for o in result.outcomes if o.run.sampler in OLD} == old_ids
    after = rules(first)
    assert {k: after[k] for k in before} == before  # plans, scored epochs, predictions

    fresh = tmp_path / "fresh"
    run(new_path, fresh)
    assert rules(fresh) == after

    # one rule for every strategy of a fold: as many scores as passes over its training
    # images, or every epoch of a run that has fewer
    for rid, (plan, scored, _) in after.items():
        passes = -(-plan["budget"] // len(plan["train"]["uids"]))
        epochs = sum(p["epochs"] or 4 for p in plan["plan"]["phases"])
        assert plan["select_evaluations"] == min(passes, epochs), rid
        assert sum(s.lower() == "true" for s in scored) == plan["select_evaluations"], rid
    assert len({plan["select_evaluations"] for rid, (plan, _, _) in after.items()
                if "-oversample-" not in rid}) == 1


def test_the_report_says_which_runs_were_deterministic():
    from harness.analysis.report import determinism_line

    sure = {"threads": 1, "deterministic": True}
    assert determinism_line([sure, sure]) == "deterministic (all 2 runs, 1 thread)"
    assert determinism_line([sure, {**sure, "threads": 4}]) == \
        "deterministic (all 2 runs, 1/4 threads)"
    older = {"threads": 0}  # planned before thread counts were recorded
    assert determinism_line([sure, older, {**sure, "deterministic": False}]) == \
        "deterministic: 1 of 3 runs"


def test_a_run_planned_with_another_thread_count_is_reported_stale(make_suite, tmp_path,
                                                                   monkeypatch):
    """``threads: 0`` is resolved to the machine's cores when planning, recorded in
    config.json and hashed into its fingerprint: another count makes the run stale."""
    from harness.config import suite as suite_module

    path = make_suite("threads", matrix={"fold": [1]})
    monkeypatch.setattr(suite_module.os, "sched_getaffinity", lambda pid: set(range(3)))
    run(path, tmp_path / "runs")
    (folder,) = [RunFolder(p) for p in (tmp_path / "runs" / "threads").iterdir() if p.is_dir()]
    assert folder.config().run["training"]["threads"] == 3
    assert folder.config().run["training"]["deterministic"] is True
    assert run(path, tmp_path / "runs", dry_run=True).stale == []
    monkeypatch.setattr(suite_module.os, "sched_getaffinity", lambda pid: set(range(5)))
    assert run(path, tmp_path / "runs", dry_run=True).stale == [folder.name]
