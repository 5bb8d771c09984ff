"""Typed plugin options: every option block of a suite is checked by ``run --dry-run``.

Unknown keys name a close match, required options are enforced, values are coerced or
refused against the plugin's own model, and every message is one line naming the suite file
and the key path. Backbones are built once (in a child process) and checked against their
engine's contract.
"""

from __future__ import annotations

import json
import textwrap

import pytest
from pydantic import Field

from harness import Options, SamplerOptions
from harness.plugin.options import OptionsError, option_rows, validate_options


class Demo(Options):
    size: int = Field(3, ge=1, description="how many")
    name: str = Field(description="what it is called")


def test_validate_options_coerces_and_names_the_key_path():
    assert validate_options(Demo, {"size": "7", "name": "x"}, "w", "f.yaml").size == 7
    with pytest.raises(OptionsError) as err:
        validate_options(Demo, {"name": "x", "sise": 2}, "datasets[0].options", "f.yaml")
    assert str(err.value) == ("f.yaml: datasets[0].options.sise: unknown option. Did you mean "
                              "'size'? Options here: size, name")
    with pytest.raises(OptionsError, match=r"^f.yaml: w.name: required option missing "
                                           r"\(expected str: what it is called\)$"):
        validate_options(Demo, {}, "w", "f.yaml")
    with pytest.raises(OptionsError, match=r"^f.yaml: w.size: Input should be greater than or "
                                           r"equal to 1, got 0$"):
        validate_options(Demo, {"size": 0, "name": "x"}, "w", "f.yaml")
    with pytest.raises(OptionsError, match=r"w.size: Input should be a valid integer.*'many'"):
        validate_options(Demo, {"size": "many", "name": "x"}, "w", "f.yaml")
    with pytest.raises(OptionsError, match="takes no options"):
        validate_options(None, {"anything": 1}, "executor.options", "f.yaml")


def test_option_rows_give_type_default_help_and_bounds():
    rows = {r["name"]: r for r in option_rows(Demo)}
    assert rows["size"] == {"name": "size", "type": "int", "default": 3, "required": False,
                            "help": "how many", "bounds": {"minimum": 1}}
    assert rows["name"]["required"] is True and rows["name"]["default"] is None


def test_sampler_options_refuse_budget_and_epochs_together():
    with pytest.raises(OptionsError, match="samplers.x: options 'budget' and 'epochs' are "
                                           "both set"):
        validate_options(SamplerOptions, {"budget": 10, "epochs": 2}, "samplers.x", "f.yaml")


@pytest.mark.parametrize("overrides, expected", [
    ({"datasets": [{"name": "synthetic", "options": {"nn": 50}}]},
     "datasets[0].options.nn: unknown option. Did you mean 'n'?"),
    ({"datasets": [{"name": "synthetic", "options": {"n": 0}}]},
     "datasets[0].options.n: Input should be greater than or equal to 1, got 0"),
    ({"datasets": [{"name": "ieee8023", "options": {"rot": "data"}}]},
     "datasets[0].options.rot: unknown option. Did you mean 'root'?"),
    ({"datasets": [{"name": "ieee8023", "options": {"mapping": "paper"}}]},
     "datasets[0].options.root: required option missing"),
    ({"split": {"kind": "paper", "folds": 5, "options": {"select_form": "none"}}},
     "split.options.select_form: unknown option. Did you mean 'select_from'?"),
    ({"samplers": {"phased": {"quota": {"normal": 3}}}},
     "samplers.phased.quota: unknown option. Did you mean 'quotas'?"),
    ({"samplers": {"focal": {"gamma": "high"}}},
     "samplers.focal.gamma: Input should be a valid number"),
    ({"samplers": {"phazed": {}}}, "samplers.phazed: unknown sampler 'phazed'"),
    ({"executor": {"name": "local", "options": {"gpu": [0]}}},
     "executor.options.gpu: unknown option. Did you mean 'gpus'?"),
    ({"matrix": {"backbone": ["tiny"], "engine": ["torch"]},
      "training": {"backbone_options": {"chanels": [4]}}},
     "training.backbone_options.chanels: unknown option. Did you mean 'channels'?"),
    ({"matrix": {"backbone": ["tiny"], "engine": ["torch"]},
      "backbones": {"tiny": {"backbone_options": {"channels": [4, 0]}}}},
     "backbones.tiny.backbone_options.channels[1]: Input should be greater than 0"),
])
def test_dry_run_rejects_each_plugin_option_mistake(make_suite, run_harness, overrides,
                                                    expected):
    suite = make_suite("opt", **overrides)
    result = run_harness("run", suite, "--dry-run")
    assert result.exit_code == 2, result.output
    assert f"error: {suite}: {expected}" in result.output
    assert "Traceback" not in result.output and result.output.count("\n") == 1


