"""The paper's backbones in the keras engine: registration, shapes, parameter counts, weights.

TensorFlow runs only in child processes (``python -c``), never in the pytest process, so
these tests can share a session with the torch tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from harness import RANDOM_WEIGHTS, WeightSource
from harness.cli.describe import head_params
from harness.errors import HarnessError
from harness.plugin.registry import build_registry

pytestmark = pytest.mark.keras

XCEPTION_NOTOP = 20_861_480  # keras.applications.Xception(include_top=False)
RESNET50V2_NOTOP = 23_564_800  # keras.applications.ResNet50V2(include_top=False)


def weights_of(backbone: str, value: str) -> WeightSource:
    """``training.weights: value`` resolved for ``backbone``'s keras build, as the core does."""
    return build_registry().get("backbones", backbone).weights_for("keras", value)


def run_tf(code: str, timeout: int = 300) -> dict:
    """Run ``code`` in a fresh Python (TensorFlow stays out of this process); last line JSON."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_paper_backbones_registered_for_both_engines_without_importing_frameworks():
    out = run_tf("""
        import json, sys
        from harness.plugin.registry import build_registry
        reg = build_registry()
        specs = {n: sorted(reg.get("backbones", n).builders)
                 for n in ("xception", "resnet50v2", "resnetv2_50_timm", "concat")}
        members = reg.get("backbones", "concat").options().members
        print(json.dumps({"specs": specs, "members": members,
                          "tf": "tensorflow" in sys.modules, "torch": "torch" in sys.modules}))
    """)
    assert out["specs"] == {"xception": ["keras", "torch"], "resnet50v2": ["keras", "torch"],
                            "resnetv2_50_timm": ["torch"], "concat": ["keras", "torch"]}
    assert out["members"] == ["xception", "resnet50v2"]
    assert out["tf"] is False and out["torch"] is False


def test_missing_imagenet_weights_fail_before_building_and_name_file_and_folder(
        tmp_path, monkeypatch):
    from harness_plugins.backbones import keras_models

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    tf_loaded_before = "tensorflow" in sys.modules  # another test may have imported it
    with pytest.raises(HarnessError) as err:
        keras_models.build_xception(image_size=300, weights=weights_of("xception", "imagenet"),
                                    options={})
    message = str(err.value)
    assert "xception_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert str(tmp_path / "kh" / "models") in message
    assert "never downloads" in message
    with pytest.raises(HarnessError, match="resnet50v2_weights_tf_dim_ordering_tf_kernels_notop"):
        keras_models.build_concat(image_size=300, weights=weights_of("concat", "imagenet"),
                                  options={"members": ["resnet50v2", "xception"]})
    # The check needs no framework: it does not import TensorFlow.
    assert ("tensorflow" in sys.modules) == tf_loaded_before


def test_weights_file_path_that_does_not_exist_is_named(tmp_path):
    from harness_plugins.backbones import keras_models

    missing = tmp_path / "my-weights.h5"
    with pytest.raises(HarnessError, match="my-weights.h5"):
        keras_models.build_resnet50v2(image_size=300,
                                      weights=weights_of("resnet50v2", str(missing)), options={})
    assert keras_models.weights_file("xception", RANDOM_WEIGHTS) is None


def test_concat_needs_two_known_members():
    spec = build_registry().get("backbones", "concat")
    with pytest.raises(HarnessError, match="two or more"):
        spec.builders["keras"](image_size=96, weights=RANDOM_WEIGHTS,
                               options={"members": ["xception"]})
    with pytest.raises(HarnessError, match="unknown members"):
        spec.builders["keras"](image_size=96, weights=RANDOM_WEIGHTS,
                               options={"members": ["xception", "vgg"]})


def test_small_models_shapes_and_parameter_counts():
    """Tiny-image variants: same parameters as at 300 (conv nets), smaller feature maps."""
    out = run_tf("""
        import json
        from harness.plugin.registry import build_registry
        from harness_plugins.engines.keras_engine.ops import build_model
        reg = build_registry()
        rows = {}
        for name, size, opts in [("xception", 71, None), ("resnet50v2", 64, None),
                                 ("concat", 96, None),
                                 ("concat", 96, {"members": ["xception", "tiny"]})]:
            model, net = build_model(reg.get("backbones", name), size, 3, "paper", "none", opts)
            key = name if opts is None else "concat_tiny"
            rows[key] = {"shape": list(net.output.shape[1:]), "backbone": net.count_params(),
                         "model": model.count_params(),
                         "out": list(model.output.shape[1:]), "dtype": str(model.output.dtype)}
        print(json.dumps(rows))
    """)
    assert out["xception"]["shape"] == [3, 3, 2048]
    assert out["xception"]["backbone"] == XCEPTION_NOTOP
    assert out["xception"]["model"] == XCEPTION_NOTOP + head_params("paper", (3, 3, 2048), 3)
    assert out["resnet50v2"]["shape"] == [2, 2, 2048]
    assert out["resnet50v2"]["backbone"] == RESNET50V2_NOTOP
    assert out["concat"]["shape"] == [3, 3, 4096]
    assert out["concat"]["backbone"] == XCEPTION_NOTOP + RESNET50V2_NOTOP
    assert out["concat"]["model"] == (XCEPTION_NOTOP + RESNET50V2_NOTOP
                                      + head_params("paper", (3, 3, 4096), 3))
    assert out["concat"]["out"] == [3] and out["concat"]["dtype"] == "float32"
    # tiny gives 6x6x64 at 96 px: pooled to Xception's 3x3 before concatenation
    assert out["concat_tiny"]["shape"] == [3, 3, 2048 + 64]


def test_paper_head_parameter_formula_gives_the_papers_count():
    # 10x10x4096 feature map at 300 px: conv 4096->1024 (+bias), dense 102,400 -> 3 (+bias)
    assert head_params("paper", (10, 10, 4096), 3) == 4_195_328 + 307_203
    assert XCEPTION_NOTOP + RESNET50V2_NOTOP + head_params("paper", (10, 10, 4096), 3) \
        == 48_928_811
