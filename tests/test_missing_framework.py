"""A framework that is not installed is one line naming the engine and the install command,
for ``list``, ``describe``, ``run --dry-run`` and ``run`` alike (simulated: the framework's
module is made unimportable in a child process)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.plugin import info

LINE = "engine 'keras' needs tensorflow, which is not installed: pip install 'cxr-harness[tf]'"

SCRIPT = """
import json, sys
sys.modules["tensorflow"] = None          # `import tensorflow` fails, as where it is absent
from click.testing import CliRunner
from harness.cli.main import main
out = []
for args in json.loads(sys.argv[1]):
    result = CliRunner().invoke(main, args)
    out.append([result.exit_code, result.output])
print(json.dumps(out))
"""


def test_every_command_names_the_engine_and_the_extra(make_suite, tmp_path):
    suite = make_suite("k", matrix={"backbone": ["tiny"], "sampler": ["none"],
                                    "engine": ["keras"]})
    commands = [["list", "engines"], ["describe", "engine", "keras"],
                ["describe", "backbone", "tiny", "--engine", "keras"],
                ["run", str(suite), "--dry-run", "--runs-dir", str(tmp_path / "runs")],
                ["run", str(suite), "--runs-dir", str(tmp_path / "runs")]]
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(commands)],
                          capture_output=True, text=True, check=True, timeout=300)
    listed, described, backbone, dry, run = json.loads(proc.stdout.splitlines()[-1])
    assert listed[0] == 0
    (keras,) = [ln for ln in listed[1].splitlines() if ln.strip().startswith("keras")]
    assert "(not installed: pip install 'cxr-harness[tf]')" in keras
    (torch,) = [ln for ln in listed[1].splitlines() if ln.strip().startswith("torch")]
    assert "not installed" not in torch
    assert described[0] == 0
    assert "framework: tensorflow (not installed: pip install 'cxr-harness[tf]')" in described[1]
    assert backbone == [2, f"error: {LINE}\n"]
    assert dry == [2, f"error: {suite}: matrix.engine: {LINE}\n"]
    assert run == [2, f"error: {suite}: matrix.engine: {LINE}\n"]
    assert not (tmp_path / "runs" / "k").exists()


def test_describe_picks_the_first_installed_engine_the_backbone_lists(harness_registry,
                                                                      monkeypatch):
    registry = harness_registry()
    assert list(registry.get("backbones", "tiny").builders)[:2] == ["torch", "keras"]
    assert info.default_engine(registry, "tiny") == "torch"
    monkeypatch.setattr(info, "framework_installed", lambda framework: framework != "torch")
    assert info.default_engine(registry, "tiny") == "keras"
    monkeypatch.setattr(info, "framework_installed", lambda framework: not framework)
    with pytest.raises(info.HarnessError, match=r"backbone 'tiny' is built by torch, keras, "
                                                r"but none of these engines is installed "
                                                r"\(engine 'torch' needs torch, which is not "
                                                r"installed: pip install 'cxr-harness\[torch\]'"):
        info.default_engine(registry, "tiny")
