"""Weights as data: backbones declare their weight sources (``harness.WeightSource``), the core
resolves ``training.weights`` against them once (``BackboneSpec.weights_for``), and
``normalization`` (default ``auto``) takes what the weights declare."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness import RANDOM_WEIGHTS, BackboneSpec, HarnessError, WeightSource
from harness.config.shipped import shipped_suites
from harness.config.suite import NORMALIZATIONS, expand, load_suite, parse_suite
from harness.engine_api import NORMALIZATION, host_inputs
from harness.plugin.registry import build_registry
from harness.plugin.specs import UnknownWeights
from harness.plugin.weights import suite_weights, with_normalization
from harness.testing import small_suite

HERE = Path(__file__).resolve().parent
NET = BackboneSpec("net", "", builders={"torch": print, "keras": print}, weights=(
    WeightSource("imagenet", "timm's", "imagenet", engines=("torch",)),
    WeightSource("imagenet", "Keras's", "inception", engines=("keras",)),
    WeightSource("keras-imagenet", "Keras's", "inception", engines=("keras",)),
))


@pytest.fixture(scope="module")
def registry():
    return build_registry(["harness.testing.fakes"])


@pytest.mark.parametrize("value", [None, "", "none", "None", "null", "random", " Random "])
def test_random_and_its_spellings(value):
    assert NET.weights_for("torch", value) is RANDOM_WEIGHTS
    assert RANDOM_WEIGHTS.kind == "random" and RANDOM_WEIGHTS.normalization == "unit"


def test_a_name_resolves_to_the_source_its_engine_declares():
    torch, keras = NET.weights_for("torch", "ImageNet"), NET.weights_for("keras", "imagenet")
    assert (torch.description, torch.normalization) == ("timm's", "imagenet")
    assert (keras.description, keras.normalization) == ("Keras's", "inception")
    assert NET.weights_for("keras", torch) is torch  # a resolved source passes through
    assert [s.name for s in NET.weight_sources("keras")] == ["random", "imagenet",
                                                               "keras-imagenet"]


@pytest.mark.parametrize("value", ["runs/x/best.pt", "~/w.h5", "./w", "w.safetensors",
                                   r"C:\w\x"])
def test_a_path_is_a_file_source_with_no_declared_normalization(value):
    source = NET.weights_for("torch", value)
    assert (source.kind, source.location, source.normalization) == ("file", value, None)
    assert source.engines == ("torch",)


def test_an_unknown_name_lists_the_sources_of_the_backbone():
    with pytest.raises(UnknownWeights) as err:
        NET.weights_for("torch", "imagnet")
    assert str(err.value) == (
        "backbone 'net' has no weights 'imagnet' for the torch engine. Did you mean "
        "'imagenet'? Expected one of: random, imagenet, or a weights file (a path with '/' "
        "or ending in .pt, .pth, .bin, .safetensors, .h5, .keras)")
    with pytest.raises(UnknownWeights, match=r"'keras-imagenet' loads in keras only\)\. "
                                             r"Expected one of: random, imagenet, or"):
        NET.weights_for("torch", "keras-imagenet")
    with pytest.raises(ValueError, match="normalization 'caffe' is not one of"):
        WeightSource("x", normalization="caffe")


def test_the_paper_networks_declare_their_sources(registry):
    expected = {  # (name, engine) -> normalization
        ("imagenet", "keras"): "inception", ("keras-imagenet", "keras"): "inception",
        ("imagenet", "torch"): "inception", ("keras-imagenet", "torch"): "inception",
    }
    for name in ("xception", "resnet50v2", "concat"):
        spec = registry.get("backbones", name)
        declared = {(s.name, e): s.normalization for s in spec.weights for e in s.engines}
        assert declared == expected, name
        assert "notop.h5" in spec.weights_for("keras", "imagenet").location
        assert "convert-keras" in spec.weights_for("torch", "keras-imagenet").description
    timm_only = registry.get("backbones", "resnetv2_50_timm")
    assert [(s.name, s.engines) for s in timm_only.weights] == [("imagenet", ("torch",))]
    tiny = registry.get("backbones", "tiny")
    assert tiny.weights == () and tiny.weight_sources() == [RANDOM_WEIGHTS]


@pytest.mark.torch
def test_declared_torch_checkpoints_are_timms_defaults_with_their_statistics():
    """What ``imagenet`` loads in torch (timm's default tag) and the statistics its cfg gives."""
    timm = pytest.importorskip("timm")
    from harness_plugins.backbones import paper_models, timm_models, torch_models

    for backbone, checkpoint in paper_models.TIMM_CHECKPOINTS.items():
        model = torch_models.TIMM_NAMES[backbone]
        cfg = timm.models.get_pretrained_cfg(model)
        assert checkpoint == f"{model}.{cfg.tag}"
        assert timm_models.normalization_of(cfg.mean, cfg.std) == "inception"
    assert timm_models.normalization_of((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)) \
        == "imagenet"
    assert timm_models.normalization_of((0.0,) * 3, (1.0,) * 3) == "unit"
    assert timm_models.normalization_of((0.481, 0.458, 0.408), (0.269, 0.261, 0.276)) is None
    r18 = build_registry().get("backbones", "timm/resnet18").weights_for("torch", "imagenet")
    assert r18.normalization == "imagenet" and "resnet18.a1_in1k" in r18.description


def test_every_named_normalization_has_statistics_and_inception_is_minus_one_to_one():
    assert set(NORMALIZATION) == set(NORMALIZATIONS)
    x = host_inputs(np.array([[[0, 255]]], np.uint8), normalization="inception")
    assert x.shape == (1, 3, 1, 2) and np.allclose(x[0, :, 0], [[-1, 1]] * 3)


def _suite(tmp_path, **training):
    data = small_suite("w", training={"weights": "none", **training})
    path = tmp_path / "w.yaml"
    return parse_suite(data, str(path)), path


def test_auto_takes_the_weights_normalization_and_keeps_the_run_ids(registry, tmp_path):
    data = small_suite("w", matrix={"backbone": ["xception", "tiny"], "engine": ["torch", "keras"]},
                       training={"weights": "imagenet", "normalization": "auto"},
                       backbones={"tiny": {"weights": "random"}})
    suite = parse_suite(data, str(tmp_path / "w.yaml"))
    sources = suite_weights(suite, registry)
    assert sources[("xception", "torch")].description.startswith("timm legacy_xception")
    assert sources[("xception", "keras")].description.startswith("Keras's ImageNet")
    runs = expand(suite)
    resolved = [with_normalization(r, sources) for r in runs]
    assert [r.run_id for r in resolved] == [r.run_id for r in runs]
    assert {(r.backbone, r.training.normalization) for r in resolved} == {
        ("xception", "inception"), ("tiny", "unit")}
    assert {r.training.normalization for r in runs} == {"auto"}  # the id's input
    # Written out, it hashes as written: auto and the value it resolves to are two ids.
    written = parse_suite({**data, "training": {**data["training"], "normalization": "inception"}},
                          str(tmp_path / "w.yaml"))
    assert expand(written)[0].run_id != runs[0].run_id


def test_auto_with_a_weights_file_asks_for_the_normalization(registry, tmp_path):
    suite, path = _suite(tmp_path, weights="runs/best.pt", normalization="auto")
    with pytest.raises(HarnessError) as err:
        suite_weights(suite, registry)
    assert str(err.value) == (
        f"{path}: training.normalization: auto (the default) takes the weights' own, but "
        "'runs/best.pt' (a weights file) declares none; set one of unit, imagenet, inception")


def test_dry_run_refuses_an_unknown_weights_name_in_one_line(make_suite, run_harness):
    suite = make_suite("typo", training={"weights": "imagnet"})
    result = run_harness("run", suite, "--dry-run")
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        (f"error: {suite}: training.weights: backbone 'pixels' has no weights 'imagnet' for "
        "the centroid engine. Did you mean 'imagenet'? Expected one of: random, imagenet, "
        "keras-imagenet, or a weights file (a path with '/' or ending in .pt, .pth, .bin, "
        ".safetensors, .h5, .keras)")]
    override = make_suite("over", backbones={"pixels": {"weights": "tf"}})
    result = run_harness("run", override, "--dry-run")
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {override}: backbones.pixels.weights: backbone "
                                    "'pixels' has no weights 'tf'")


