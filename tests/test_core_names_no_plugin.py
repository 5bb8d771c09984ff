"""The core names no plugin: built-in plugin names appear in ``harness/`` (code and report
templates) only as defaults
documented in the suite model (``harness/config/suite.py``) and in the test helpers.

Engine names are left out (``BACKBONE_CONTRACT`` states the contract per framework), and so
are names that are also plain words of the core's own vocabulary (``none`` weights,
``focal`` loss, ``paper`` head and selection, ``local``).
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.plugin.registry import build_registry

HARNESS = Path(__file__).resolve().parents[1] / "harness"
DOCUMENTED_DEFAULTS = {"config/suite.py"}
VOCABULARY = {"none", "focal", "paper", "files", "local"}


def builtin_names() -> set[str]:
    registry = build_registry()
    names = set()
    for kind, entries in registry.entries.items():
        if kind == "engines":
            continue
        for name, entry in entries.items():
            if registry.distributions.get(entry.plugin, "").startswith("cxr-harness "):
                names.add(name)
    return names - VOCABULARY


def core_mentions(root: Path, names: set[str]) -> set[tuple[str, str]]:
    """(file, name) for every quoted built-in name in the ``.py`` files and the report
    templates (``.j2``: also a name shown as ``<code>name</code>``) under ``root``, outside
    the documented defaults and the test helpers."""
    alternatives = "|".join(map(re.escape, sorted(names)))
    quoted = re.compile("[\"'](" + alternatives + ")[\"']")
    in_code = re.compile("<code>(" + alternatives + ")</code>")
    found = set()
    for path in [*root.rglob("*.py"), *root.rglob("*.j2")]:
        rel = path.relative_to(root).as_posix()
        if rel in DOCUMENTED_DEFAULTS or rel.startswith("testing/"):
            continue
        text = path.read_text()
        patterns = (quoted, in_code) if path.suffix == ".j2" else (quoted,)
        for pattern in patterns:
            for match in pattern.finditer(text):
                found.add((rel, match.group(1)))
    return found


def test_no_builtin_plugin_name_in_the_core():
    names = builtin_names()
    assert {"phased", "ieee8023", "rsna", "synthetic", "grouped-kfold", "tiny", "xception",
            "resnet50v2", "concat"} <= names
    assert core_mentions(HARNESS, names) == set()


def test_a_name_added_to_the_core_is_found(tmp_path):
    names = builtin_names()
    (tmp_path / "cli").mkdir()
    (tmp_path / "cli" / "bench.py").write_text('DEFAULTS = ["xception", \'concat\']\n'
                                               '"""The concat of two nets."""\n')
    (tmp_path / "analysis" / "templates").mkdir(parents=True)
    (tmp_path / "analysis" / "templates" / "_part.html.j2").write_text(
        '{% for ref in ["none", "phased"] %}{{ ref }}{% endfor %}\n'
        '<p>Against <code>undersample</code>; any sampler, tiny or not.</p>\n')
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "suite.py").write_text('sampler = "phased"\n')  # documented
    assert core_mentions(tmp_path, names) == {
        ("cli/bench.py", "xception"), ("cli/bench.py", "concat"),
        ("analysis/templates/_part.html.j2", "phased"),
        ("analysis/templates/_part.html.j2", "undersample")}


def test_budget_reference_is_a_suite_setting(make_suite, run_harness, tmp_path):
    import json

    suite = make_suite("ref", matrix={"sampler": ["none", "oversample"]}, budget="equal",
                       budget_reference="undersampel")
    result = run_harness("run", suite, "--dry-run")
    assert result.exit_code == 2
    assert "ref.yaml: budget_reference: unknown sampler 'undersampel'. Did you mean " \
           "'undersample'?" in result.output
    suite = make_suite("ref", matrix={"sampler": ["none", "oversample"]}, budget="equal",
                       budget_reference="undersample")
    result = run_harness("run", suite, "--only", "fold=1", "--runs-dir", tmp_path / "runs",
                         "--no-report")
    assert result.exit_code == 0, result.output
    budgets = {json.loads(p.read_text())["sampler"]: json.loads(p.read_text())["budget"]
               for p in (tmp_path / "runs" / "ref").glob("*/plan.json")}
    # both get undersample's budget (2 epochs of a few images per class), well under the
    # natural budget of none (2 epochs of the ~60 training images of fold 1)
    assert budgets["none"] == budgets["oversample"] < 2 * 60


def test_report_references_come_from_the_suite():
    from types import SimpleNamespace

    from harness.analysis.compare import ordered_strategies

    def run(sampler, refs):
        config = {"suite": {"report": {"references": refs}}} if refs is not None else {}
        return SimpleNamespace(sampler=sampler, config=config)

    runs = [run(s, ["focal"]) for s in ("none", "phased", "focal")]
    assert ordered_strategies(runs) == ["focal", "none", "phased"]
    old = [run(s, None) for s in ("focal", "phased", "none")]  # folders before the setting
    assert ordered_strategies(old) == ["none", "phased", "focal"]
