"""Family "plugins": a plugin that raises or breaks its contract fails its run (or the
command) with one line naming the plugin, its distribution, the hook and the run; the
other runs go on."""

from __future__ import annotations

import pytest

from hostile.hostile_kit import no_traceback, refused

PLUGIN = "plugin 'harness.testing.hostile'"

#: fault -> (what fails, hook, words of the message)
RUN_FAULTS = {
    "plan-raises": ("sampler", "plan", "ZeroDivisionError"),
    "plan-wrong-type": ("sampler", "plan", "returned list, expected a Plan"),
    "plan-bad-index": ("sampler", "plan", "outside 0.."),
    "build-raises": ("engine", "build", "MemoryError: out of device memory"),
    "train-raises": ("engine", "train_epoch", "AttributeError"),
    "predict-raises": ("engine", "predict", "IndexError"),
    "predict-wrong-type": ("engine", "predict", "returned str"),
    "predict-rows": ("engine", "predict", "one row per image"),
    "predict-sum": ("engine", "predict", "sum to 1"),
    "predict-nan": ("engine", "predict", "not finite"),
}


@pytest.mark.parametrize("fault", list(RUN_FAULTS))
def test_a_misbehaving_hook_fails_its_run_in_one_line_and_the_others_go_on(space, monkeypatch,
                                                                           fault):
    kind, hook, words = RUN_FAULTS[fault]
    if kind == "sampler":  # the broken plan comes first; the run after it must still train
        # (budget: natural, as under budget: equal every run's plan asks every sampler)
        space.write_suite(matrix={"sampler": ["hostile", "none"]}, budget="natural")
    else:  # the centroid run of fold 1 is the template's, finished: it must stay so
        space.write_suite(matrix={"engine": ["hostile", "centroid"]})
    monkeypatch.setenv("HARNESS_HOSTILE", fault)
    result = space.run("--no-report", "--only", "fold=1")
    no_traceback(result)
    assert result.code == 1, result.err  # documented: 1 when a run failed
    failed = [f for f in space.folders() if f.state() == "failed"]
    done = [f for f in space.folders() if f.verified() is None]
    assert len(failed) == 1 and "hostile" in failed[0].name
    assert {f.name for f in done} >= {f.name for f in space.folders()} - {failed[0].name}
    assert any("none-centroid-f1" in f.name for f in done)  # the other run went on
    error = failed[0].status().error
    for part in (f"{kind} 'hostile'", PLUGIN, hook, words, failed[0].name):
        assert part in error, (part, error)
    assert "\n" not in error
    assert f"failed: {failed[0].name}: {error}" in result.out


def test_verbose_adds_the_plugins_traceback(space, monkeypatch):
    space.folders()[1].status_path.unlink()
    monkeypatch.setenv("HARNESS_HOSTILE", "records-raises")
    from click.testing import CliRunner

    from harness.cli.main import VERBOSE, main

    monkeypatch.setenv("HARNESS_VERBOSE", "0")  # restored after the test (-v sets it)
    try:
        result = CliRunner().invoke(main, ["-v", "run", str(space.suite), "--runs-dir",
                                           str(space.runs), "--no-report"])
    finally:
        VERBOSE[0] = False
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and "hostile.py" in result.stderr


def test_verbose_shows_a_failed_runs_traceback(space, monkeypatch):
    space.write_suite(matrix={"engine": ["hostile", "centroid"]})
    monkeypatch.setenv("HARNESS_HOSTILE", "predict-raises")
    monkeypatch.delenv("HARNESS_QUIET")
    monkeypatch.setenv("HARNESS_VERBOSE", "0")  # restored after the test (-v sets it)
    from click.testing import CliRunner

    from harness.cli.main import VERBOSE, main

    args = ["run", str(space.suite), "--runs-dir", str(space.runs), "--no-report",
            "--only", "fold=1"]
    try:
        result = CliRunner().invoke(main, ["-v", *args])
    finally:
        VERBOSE[0] = False
    assert result.exit_code == 1
    assert "Traceback" in result.stdout and "IndexError: index 3" in result.stdout


def test_a_plugin_name_that_is_a_path_is_refused(tmp_path, monkeypatch):
    module = tmp_path / "slashy.py"
    module.write_text(
        "from harness import SamplerSpec, hookimpl\n"
        "from harness_plugins.samplers.baseline import plan_none\n"
        "@hookimpl\n"
        "def register_samplers(register):\n"
        "    register(SamplerSpec(name='../../escape', description='x', plan=plan_none))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from hostile.hostile_kit import Workspace

    space = Workspace(tmp_path / "w")
    space.root.mkdir()
    space.write_suite(plugins=["harness.testing.fakes", "harness.testing.hostile", "slashy"])
    refused(space.run("--no-report"), "plugin 'slashy'", "'../../escape'", "folder names")
    assert not (space.runs).exists() and not (tmp_path / "escape").exists()
