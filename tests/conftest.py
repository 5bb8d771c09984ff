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
