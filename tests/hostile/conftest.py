"""A trained two-run suite, built once per session and copied for each case."""

from __future__ import annotations

import pytest

from hostile.hostile_kit import Workspace


@pytest.fixture(scope="session")
def _template(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("HARNESS_QUIET", "1")
    mp.delenv("HARNESS_HOSTILE", raising=False)
    try:
        space = Workspace(tmp_path_factory.mktemp("hostile") / "template")
        space.root.mkdir()
        space.write_suite()
        result = space.run("--no-report")
        assert result.code == 0, result.err
        assert len(space.finished()) == 2
    finally:
        mp.undo()
    return space


@pytest.fixture
def space(_template, tmp_path, monkeypatch):
    """A copy of the trained suite: two finished runs, a filled cache."""
    monkeypatch.delenv("HARNESS_HOSTILE", raising=False)
    return _template.copy_to(tmp_path / "w")
