"""A pytest plugin for testing harness plugins the way the harness tests itself.

Installed through the ``pytest11`` entry point, it gives every test session:

- ``make_suite(**overrides)``: writes a small suite YAML (synthetic data, fast settings) into
  ``tmp_path`` and returns its path; overrides are merged key by key.
- ``harness_registry(*plugins)``: a registry with extra plugin objects or modules.
- ``run_harness(*args)``: runs the ``harness`` CLI in-process and returns click's result.

The fake ``centroid`` engine and ``pixels`` backbone (``harness.testing.fakes``) train in
milliseconds without any framework.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

FAKES = "harness.testing.fakes"


def small_suite(name: str = "t", **overrides: Any) -> dict[str, Any]:
    """A suite that runs in seconds: synthetic data, the centroid engine, two folds."""
    suite: dict[str, Any] = {
        "name": name,
        "plugins": [FAKES],
        "image_size": 32,
        "datasets": [{"name": "synthetic", "options": {"n": 120, "seed": 1}}],
        "split": {"kind": "grouped-kfold", "folds": 2, "seed": 0},
        "matrix": {"backbone": ["pixels"], "sampler": ["none"], "engine": ["centroid"]},
        "training": {"epochs_per_phase": 2, "batch_size": 16, "weights": "none"},
        "report": {"bootstrap": 50},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(suite.get(key), dict):
            suite[key] = {**suite[key], **value}
        else:
            suite[key] = value
    return suite


@pytest.fixture
def make_suite(tmp_path: Path):
    def make(name: str = "t", **overrides: Any) -> Path:
        data = small_suite(name, **overrides)
        data.setdefault("cache_dir", str(tmp_path / "cache"))
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return make


@pytest.fixture
def harness_registry():
    from harness.plugin.registry import build_registry

    def build(*plugins: Any):
        modules = [p for p in plugins if isinstance(p, str)]
        objects = [p for p in plugins if not isinstance(p, str)]
        return build_registry(modules, extra_plugins=objects)

    return build


@pytest.fixture
def run_harness(monkeypatch, tmp_path: Path):
    from click.testing import CliRunner

    from harness.cli.main import main

    monkeypatch.setenv("HARNESS_QUIET", "1")

    def invoke(*args: str):
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)

    return invoke
