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
