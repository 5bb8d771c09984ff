"""The run ids and run fingerprints of the shipped suites never change by accident.

``tests/golden/`` holds what the harness computed for every shipped suite (and a few
command-line variants) before the resolved run existed: a changed id would orphan every
finished run of that suite, a changed fingerprint would report it stale. Regenerate the
files only for a change that is meant to re-plan runs, and say so in its commit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import harness.config.suite as suite_module
from harness.config.shipped import shipped_suites
from harness.config.suite import expand, load_suite
from harness.plugin.check import check_suite
from harness.plugin.registry import build_registry
from harness.runs.runner import current_fingerprints, resolve_runs

GOLDEN = Path(__file__).parent / "golden"
IDS = json.loads((GOLDEN / "run_ids.json").read_text())
FINGERPRINTS = json.loads((GOLDEN / "run_fingerprints.json").read_text())


def _suite(key: str):
    """``demo`` or ``demo+budget-int``: a shipped suite, or one with overrides."""
    name, _, variant = key.partition("+")
    overrides = {
        "": [], "budget-natural": ["budget=natural"], "budget-int": ["budget=5000"],
        "reference": ["budget_reference=none"], "threads0": ["training.threads=0"],
        "select-evals": ["training.select_evaluations=5"],
    }[variant]
    return load_suite(name, overrides)


def test_every_shipped_suite_has_golden_ids():
    assert set(shipped_suites()) <= set(IDS)
    assert set(shipped_suites()) == set(FINGERPRINTS)


@pytest.mark.parametrize("key", sorted(IDS))
def test_run_ids_are_the_golden_ones(key):
    assert [r.run_id for r in expand(_suite(key))] == IDS[key]


def test_run_fingerprints_are_the_golden_ones(monkeypatch):
    # ``threads: 0`` resolves to the core count, which is part of the fingerprint.
    monkeypatch.setattr(suite_module, "available_cores", lambda: 4)
    for name in shipped_suites():
        suite = load_suite(name)
        registry = build_registry(suite.plugins)
        checked = check_suite(suite, registry, backbones=False)
        resolved = resolve_runs(suite, checked, expand(suite))
        current = current_fingerprints(suite, registry, list(resolved.values()))
        assert {rid: f["run"] for rid, f in current.items()} == FINGERPRINTS[name], name
