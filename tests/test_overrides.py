"""``harness run SUITE key.path=value``: overrides set on the raw suite, checked by the same
validator, named in its messages, recorded in ``config.json`` and part of the run ids."""

from __future__ import annotations

import json

import pytest
import yaml

import harness
from harness.config.overrides import apply_overrides, parse_override
from harness.config.suite import SuiteError, expand, load_suite


def test_values_are_yaml_and_numeric_parts_index_lists():
    data = {"training": {"lr": 0.1}, "datasets": [{"name": "a", "options": {}}]}
    out = apply_overrides(data, ["training.lr=0.001", "matrix.sampler=[none, focal]",
                                 "datasets.0.options.root=/data/x", "datasets[0].name=b",
                                 "training.max_steps_per_epoch=null", "report.title=a=b"])
    assert out["training"] == {"lr": 0.001, "max_steps_per_epoch": None}
    assert out["matrix"] == {"sampler": ["none", "focal"]}
    assert out["datasets"] == [{"name": "b", "options": {"root": "/data/x"}}]
    assert out["report"] == {"title": "a=b"}  # split at the first '='
    assert data == {"training": {"lr": 0.1}, "datasets": [{"name": "a", "options": {}}]}
    assert parse_override("split.folds=3") == (["split", "folds"], 3)


@pytest.mark.parametrize("item, message", [
    ("training.lr=abc", "override training.lr=abc: expected a number, got 'abc'"),
    ("training.lrr=1", "override training.lrr=1: unknown key. Did you mean 'lr'?"),
    ("trainin.lr=1", "override trainin.lr=1: trainin: unknown key. Did you mean 'training'?"),
    ("training.augmentation={rotation: x}",
     ("override training.augmentation={rotation: x}: training.augmentation.rotation: "
     "expected a number")),
    ("training.lr.x=1", "override training.lr.x=1: training.lr is 0.01, not a mapping"),
    ("datasets.3.name=x", ("override datasets.3.name=x: datasets is a list of 1; expected an "
                          "index from 0 to 0")),
    ("training.lr=[1", "override training.lr=[1: the value is not valid YAML"),
    ("training", "override 'training': expected key.path=value"),
])
def test_a_bad_override_is_one_line_naming_it(make_suite, item, message):
    suite = make_suite("o", training={"lr": 0.01})
    with pytest.raises(SuiteError) as err:
        load_suite(suite, [item])
    assert str(err.value).startswith(message), str(err.value)


def test_plugin_options_and_folds_set_by_an_override_are_named_too(make_suite, tmp_path):
    suite = make_suite("o")
    with pytest.raises(harness.HarnessError, match=r"^override datasets.0.options.nn=5: "
                                                   r"unknown option. Did you mean 'n'\?"):
        harness.run(str(suite), overrides=["datasets.0.options.nn=5"], dry_run=True,
                    runs_dir=tmp_path / "runs")
    with pytest.raises(harness.HarnessError,
                       match=r"^override matrix.fold=\[7\]: fold 7 does not exist"):
        harness.run(str(suite), overrides=["matrix.fold=[7]"], dry_run=True,
                    runs_dir=tmp_path / "runs")


def test_run_ids_change_with_what_changes_a_run_only(make_suite):
    suite = make_suite("o")
    plain = [r.run_id for r in expand(load_suite(suite))]
    assert [r.run_id for r in expand(load_suite(suite, ["report.title=Other"]))] == plain
    lr = [r.run_id for r in expand(load_suite(suite, ["training.lr=0.5"]))]
    assert len(lr) == len(plain) and not set(lr) & set(plain)
    same = load_suite(suite, ["training.lr=0.5"])
    assert same.training.lr == 0.5 and [r.run_id for r in expand(same)] == lr
    assert load_suite(suite, ["training.lr=1e-3"]).training.lr == 0.001  # YAML 1.1: a string


def test_cli_run_records_overrides_and_print_config_shows_the_resolved_suite(
        make_suite, run_harness, tmp_path):
    suite = make_suite("o")
    shown = run_harness("run", suite, "training.lr=0.25", "matrix.fold=[1]", "--print-config")
    assert shown.exit_code == 0, shown.output
    assert shown.output.startswith(f"# suite 'o' from {suite} with training.lr=0.25 "
                                   "matrix.fold=[1]\n")
    printed = yaml.safe_load(shown.output)
    assert printed["training"]["lr"] == 0.25 and printed["matrix"]["fold"] == [1]
    assert printed["training"]["optimizer"] == "nadam"  # defaults filled in
    assert not (tmp_path / "runs").exists()
    # what --print-config prints is a suite that loads back to the same runs
    (tmp_path / "printed.yaml").write_text(shown.output)
    again = load_suite(tmp_path / "printed.yaml")
    assert [r.run_id for r in expand(again)] == [
        r.run_id for r in expand(load_suite(suite, ["training.lr=0.25", "matrix.fold=[1]"]))]

    dry = run_harness("run", suite, "training.lr=0.25", "matrix.fold=[1]", "--dry-run",
                      "--json", "--runs-dir", tmp_path / "runs")
    assert dry.exit_code == 0, dry.output
    planned = json.loads(dry.output)
    assert planned["overrides"] == ["training.lr=0.25", "matrix.fold=[1]"]
    assert [r["fold"] for r in planned["runs"]] == [1]

    done = run_harness("run", suite, "training.lr=0.25", "matrix.fold=[1]", "--runs-dir",
                       tmp_path / "runs", "--no-report")
    assert done.exit_code == 0, done.output
    (run_dir,) = [d for d in (tmp_path / "runs" / "o").iterdir() if d.is_dir()]
    assert run_dir.name == planned["runs"][0]["run_id"]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["overrides"] == ["training.lr=0.25", "matrix.fold=[1]"]
    assert config["run"]["training"]["lr"] == 0.25

    bad = run_harness("run", suite, "training.lr=abc", "--dry-run")
    assert bad.exit_code == 2
    assert bad.output.strip() == "error: override training.lr=abc: expected a number, got 'abc'"


def test_the_api_takes_overrides_for_a_dict(tmp_path):
    from harness.testing import small_suite

    result = harness.run(small_suite("api-o"), overrides=["matrix.fold=[2]"], dry_run=True,
                         runs_dir=tmp_path / "runs")
    assert [r.fold for r in result.runs] == [2]
