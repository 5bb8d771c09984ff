"""The core's layers (pyproject.toml, ``[tool.importlinter]``; docs/architecture.md).

A module imports only from its own package or from the layers below it, and no modules
import each other in a circle, lazy imports and ``TYPE_CHECKING`` imports included.
"""

from __future__ import annotations

import graphlib
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp")
cli = pytest.importorskip("importlinter.cli")

ROOT = Path(__file__).resolve().parent.parent


def lint(config: Path, monkeypatch) -> int:
    monkeypatch.chdir(ROOT)
    return cli.lint_imports(config_filename=str(config), no_cache=True, no_logo=True)


def test_the_layers_hold(monkeypatch, capsys):
    assert lint(ROOT / "pyproject.toml", monkeypatch) == 0, capsys.readouterr().out


def test_a_broken_layer_is_reported(tmp_path, monkeypatch, capsys):
    """The contract can fail: with analysis above runs (runs renders the report), it does."""
    text = (ROOT / "pyproject.toml").read_text()
    swapped = text.replace('    "harness.runs",\n    "harness.analysis | ',
                           '    "harness.analysis",\n    "harness.runs | ')
    assert swapped != text
    config = tmp_path / "pyproject.toml"
    config.write_text(swapped)
    assert lint(config, monkeypatch) == 1
    assert "harness.runs.runner -> harness.analysis.report" in capsys.readouterr().out


def circles(imports: dict[str, set[str]]) -> list[str]:
    """One circle of ``imports`` (module -> modules it imports) per call, or none."""
    try:
        graphlib.TopologicalSorter(imports).prepare()
    except graphlib.CycleError as exc:
        return exc.args[1]
    return []


def test_no_circles():
    graph = grimp.build_graph("harness")
    imports = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert circles(imports) == []
    found = circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})  # the check can fail
    assert set(found) == {"a", "b", "c"} and found[0] == found[-1]
