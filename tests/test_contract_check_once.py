"""``harness run`` checks the backbone contract (a child process that imports the engine's
framework: TensorFlow takes seconds) only for runs it will train: a suite whose runs are all
done starts no framework. Counted with an engine whose contract check marks a file, so no
framework is imported here."""

from __future__ import annotations

import textwrap

import pytest

from harness.testing import FAKES

PLUGIN = '''
import os

from harness import EngineSpec, hookimpl
from harness.testing.fakes import CentroidModel


def check_backbone(build, image_size):
    with open(os.environ["CONTRACT_MARKS"], "a") as marks:
        marks.write(f"{os.getpid()}\\n")
    return None


@hookimpl
def register_engines(register):
    register(EngineSpec(name="checked", description="the centroid engine, with a contract "
                        "check that leaves a mark", build=CentroidModel, framework="numpy",
                        backbones="centroid", check_backbone=check_backbone))
'''


@pytest.fixture
def marks(tmp_path, monkeypatch):
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / "contract_marks.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", str(folder))  # the check's child process and workers
    path = tmp_path / "marks.txt"
    monkeypatch.setenv("CONTRACT_MARKS", str(path))
    return lambda: len(path.read_text().split()) if path.exists() else 0


def test_the_contract_is_checked_only_for_runs_left_to_train(make_suite, run_harness,
                                                            tmp_path, marks):
    suite = make_suite("c", plugins=[FAKES, "contract_marks"],
                       matrix={"engine": ["checked"]})
    runs = ["--runs-dir", tmp_path / "runs", "--no-report"]
    result = run_harness("run", suite, "--only", "fold=1", *runs)
    assert result.exit_code == 0, result.output
    assert marks() == 1  # one check for the one pair, in one child process
    result = run_harness("run", suite, "--only", "fold=1", *runs)
    assert result.exit_code == 0, result.output
    assert marks() == 1  # every run done: no check, no framework started
    assert run_harness("run", suite, "--dry-run", *runs).exit_code == 0
    assert marks() == 2  # a dry run checks what a run would
    result = run_harness("run", suite, *runs)  # fold 2 is left: checked again
    assert result.exit_code == 0, result.output
    assert marks() == 3
