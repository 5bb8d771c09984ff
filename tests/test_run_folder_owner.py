"""``harness/rundir/folder.py`` is the one module that knows the files of a run folder.

Every other module under ``harness/`` reaches them through ``RunFolder`` and ``SuiteRuns``;
this test fails when one names such a file in its code (a string, an f-string part) or uses
the file-name constants. Docstrings and comments may name the files to explain them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import harness
from harness import store
from harness.rundir import folder

HARNESS = Path(harness.__file__).parent
OWNER = HARNESS / "rundir" / "folder.py"
#: The file names of a run folder and of its suite folder, and the constants that hold them.
FILES = ("config.json", "plan.json", "plan.npz", "status.json", "history.csv", "predictions.csv",
         "metrics.json", "manifest.json", "trackers.json", ".owner.json")
CONSTANTS = ("CONFIG", "PLAN", "PLAN_ARRAYS", "STATUS", "HISTORY", "PREDICTIONS", "METRICS", "CHECKPOINTS",
             "MANIFEST", "TRACKERS", "ARTIFACTS", "OUTPUTS", "OWNER", "LOCK", "TRACKERS_FILE")


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def offences(source: str) -> list[str]:
    """Where ``source`` names a run-folder file or constant (line: what)."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docs:
            named = [f for f in FILES if f in node.value]
            if named or node.value == "checkpoints":
                found.append(f"line {node.lineno}: {node.value!r}")
        elif isinstance(node, ast.Attribute) and node.attr in CONSTANTS:
            found.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("harness.runs", "harness.rundir")):
            found += [f"line {node.lineno}: imports {a.name}" for a in node.names
                      if a.name in CONSTANTS]
    return found


def test_only_the_folder_module_names_run_folder_files():
    modules = sorted(p for p in HARNESS.rglob("*.py") if p != OWNER)
    assert len(modules) > 40  # the whole core is searched
    bad = {str(p.relative_to(HARNESS)): hits for p in modules
           if (hits := offences(p.read_text()))}
    assert bad == {}


def test_store_keeps_only_generic_io():
    assert not [name for name in CONSTANTS if hasattr(store, name)]
    assert not offences(Path(store.__file__).read_text())
    assert not hasattr(store, "run_state")
    # ... and the folder module does name them, so the search above looks for the right text.
    assert len(offences(OWNER.read_text())) >= len(FILES) - 1


@pytest.mark.parametrize("line", [
    'path = run_dir / "metrics.json"',
    'path = run_dir / f"{name}/history.csv"',
    "from harness.rundir.folder import CONFIG",
    "names = folder.PREDICTIONS",
    'path = run_dir / "checkpoints"',
])
def test_the_search_finds_each_way_of_naming_a_file(line):
    assert offences(f'"""The docstring may say config.json."""\n{line}\n')


def test_folder_constants_are_the_files_a_run_writes(tmp_path):
    """The names above are the ones ``RunFolder`` writes (the search is not for stale names)."""
    run = folder.RunFolder(tmp_path / "r")
    run.path.mkdir()
    run.write_status("done")
    run.write_metrics({"n": 1})
    with run.history_appender(["epoch"]) as history:
        history.append({"epoch": 1})
    run.write_predictions("uid,true,pred\n")
    suite = folder.SuiteRuns(tmp_path)
    suite.write_manifest("s", "s.yaml", ["r"])
    suite.write_trackers([], [])
    written = {p.name for p in tmp_path.rglob("*") if p.is_file()}
    assert {"status.json", "metrics.json", "history.csv", "predictions.csv",
            "manifest.json", "trackers.json"} <= written
    assert written <= set(FILES)


def test_history_rows_and_their_damage(tmp_path):
    from test_report import write_run

    run = folder.RunFolder(write_run(tmp_path / "s", "none", 1, n=30))
    assert run.history() is None and run.verified() is None   # no history: still complete
    with run.history_appender(["epoch", "loss"]) as history:
        history.append({"epoch": 1, "loss": 0.5})
        history.append({"epoch": 2, "loss": 0.25})
    assert run.history() == [{"epoch": "1", "loss": "0.5"}, {"epoch": "2", "loss": "0.25"}]
    assert run.finished().history == run.history()
    text = run.history_path.read_text()
    run.history_path.write_text(text[:-3])
    damage = run.verified()
    assert damage is not None and damage.path == run.history_path
    assert "line 3 is cut short" in damage.problem
    run.history_path.write_text(text + "3\r\n")
    assert "line 4: 1 field(s) where the header has 2" in run.verified().problem
    run.write_history([{"epoch": 1, "loss": 0.5}], ["epoch", "loss"])
    assert run.verified() is None and len(run.history()) == 1


def test_suite_files(tmp_path):
    suite = folder.SuiteRuns(tmp_path)
    assert suite.run_ids() is None and suite.trackers() is None and suite.folders() == []
    suite.write_manifest("s", "s.yaml", ["a", "b"])
    suite.write_trackers(["p"], [{"name": "t"}])
    assert suite.run_ids() == {"a", "b"}
    assert suite.trackers() == (["p"], [{"name": "t"}])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    folder.RunFolder(tmp_path / "a").write_status("running")
    assert [f.name for f in suite.folders()] == ["a"] and not suite.has_runs()
    suite.trackers_path.write_text('{"trackers": 3}')
    with pytest.raises(folder.DamagedFile, match="trackers.json: expected lists"):
        suite.trackers()
    (tmp_path / "manifest.json").write_text("{")
    assert suite.run_ids() is None
