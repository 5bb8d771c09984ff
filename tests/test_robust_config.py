"""Settings that cannot run fail at load time; names and paths stay inside their folders."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
import yaml

from harness import store
from harness.config.suite import load_suite
from harness.config.validate import SuiteError
from harness.errors import HarnessError
from harness.testing import small_suite


def write(tmp_path, data, name="suite.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize("patch, message", [
    ({"training": {"max_steps_per_epoch": -1}},
     r"training.max_steps_per_epoch: expected an integer >= 1 \(or null for no cap\), got -1"),
    ({"training": {"max_steps_per_epoch": 0}}, r"training.max_steps_per_epoch: .*got 0"),
    ({"training": {"epochs_per_phase": 10**20}},
     r"training.epochs_per_phase: expected an integer from 1 to 100000, got 1000000000000"),
    ({"training": {"epochs_per_phase": "1e20"}},
     r"training.epochs_per_phase: expected an integer, got '1e20'"),
    ({"training": {"lr": float("nan")}}, r"training.lr: expected a number, got nan \(not a fin"),
    ({"training": {"lr": 0}}, r"training.lr: expected a number > 0 and <= 10, got 0.0"),
    ({"training": {"workers": -4}}, r"training.workers: expected an integer from 0 to 256"),
    ({"training": {"batch_size": 0}}, r"training.batch_size: expected an integer from 1 to"),
    ({"training": {"augmentation": {"rotation": 720}}}, r"augmentation.rotation: .*0 to 360"),
    ({"image_size": 10_000_000}, r"image_size: expected an integer from 8 to 4096, got 10000000"),
    ({"report": {"bootstrap": -1}}, r"report.bootstrap: expected an integer from 0 to 100000"),
    ({"report": {"confusion_folds": [0]}}, r"report.confusion_folds\[0\]: expected an integer"),
    ({"matrix": {"sampler": []}}, r"suite.yaml: matrix.sampler: expected a non-empty list"),
    ({"matrix": {"engine": []}}, r"suite.yaml: matrix.engine: expected a non-empty list"),
    ({"matrix": {"seed": [0, 0]}}, r"matrix.seed: 0 is listed twice"),
    ({"matrix": {"seed": [-1]}}, r"matrix.seed\[0\]: expected an integer from 0 to 4294967295"),
    ({"split": {"seed": -3}}, r"split.seed: expected an integer from 0 to"),
    ({"split": {"folds": 1}}, r"suite.yaml: split.folds: expected an integer from 2 to 100, got 1"),
    ({"budget": 0}, r"budget: expected an integer from 1 to"),
    ({"backbones": {"pixels": {"batch_size": -2}}}, r"backbones.pixels.batch_size: expected an"),
    ({"classes": ["normal", "a/b"]}, r"classes: expected class names of letters.*got 'a/b'"),
    ({"plugins": ["../evil"]}, r"plugins\[0\]: expected a dotted module name, got '../evil'"),
])
def test_unrunnable_settings_fail_at_load_naming_file_and_key(tmp_path, patch, message):
    data = small_suite("b", **patch)
    with pytest.raises(SuiteError, match=message):
        from harness.config.suite import expand
        expand(load_suite(write(tmp_path, data)))


def test_null_max_steps_means_no_cap(tmp_path):
    suite = load_suite(write(tmp_path, small_suite("b", training={"max_steps_per_epoch": None})))
    assert suite.training.max_steps_per_epoch is None
    assert load_suite(write(tmp_path, small_suite("b"))).training.max_steps_per_epoch is None


@pytest.mark.parametrize("name", ["../../../outside", "", "a/b", "..", ".hidden", "-x",
                                  "x" * 65, "tab\there", "/abs"])
def test_suite_name_is_a_slug(tmp_path, name):
    with pytest.raises(SuiteError, match=r"suite.yaml: name: expected a name of letters"):
        load_suite(write(tmp_path, small_suite(name)))


@pytest.mark.parametrize("name", ["demo", "paper-torch", "Sampling_v2.1", "0"])
def test_ordinary_names_pass(tmp_path, name):
    assert load_suite(write(tmp_path, small_suite(name))).name == name


@pytest.mark.parametrize("parts", [("..", "x"), ("a", "../../b"), ("/etc",), ("",), (".",)])
def test_child_paths_never_leave_their_root(tmp_path, parts):
    with pytest.raises(HarnessError, match="would lead outside"):
        store.child(tmp_path / "runs", *parts)
    assert store.child(tmp_path / "runs", "demo", "r1") == tmp_path / "runs" / "demo" / "r1"


def test_report_of_a_tampered_folder_stays_in_reports(tmp_path, monkeypatch):
    """A run folder whose config.json names the suite '../../x' cannot move the report."""
    from harness.analysis.report import render_report

    runs = tmp_path / "runs" / "s"
    store.write_json(runs / "r1" / "config.json", {"suite": {"name": "../../x",
                                                             "classes": ["a", "b"]},
                                                   "run": {"run_id": "r1"}})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(HarnessError, match="would lead outside reports"):
        render_report(runs)
    assert not (tmp_path.parent / "x").exists()


HARNESS = [sys.executable, "-c", "import sys; from harness.cli.main import main; sys.exit(main())"]


@pytest.mark.parametrize("patch, key", [({"name": "../up"}, "name"),
                                        ({"training": {"max_steps_per_epoch": -1}},
                                         "training.max_steps_per_epoch")])
def test_cli_errors_are_one_line_exit_2(tmp_path, patch, key):
    path = write(tmp_path, small_suite(**{"name": "ok", **patch}))
    out = subprocess.run([*HARNESS, "run", str(path), "--dry-run"], check=False,
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0, out.stderr
    assert f"suite.yaml: {key}: expected" in out.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_users_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        store.write_json(tmp_path / "a.json", {"x": 1})
        store.write_text(tmp_path / "sub" / "b.txt", "y")
    finally:
        os.umask(old)
    for p in (tmp_path / "a.json", tmp_path / "sub" / "b.txt"):
        assert stat.S_IMODE(p.stat().st_mode) == mode, p


def test_run_and_report_files_are_readable_by_others(make_suite, tmp_path):
    from harness.runs.runner import run_suite

    old = os.umask(0o022)
    try:
        run_suite(make_suite("perm"), runs_root=tmp_path / "runs",
                  reports_root=tmp_path / "reports", echo=lambda m: None, show_progress=False)
    finally:
        os.umask(old)
    files = [p for root in ("runs", "reports") for p in (tmp_path / root).rglob("*")
             if p.is_file()]
    assert len(files) > 10 and any(p.name == "index.html" for p in files)
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o644}


def test_fakes_load_without_pytest(tmp_path):
    """``plugins: [harness.testing.fakes]`` in a suite works where pytest is not installed."""
    code = ("import sys; sys.modules['pytest'] = None\n"
            "from harness.plugin.registry import build_registry\n"
            "r = build_registry(['harness.testing.fakes'])\n"
            "print(r.get('engines', 'centroid').name)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "centroid"