def test_dry_run_accepts_valid_options_and_coerces_them(make_suite, run_harness):
    suite = make_suite("ok", datasets=[{"name": "synthetic", "options": {"n": "80"}}],
                       samplers={"phased": {"quotas": {"covid19": "all"}, "common": {}}})
    result = run_harness("run", suite, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "2 runs" in result.output


NO_CHANNELS = textwrap.dedent('''
    from harness import BackboneSpec, hookimpl

    def build(image_size, weights, options):
        import torch
        return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))

    def build_flat(image_size, weights, options):
        import torch
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())
        net.out_channels = 4
        return net

    @hookimpl
    def register_backbones(register):
        register(BackboneSpec(name="no-channels", description="lacks out_channels",
                              builders={"torch": build}))
        register(BackboneSpec(name="flat", description="returns a vector",
                              builders={"torch": build_flat}))
''')


@pytest.mark.torch
def test_dry_run_checks_the_torch_backbone_contract(make_suite, run_harness, tmp_path,
                                                    monkeypatch):
    pytest.importorskip("torch")
    import subprocess

    (tmp_path / "contract_backbones.py").write_text(NO_CHANNELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    # The check builds every backbone in one child process and the line names the first
    # problem; the child's answer (kept here) shows what it found for each of them.
    children = []
    real_run = subprocess.run

    def run(args, *a, **kw):
        done = real_run(args, *a, **kw)
        if "harness.plugin.check" in args:
            children.append(done)
        return done

    monkeypatch.setattr(subprocess, "run", run)
    suite = make_suite("bb", plugins=["contract_backbones"],
                       matrix={"backbone": ["no-channels", "flat", "tiny"],
                               "engine": ["torch"]})
    result = run_harness("run", suite, "--dry-run")
    assert result.exit_code == 2, result.output
    assert (f"error: {suite}: matrix.backbone: backbone 'no-channels' (engine torch): the torch "
            "module has no integer attribute 'out_channels'") in result.output
    [child] = children
    answer = [line for line in child.stdout.splitlines() if line.startswith("{")][-1]
    problems = {p["backbone"]: p["problem"] for p in json.loads(answer)["problems"]}
    assert set(problems) == {"no-channels", "flat"}  # tiny meets the contract
    assert problems["flat"].startswith("maps a (1, 3, 32, 32) batch to (1, 3600)")


# --- describe and list --json ---------------------------------------------------------------

def test_describe_shows_every_kind_with_plugin_version_and_options(run_harness):
    import json

    from harness.plugin.registry import KINDS, build_registry

    registry = build_registry(["harness.testing.fakes"])
    for kind in KINDS:
        for name in registry.names(kind):
            if kind == "backbones":
                args = ("describe", kind[:-1], name, "--no-build", "--json",
                        "--plugin", "harness.testing.fakes")
            else:
                args = ("describe", kind[:-1], name, "--json", "--plugin",
                        "harness.testing.fakes")
            result = run_harness(*args)
            assert result.exit_code == 0, (kind, name, result.output)
            info = json.loads(result.output)
            assert info["name"] == name and info["kind"] == kind[:-1] and info["description"]
            assert info["plugin"] and info["distribution"].startswith("cxr-harness ")
            assert info["options_schema"]["type"] == "object"
    text = run_harness("describe", "sampler", "progressive").output
    assert "plugin: baseline_samplers (cxr-harness " in text
    assert "phases (int; default 5; >= 2): number of phases of the schedule" in text
    text = run_harness("describe", "dataset", "ieee8023").output
    assert "root (str; required): folder holding metadata.csv" in text
    text = run_harness("describe", "backbone", "tiny", "--no-build").output
    assert "channels (list[int]; default [16, 32, 64, 64]; items >= 1, each > 0)" in text


def test_describe_names_an_unknown_kind_or_name(run_harness):
    result = run_harness("describe", "smapler", "phased")
    assert result.exit_code == 2
    assert "unknown kind 'smapler'; expected one of dataset, backbone, sampler" in result.output
    result = run_harness("describe", "sampler", "phazed")
    assert result.exit_code == 2 and "Did you mean 'phased'?" in result.output


def test_list_json_carries_each_options_schema(run_harness):
    import json

    listing = json.loads(run_harness("list", "--json").output)
    (focal,) = [s for s in listing["samplers"] if s["name"] == "focal"]
    schema = focal["options_schema"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["gamma"]["minimum"] == 0.0
    assert {r["name"] for r in focal["options"]} == {"epochs", "budget", "gamma", "alpha"}


def test_describe_picks_an_engine_whose_framework_is_installed():
    from harness import BackboneSpec, EngineSpec, hookimpl
    from harness.plugin.info import default_engine
    from harness.plugin.registry import build_registry

    class Plugin:
        @hookimpl
        def register_engines(self, register):
            register(EngineSpec(name="absent", description="x", build=lambda c: None,
                                framework="no_such_framework_here"))
            register(EngineSpec(name="present", description="x", build=lambda c: None,
                                framework="json"))

        @hookimpl
        def register_backbones(self, register):
            register(BackboneSpec(name="both", description="x",
                                  builders={"absent": print, "present": print}))

    registry = build_registry(extra_plugins=[Plugin()], entry_points=False)
    assert default_engine(registry, "both") == "present"
