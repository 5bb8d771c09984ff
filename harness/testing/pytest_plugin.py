"""The pytest fixtures of ``harness.testing`` (loaded through the ``pytest11`` entry point).

Kept apart from ``harness.testing`` so that package, and the fakes a suite may name as a
plugin, import without pytest installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.testing import small_suite


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
