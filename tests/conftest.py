"""Shared fixtures: where ../shared lives (tests that need it skip when it is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("HARNESS_SHARED", Path(__file__).resolve().parents[2] / "shared"))


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data not present at {SHARED}")
    return SHARED


@pytest.fixture
def shared_file(shared_dir):
    """``shared_file("data/rsna-mini/...")``: that path in the shared data folder, or a skip
    that names it when this copy lacks it."""

    def get(relative: str) -> Path:
        path = shared_dir / relative
        if not path.exists():
            pytest.skip(f"{relative} not present in {shared_dir}")
        return path

    return get


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    """``plugin_module(name, source)``: a plugin module importable by ``name`` here and in the
    worker and check processes (``PYTHONPATH``); returns the name."""

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(source)
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setenv("PYTHONPATH", str(tmp_path))
        return name

    return write


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    """No progress bars in test output."""
    monkeypatch.setenv("HARNESS_QUIET", "1")


@pytest.fixture(scope="session")
def interrupted_run(tmp_path_factory):
    """One torch run stopped by SIGTERM and resumed under load, and the same run trained
    through (``tests/interrupted.py``); built once, read by several tests."""
    pytest.importorskip("torch")
    from interrupted import interrupted_torch_run

    return interrupted_torch_run(tmp_path_factory.mktemp("interrupted"))
