"""Family "data": datasets and splitters that fail, data roots that cannot be read.

The data is read before any run folder is touched: a failure here stops the command with one
line and leaves every finished run as it was, even under ``--rerun all``.
"""

from __future__ import annotations

import pytest

from hostile.hostile_kit import refused

PLUGIN = "plugin 'harness.testing.hostile'"


@pytest.mark.parametrize("fault, hook, words", [
    ("records-raises", "records", "PermissionError"),
    ("records-wrong-type", "records", "returned list, expected a pandas DataFrame"),
    ("split-raises", "split", "KeyError"),
    ("split-bad-index", "split", "outside 0.."),
])
def test_a_misbehaving_data_hook_stops_the_command_in_one_line(space, monkeypatch, fault, hook,
                                                               words):
    kind = "dataset" if hook == "records" else "splitter"
    before = space.finished()
    assert len(before) == 2
    monkeypatch.setenv("HARNESS_HOSTILE", fault)
    refused(space.run("--no-report", "--rerun", "all"), f"{kind} 'hostile'", PLUGIN, hook, words)
    assert space.finished() == before



def test_a_data_root_that_is_a_file_is_refused_in_one_line(space):
    before = space.finished()
    (space.root / "data").write_text("not a folder")
    space.write_suite(datasets=[{"name": "ieee8023", "options": {"root": "data"}}])
    line = refused(space.run("--no-report"), "data")
    assert "ieee8023" in line or "root" in line
    assert space.finished() == before
