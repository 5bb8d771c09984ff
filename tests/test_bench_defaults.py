"""``harness bench`` takes its defaults from the plugins: the backbones a plugin marks as
bench defaults, each at its published batch size, and the registered engines whose
framework is installed (the others are named as skipped). Framework-free."""

from __future__ import annotations

from dataclasses import replace

import pytest
from click.testing import CliRunner

from harness import BackboneSpec, EngineSpec, hookimpl
from harness.cli.describe import DEFAULT_BATCH, batch_sizes
from harness.cli.main import main
from harness.cli.model_commands import bench_backbones, bench_engines
from harness.errors import HarnessError
from harness.plugin.registry import build_registry


class Extra:
    """An engine whose framework is missing, one that builds only its own backbone, and a
    third-party backbone marked as a bench default with a published batch size."""

    @hookimpl
    def register_engines(self, register):
        def build(context):
            raise AssertionError("not built in these tests")

        register(EngineSpec(name="ghost", description="needs a missing framework",
                            build=build, framework="no_such_framework_here"))
        register(EngineSpec(name="solo", description="builds only solonet", build=build))

    @hookimpl
    def register_backbones(self, register):
        register(BackboneSpec(name="solonet", description="for solo", builders={"solo": None},
                              published_batch_size=7, bench_default=True))


def test_default_backbones_and_batches_come_from_the_specs():
    registry = build_registry()
    assert bench_backbones(registry, ()) == ["xception", "resnet50v2", "concat"]
    assert bench_backbones(registry, ("tiny",)) == ["tiny"]
    assert batch_sizes(registry, ["xception", "resnet50v2", "concat", "tiny"], None) == {
        "xception": 30, "resnet50v2": 30, "concat": 20, "tiny": DEFAULT_BATCH}
    assert batch_sizes(registry, ["concat", "tiny"], 8) == {"concat": 8, "tiny": 8}
    extra = build_registry(extra_plugins=[Extra()])
    assert bench_backbones(extra, ()) == ["xception", "resnet50v2", "concat", "solonet"]
    assert batch_sizes(extra, ["solonet"], None) == {"solonet": 7}
    for entry in registry.entries["backbones"].values():
        entry.spec = replace(entry.spec, bench_default=False)
    with pytest.raises(HarnessError, match="no installed backbone is a bench default"):
        bench_backbones(registry, ())


def test_all_engines_are_the_installed_ones_and_the_rest_are_named():
    registry = build_registry(extra_plugins=[Extra()])
    engines, skipped = bench_engines(registry, "all", ["tiny"])
    assert skipped["ghost"] == "no_such_framework_here is not installed"
    assert skipped["solo"] == "no solo build of tiny"
    assert {"torch", "keras"} <= set(engines) | set(skipped)
    assert set(engines) | set(skipped) == set(registry.names("engines"))
    engines, skipped = bench_engines(registry, "all", ["solonet"])
    assert engines == ["solo"] and set(skipped) >= {"ghost", "keras", "torch"}
    assert bench_engines(registry, "solo", ["solonet"]) == (["solo"], {})
    with pytest.raises(HarnessError, match="engine 'ghost' needs no_such_framework_here, "
                                           "which is not installed: pip install no_such_framework_here"):
        bench_engines(registry, "ghost", ["tiny"])
    with pytest.raises(HarnessError, match="Did you mean 'torch'"):
        bench_engines(registry, "trch", ["tiny"])


def test_bench_names_an_unknown_engine_in_one_line():
    result = CliRunner().invoke(main, ["bench", "--engine", "trch", "--backbone", "tiny"])
    assert result.exit_code == 2
    assert result.output.startswith("error: unknown engine 'trch'. Did you mean 'torch'?")
    assert "Traceback" not in result.output


def test_describe_shows_the_published_batch_and_the_bench_default():
    runner = CliRunner()
    out = runner.invoke(main, ["describe", "backbone", "concat", "--no-build"]).output
    assert "  published batch size: 20\n  timed by default: harness bench\n" in out
    out = runner.invoke(main, ["describe", "backbone", "tiny", "--no-build"]).output
    assert "published batch size" not in out and "timed by default" not in out


def test_bench_prints_the_engines_it_skipped(tmp_path, monkeypatch):
    """``--engine all`` with an engine whose framework is missing: the others are timed (their
    children replaced here by a canned result) and the missing one is named."""
    import sys

    from harness.cli import model_commands

    (tmp_path / "ghost_engine.py").write_text(
        "from harness import EngineSpec, hookimpl\n\n"
        "@hookimpl\ndef register_engines(register):\n"
        "    register(EngineSpec(name='ghost', description='x', build=print,\n"
        "                        framework='no_such_framework_here'))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    timed = []

    def child(task, **kwargs):
        timed.append((task, kwargs.get("engine")))
        if task == "paper-pipeline":
            return {"batch_size": 4, "images_per_s": 10.0}
        return {"device": "cpu", "precision": "float32", "pipeline": {"images_per_s": 20.0},
                "models": [{"backbone": "tiny", "batch_size": 4, "train_images_per_s": 1.0,
                            "infer_images_per_s": 2.0}]}

    monkeypatch.setattr(model_commands, "run_child", child)
    result = CliRunner().invoke(main, ["bench", "--backbone", "tiny", "--plugin",
                                       "ghost_engine"])
    sys.modules.pop("ghost_engine", None)
    assert result.exit_code == 0, result.output
    assert "skipped engine ghost: no_such_framework_here is not installed\n" in result.output
    engines = {e for task, e in timed if task == "bench"}
    assert "ghost" not in engines and engines  # every installed engine that builds tiny
    from harness.plugin.info import framework_installed

    with_tf = framework_installed("tensorflow")  # the paper pipeline is Keras's
    assert (("paper-pipeline", None) in timed) == with_tf
    assert ("paper pipeline (ImageDataGenerator.flow, Table 2): "
            + ("10.0 img/s" if with_tf else "not measured: tensorflow is not installed")
            ) in result.output