def test_a_run_records_the_resolved_normalization(make_suite, run_harness, tmp_path):
    suite = make_suite("auto", training={"normalization": "auto", "weights": "imagenet"})
    result = run_harness("run", suite, "--only", "fold=1", "--no-report", "--json",
                         "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)["runs"][0]
    config = json.loads((tmp_path / "runs" / "auto" / run["run_id"] / "config.json").read_text())
    assert config["run"]["training"]["normalization"] == "unit"  # pixels' stand-in sources
    assert run["run_id"] == expand(load_suite(suite))[0].run_id


def test_shipped_suites_keep_their_run_ids():
    """Recorded before weights became data (main at 6d22fb2); a suite edit must update it."""
    recorded = json.loads((HERE / "shipped_run_ids.json").read_text())
    assert sorted(recorded) == sorted(shipped_suites())
    for name, ids in recorded.items():
        assert [r.run_id for r in expand(load_suite(name))] == ids, name


def test_the_paper_suites_state_the_authors_scaling():
    """The authors fed [0, 1] to weights that expect [-1, 1]; reproductions say so."""
    for name in ("paper", "paper-clean", "paper-clean-testselect", "paper-torch"):
        assert load_suite(name).training.normalization == "unit", name


def test_describe_lists_the_weight_sources(run_harness):
    result = run_harness("describe", "backbone", "resnet50v2", "--no-build")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    start = lines.index("  weights (training.weights; engine; normalization for auto):")
    assert lines[start + 1] == ("    random (every engine; unit): no weights: the builder's "
                                "random initialisation")
    assert lines[start + 2].startswith("    imagenet (keras; inception): Keras's ImageNet "
                                       "weights (keras.applications resnet50v2")
    assert lines[start + 3].startswith("    imagenet (torch; inception): timm "
                                       "resnetv2_50.a1h_in1k")
    assert lines[start + 6] == ("    or a weights file path (every engine; normalization "
                                "not declared)")
    info = json.loads(run_harness("describe", "backbone", "resnet50v2", "--no-build",
                                  "--json").output)
    assert [(w["name"], w["engines"], w["normalization"]) for w in info["weights"]] == [
        ("random", [], "unit"), ("imagenet", ["keras"], "inception"),
        ("imagenet", ["torch"], "inception"), ("keras-imagenet", ["keras"], "inception"),
        ("keras-imagenet", ["torch"], "inception")]


@pytest.mark.torch
def test_builders_receive_the_resolved_source():
    """``random`` is no weights in torch as in keras; the builder is handed a source."""
    pytest.importorskip("torch")
    from harness.plugin.engine import build_backbone

    tiny = build_registry().get("backbones", "tiny")
    seen = []
    spy = BackboneSpec("spy", "", builders={"torch": lambda **kw: seen.append(kw["weights"])},
                       weights=NET.weights)
    build_backbone(spy, "torch", 16, "imagenet", None)
    assert seen == [NET.weights[0]]
    model = build_backbone(tiny, "torch", 16, "random", {"channels": [4, 4]})
    assert model.out_channels == 4
    with pytest.raises(HarnessError, match=r"backbone 'tiny' has no weights 'keras-imagenet' "
                                           r"for the torch engine"):
        build_backbone(tiny, "torch", 16, "keras-imagenet", {"channels": [4, 4]})


def test_the_default_normalization_follows_the_weights(registry, tmp_path):
    """Unset, ``normalization`` is ``auto``: each run scales its inputs as its weights expect
    (inception for timm's and Keras's Xception), random initialisation gets ``unit``, and a
    weights file, which declares nothing, must be told."""
    from harness.config.suite import Training

    assert Training().normalization == "auto"
    data = small_suite("d", matrix={"backbone": ["xception", "tiny"], "engine": ["torch", "keras"]},
                       training={"weights": "imagenet"}, backbones={"tiny": {"weights": "none"}})
    suite = parse_suite(data, str(tmp_path / "d.yaml"))
    sources = suite_weights(suite, registry)
    resolved = [with_normalization(r, sources) for r in expand(suite)]
    assert {(r.backbone, r.engine, r.training.normalization) for r in resolved} == {
        ("xception", "torch", "inception"), ("xception", "keras", "inception"),
        ("tiny", "torch", "unit"), ("tiny", "keras", "unit")}
    unset, _ = _suite(tmp_path, weights="runs/best.pt")
    with pytest.raises(HarnessError, match="training.normalization: auto [(]the default[)]"):
        suite_weights(unset, registry)
    # The shipped suites write out what they scale by, so their ids stay as recorded.
    for name, file in shipped_suites().items():
        assert "normalization" in yaml.safe_load(Path(file).read_text())["training"], name



def test_a_context_built_by_hand_must_say_its_scaling_and_describe_resolves_auto():
    from harness.config.suite import Training
    from harness.engine_api import EngineContext
    from harness.plugin.weights import resolved_normalization

    with pytest.raises(ValueError, match="normalization 'auto' is not resolved"):
        EngineContext(backbone=NET, image_size=8, n_classes=3, training=Training())
    assert resolved_normalization(Training(weights="imagenet"), NET, "keras").normalization \
        == "inception"
    assert resolved_normalization(Training(weights="imagenet"), NET, "torch").normalization \
        == "imagenet"
    assert resolved_normalization(Training(weights="none"), NET, "torch").normalization == "unit"
