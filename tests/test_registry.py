"""The plugin system: discovery, name clashes, unknown names, broken plugins, listing."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import types

import pytest

from harness import DatasetSpec, SamplerSpec, hookimpl
from harness.plugin.registry import PluginError, UnknownNameError, build_registry


def sampler_plugin(name: str, plugin_name: str = "p"):
    class Plugin:
        @hookimpl
        def register_samplers(self, register):
            register(SamplerSpec(name=name, description=f"{name} by {plugin_name}",
                                 plan=lambda *a: None))
    Plugin.__name__ = plugin_name
    return Plugin()


def test_builtins_are_registered_through_entry_points():
    registry = build_registry()
    assert "synthetic" in registry.names("datasets")
    assert "grouped-kfold" in registry.names("splitters")
    assert "local" in registry.names("executors")
    entries = registry.entries["datasets"]["synthetic"]
    assert entries.plugin == "synthetic"  # the entry point's name, like any third party


def add_entry_point(monkeypatch, name: str, module: str) -> None:
    """One more ``harness`` entry point, as an installed distribution would declare it."""
    real = importlib.metadata.entry_points

    def fake_entry_points(**kwargs):
        found = list(real(**kwargs))
        if kwargs.get("group") == "harness":
            found.append(importlib.metadata.EntryPoint(name, module, "harness"))
        return found

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)


def test_third_party_entry_point_is_discovered(monkeypatch):
    module = types.ModuleType("harness_foo")

    @hookimpl
    def register_datasets(register):
        register(DatasetSpec(name="foo", description="Foo X-rays", records=lambda o: None,
                             read_image=lambda r, o: None))

    module.register_datasets = register_datasets
    monkeypatch.setitem(sys.modules, "harness_foo", module)
    add_entry_point(monkeypatch, "foo", "harness_foo")
    registry = build_registry()
    assert registry.get("datasets", "foo").description == "Foo X-rays"
    assert registry.entries["datasets"]["foo"].plugin == "foo"


def test_broken_entry_point_names_the_plugin(monkeypatch):
    add_entry_point(monkeypatch, "broken", "no_such_module_xyz")
    with pytest.raises(PluginError, match=r"plugin 'broken'.*no_such_module_xyz.*failed to import"):
        build_registry()


def test_same_name_twice_names_both_plugins():
    with pytest.raises(PluginError) as err:
        build_registry(extra_plugins=[sampler_plugin("dup", "alpha"), sampler_plugin("dup", "beta")],
                       entry_points=False)
    message = str(err.value)
    assert "'dup' is registered twice" in message
    assert "alpha" in message and "beta" in message


def test_unknown_name_lists_known_and_suggests():
    registry = build_registry(extra_plugins=[sampler_plugin("phased"), sampler_plugin("none", "q")],
                              entry_points=False)
    with pytest.raises(UnknownNameError) as err:
        registry.get("samplers", "phazed")
    assert "Did you mean 'phased'?" in str(err.value)
    assert "Known samplers: none, phased" in str(err.value)


def test_plugin_raising_during_registration_is_named():
    class Exploding:
        @hookimpl
        def register_datasets(self, register):
            raise RuntimeError("metadata missing")

    with pytest.raises(PluginError, match=r"raised in register_datasets: RuntimeError: metadata"):
        build_registry(extra_plugins=[Exploding()], entry_points=False)


def test_registering_the_wrong_type_is_refused():
    class Wrong:
        @hookimpl
        def register_samplers(self, register):
            register("not a spec")

    with pytest.raises(PluginError, match="expected a SamplerSpec"):
        build_registry(extra_plugins=[Wrong()], entry_points=False)


def test_misspelled_hook_fails_loudly():
    class Typo:
        @hookimpl
        def register_sampler(self, register):  # missing "s"
            pass

    with pytest.raises(Exception, match="register_sampler"):
        build_registry(extra_plugins=[Typo()], entry_points=False)


def test_suite_plugin_module_that_does_not_import():
    with pytest.raises(PluginError, match=r"'no_such_pkg.plugin' could not be imported"):
        build_registry(["no_such_pkg.plugin"], entry_points=False)


def test_list_json_and_no_framework_import():
    code = ("import sys, json; from click.testing import CliRunner; from harness.cli.main import main;"
            "r = CliRunner().invoke(main, ['list', '--json']);"
            "data = json.loads(r.output);"
            "print(json.dumps({'kinds': sorted(data), 'torch': 'torch' in sys.modules,"
            " 'tf': 'tensorflow' in sys.modules,"
            " 'scale': [m for m in ('mlflow', 'ray', 'submitit', 'tensorboard') if m in sys.modules],"
            " 'synthetic': [d['plugin'] for d in data['datasets']"
            " if d['name'] == 'synthetic']}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["kinds"] == ["backbones", "datasets", "engines", "executors", "samplers", "splitters",
                               "trackers"]
    assert result["torch"] is False and result["tf"] is False
    assert result["scale"] == []  # trackers and executors import their library only when used
    assert result["synthetic"] == ["synthetic"]


def test_list_one_kind_human_readable(run_harness):
    result = run_harness("list", "datasets")
    assert result.exit_code == 0
    assert "synthetic" in result.output and "(plugin: synthetic)" in result.output
    assert "executors:" not in result.output
