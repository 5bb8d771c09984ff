"""The suites ship as package data (``harness_suites``): ``harness run demo`` from any folder,
runs and reports under the current folder (or ``--out``), and ``--dry-run`` says where."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from harness.config.shipped import shipped_suites
from harness.config.suite import expand, load_suite

REPO = Path(__file__).resolve().parents[1]
FAKE = ["plugins=[harness.testing.fakes]", "matrix.engine=[centroid]",
        "matrix.backbone=[pixels]"]


def test_every_suite_of_the_repository_is_shipped_and_loads_by_name(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    shipped = shipped_suites()
    assert set(shipped) == {p.stem for p in (REPO / "suites").glob("*.yaml")}
    assert {"demo", "paper", "paper-clean", "paper-torch", "sampling"} <= set(shipped)
    for name in shipped:
        suite = load_suite(name)
        assert suite.name == name and Path(suite.source).is_file()
        assert expand(suite)
    assert load_suite("demo.yaml").source == load_suite("demo").source


def test_a_name_that_is_neither_a_file_nor_shipped_names_the_shipped_ones(run_harness,
                                                                          monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    result = run_harness("run", "nosuch", "--dry-run")
    assert result.exit_code == 2
    assert result.output.startswith("error: nosuch: no such suite file (or shipped suite: "
                                    "demo, paper, paper-clean")


def test_demo_by_name_from_another_folder_says_where_runs_and_report_go(run_harness,
                                                                         monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    result = run_harness("run", "demo", *FAKE, "--dry-run")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:4] == ["suite 'demo': 8 runs", f"  file:   {shipped_suites()['demo']}",
                         f"  runs:   {tmp_path / 'runs' / 'demo'}",
                         f"  report: {tmp_path / 'reports' / 'demo' / 'index.html'}"]
    out = run_harness("run", "demo", *FAKE, "--dry-run", "--out", "elsewhere",
                      "--reports-dir", "pages")
    assert out.output.splitlines()[2:4] == [
        f"  runs:   {tmp_path / 'elsewhere' / 'runs' / 'demo'}",
        f"  report: {tmp_path / 'pages' / 'demo' / 'index.html'}"]
    assert list(tmp_path.iterdir()) == []  # a dry run writes nothing


def test_list_suites_aligns_names_and_names_files(run_harness):
    result = run_harness("list", "suites")
    assert result.exit_code == 0, result.output
    rows = result.output.splitlines()[1:]
    assert [r.split()[0] for r in rows] == list(shipped_suites())
    assert len({r.index(r.split(maxsplit=1)[1]) for r in rows}) == 1, rows  # one column
    for row, path in zip(rows, shipped_suites().values()):
        assert row.endswith(f"({path})")


LONG_NAMES = """
from harness import SamplerSpec, hookimpl

@hookimpl
def register_samplers(register):
    from harness_plugins.samplers.baseline import plan_none
    register(SamplerSpec(name="a-sampler-with-a-rather-long-name", description="long",
                         plan=plan_none))
"""


def test_plugin_listing_aligns_long_names(run_harness, plugin_module):
    result = run_harness("list", "samplers", "--plugin", plugin_module("long_names", LONG_NAMES))
    assert result.exit_code == 0, result.output
    rows = [r for r in result.output.splitlines()[1:] if r.startswith("  ")]
    assert "a-sampler-with-a-rather-long-name" in {r.split()[0] for r in rows}
    assert len({r.index(r.split(maxsplit=1)[1]) for r in rows}) == 1, rows


@pytest.mark.slow
def test_a_built_wheel_holds_the_suites(tmp_path):
    """What `pip install` installs: the wheel built from this tree has every suite file."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for folder in ("harness", "plugins", "suites"):
        shutil.copytree(REPO / folder, src / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("cxr_harness-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for suite in (REPO / "suites").glob("*.yaml"):
        assert f"harness_suites/{suite.name}" in names
    assert "harness_suites/__init__.py" in names
