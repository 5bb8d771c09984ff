"""Family "security": suite files built to hurt the parser, and values that would become
spreadsheet formulas or paths."""

from __future__ import annotations

import csv

import pytest

from harness.analysis.exports import spreadsheet_safe
from hostile.hostile_kit import SUITE, harness, refused

LAUGHS = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 10))


@pytest.mark.parametrize("text, words", [
    ("name: a\nname: b\n", ["duplicate key 'name'", "line 2", "first at line 1"]),
    ("name: h\nmatrix:\n  seed: [0]\n  seed: [1]\n", ["duplicate key 'seed'", "line 4"]),
    ("l0: &l0 [x, x, x, x, x, x, x, x, x]\n" + LAUGHS, ["aliases expand to more than"]),
    ("a: " + "[" * 5000 + "]" * 5000 + "\n", ["nested more than 64 levels"]),
    ("a: " + "{b: " * 3000 + "1" + "}" * 3000 + "\n", ["nested more than 64 levels"]),
    ("x: &x 1\n" + "".join(f"k{i}: *x\n" for i in range(1001)), ["more than 1000 aliases"]),
])
def test_a_hostile_suite_file_is_refused_in_one_line(tmp_path, text, words):
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    line = refused(harness("run", path, "--dry-run"), str(path), "not valid YAML", *words)
    assert len(line) < 300


def test_a_suite_that_is_not_utf8_is_refused_in_one_line(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    refused(harness("run", path, "--dry-run"), str(path), "not UTF-8", "0xe9", "line 1")


def test_a_suite_with_a_bom_is_read(tmp_path):
    import yaml

    from hostile.hostile_kit import suite_data

    path = tmp_path / "suite.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + yaml.safe_dump(suite_data()).encode())
    assert harness("run", path, "--dry-run").code == 0


@pytest.mark.parametrize("value, expected", [
    ("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"), ("+1+1", "'+1+1"), ("-cmd", "'-cmd"),
    ("@SUM(A1)", "'@SUM(A1)"), ("\t=1", "'\t=1"), ("normal", "normal"), (-0.25, -0.25),
    ("-0.25", "-0.25"), (3, 3), ("", ""), (None, None),
])
def test_spreadsheet_cells_are_neutralised_and_numbers_stay_numbers(value, expected):
    assert spreadsheet_safe(value) == expected


def test_dataset_values_that_look_like_formulas_reach_no_export_as_formulas(space,
                                                                           monkeypatch):
    monkeypatch.setenv("HARNESS_HOSTILE", "records-formula")
    result = space.run("--rerun", "all")
    assert result.code == 0, result.err
    report = space.reports / SUITE
    exports = sorted(report.glob("*.csv"))
    assert exports
    seen_source = False
    for path in exports:
        for row in csv.reader(path.open()):
            for cell in row:
                if cell[:1] in ("=", "+", "-", "@"):
                    float(cell)  # only numbers may start so: a negative number stays one
                seen_source |= cell.startswith("'=HYPERLINK")
    assert seen_source  # the formula-like source values reached the exports, neutralised
