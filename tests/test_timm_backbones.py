"""``timm/<model>``: any timm model is a backbone (a ``harness.Family``), with random
init through ``harness run`` and weights only from local files; nothing is downloaded."""

from __future__ import annotations

import json

import pytest

from harness.plugin.registry import Registry, UnknownNameError, build_registry
from harness.plugin.specs import BackboneSpec, Family

pytestmark = [pytest.mark.torch,
              pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")]


def test_a_family_resolves_names_with_its_prefix_and_only_those():
    asked = []

    def resolve(member):
        asked.append(member)
        if member != "a":
            raise LookupError(f"no member {member!r}")
        return BackboneSpec("fam/a", "member a", builders={"torch": print})

    registry = Registry()
    registry.add("backbones", Family("fam/", "a family", resolve), "famplugin")
    assert registry.get("backbones", "fam/a").description == "member a"
    assert registry.entry("backbones", "fam/a").plugin == "famplugin"
    registry.get("backbones", "fam/a")
    assert asked == ["a"]  # resolved once, then known
    with pytest.raises(UnknownNameError, match=r"unknown backbone 'fam/b': no member 'b'"):
        registry.get("backbones", "fam/b")
    with pytest.raises(UnknownNameError, match=r"Known backbones: fam/a, fam/<name>"):
        registry.get("backbones", "other")


@pytest.fixture(scope="module")
def timm():
    return pytest.importorskip("timm")


def test_describe_gives_timms_channels_and_parameters(timm, run_harness):
    result = run_harness("describe", "backbone", "timm/resnet18", "--engine", "torch",
                         "--image-size", "64", "--head", "gap", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    net = timm.create_model("resnet18", pretrained=False, num_classes=0, global_pool="")
    assert info["feature_shape"] == [2, 2, net.num_features]  # 64 / 32 = 2
    assert info["params"]["backbone"]["trainable"] == sum(p.numel() for p in net.parameters())
    assert info["plugin"] == "timm_models" and info["engines"] == ["torch"]


def test_unknown_timm_model_is_one_line_at_dry_run(timm, make_suite, run_harness):
    suite = make_suite("nosuch", matrix={"backbone": ["timm/resnet1"], "engine": ["torch"]})
    result = CliResult(run_harness("run", suite, "--dry-run"))
    assert result.code == 2
    assert result.lines == [
        (f"error: {suite}: matrix.backbone: unknown backbone 'timm/resnet1': timm "
        f"{timm.__version__} has no model 'resnet1'. Did you mean timm/resnet18? List them "
        "with: harness list backbones --timm 'PATTERN'")]


class CliResult:
    def __init__(self, result):
        self.code = result.exit_code
        self.lines = [ln for ln in (result.stderr if hasattr(result, "stderr") else
                                    result.output).splitlines() if ln.strip()]


def test_list_timm_models_by_pattern(timm, run_harness):
    plain = run_harness("list", "backbones", "--timm", "convnext_t*", "--json")
    assert json.loads(plain.output) == {"backbones": [
        f"timm/{m}" for m in timm.list_models("convnext_t*")]}
    same = run_harness("list", "backbones", "timm/convnext_t*", "--json")
    assert same.output == plain.output
    listing = run_harness("list", "backbones").output
    assert "timm/<name>" in listing and "timm/resnet18 " not in listing


def test_imagenet_weights_come_from_the_local_cache_only(timm, tmp_path, monkeypatch):
    from harness.errors import HarnessError
    from harness.plugin.check import build_backbone

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = build_registry().get("backbones", "timm/resnet18")
    with pytest.raises(HarnessError, match=r"ImageNet weights for backbone 'timm/resnet18' "
                                           r"\(timm 'resnet18'\) are not in the local cache"):
        build_backbone(spec, "torch", 32, "imagenet", None)
    # A state dict saved from one build loads into another, from a file.
    import torch

    first = build_backbone(spec, "torch", 32, "none", None)
    torch.save(first.net.state_dict(), tmp_path / "r18.pt")
    second = build_backbone(spec, "torch", 32, str(tmp_path / "r18.pt"), None)
    for (k, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), k


@pytest.mark.slow
def test_timm_resnet18_trains_through_harness_run(timm, make_suite, run_harness, tmp_path):
    suite = make_suite("timmrun", plugins=[], image_size=32,
                       datasets=[{"name": "synthetic", "options": {"n": 60, "seed": 1}}],
                       matrix={"backbone": ["timm/resnet18"], "engine": ["torch"],
                               "sampler": ["none"]},
                       split={"folds": 2},
                       training={"epochs_per_phase": 1, "batch_size": 16, "head": "gap",
                                 "threads": 1})
    result = run_harness("run", suite, "--only", "fold=1", "--no-report", "--json",
                         "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert [r["state"] for r in runs] == ["done"]
    run_dir = tmp_path / "runs" / "timmrun" / runs[0]["run_id"]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["run"]["backbone"] == "timm/resnet18"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0
