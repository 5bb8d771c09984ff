"""Keras weights converted for the torch builds give the same feature maps.

The Keras models get random weights (BatchNorm statistics included), so nothing is
downloaded; the sizes are the smallest that exercise every layer kind (75 px makes the
Xception max-pools meet an even-sized map). TensorFlow runs in a child process, as in the
keras engine's tests, so the test process never imports it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")
if importlib.util.find_spec("tensorflow") is None:
    pytest.skip("tensorflow is not installed", allow_module_level=True)

CHECK = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import torch, timm  # before TensorFlow: the other order crashes the process on import
    import tensorflow as tf
    from harness_plugins.backbones import keras_convert, keras_models, torch_models
    from harness import RANDOM_WEIGHTS
    from harness.plugin.registry import build_registry

    def randomize(model, seed=0):
        rng = np.random.default_rng(seed)
        for layer in model.layers:
            weights = layer.get_weights()
            if not weights:
                continue
            if type(layer).__name__ == "BatchNormalization":
                n = weights[0].shape
                weights = [rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n),
                           rng.normal(0, 0.1, n), rng.uniform(0.5, 1.5, n)]
            else:
                weights = [rng.normal(0, np.sqrt(2.0 / max(1, np.prod(w.shape[:-1]))), w.shape)
                           for w in weights]
            layer.set_weights([w.astype(np.float32) for w in weights])

    out = {}
    for name, size in (("xception", 75), ("resnet50v2", 64)):
        keras_model = keras_models.MEMBERS[name](size, RANDOM_WEIGHTS)
        randomize(keras_model)
        image = np.random.default_rng(1).uniform(0, 1, (2, size, size, 3)).astype(np.float32)
        expected = keras_model(image, training=False).numpy()
        torch.save(keras_convert.convert(name, keras_model), keras_convert.converted_file(name))
        source = build_registry().get("backbones", name).weights_for("torch", "keras-imagenet")
        net = torch_models.BUILDERS[name](size, source).eval()
        with torch.no_grad():
            got = net(torch.from_numpy(image.transpose(0, 3, 1, 2))).numpy()
        got = got.transpose(0, 2, 3, 1)
        out[name] = {"shape": [list(got.shape), list(expected.shape)],
                     "scale": float(np.abs(expected).max()),
                     "diff": float(np.abs(got - expected).max())}
    print(json.dumps(out))
""")


def test_converted_weights_give_the_keras_feature_maps(tmp_path):
    env = {**os.environ, "HARNESS_WEIGHTS_DIR": str(tmp_path),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                          env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for name in ("xception", "resnet50v2"):
        r = result[name]
        assert r["shape"][0] == r["shape"][1]
        assert r["scale"] > 0.1  # the maps are not trivially zero
        # Within 1e-4 with room to spare: 2e-5 of the map's scale. Measured: xception 6e-8
        # (8.9e-5 with torch's symmetric max-pool padding), resnet50v2 2.6e-6 of the scale.
        assert r["diff"] <= 2e-5 * max(1.0, r["scale"]), (name, r)
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == [
        "resnet50v2-keras-imagenet.pt", "xception-keras-imagenet.pt"]


def test_missing_conversion_says_how_to_make_it(tmp_path, monkeypatch):
    from harness_plugins.backbones import keras_convert, torch_models

    from harness.errors import HarnessError
    from harness.plugin.registry import build_registry

    monkeypatch.setenv(keras_convert.WEIGHTS_ENV, str(tmp_path))
    with pytest.raises(HarnessError, match="harness weights convert-keras"):
        torch_models.build_concat(64, build_registry().get("backbones", "concat")
                                  .weights_for("torch", "keras-imagenet"))


def test_convert_command_names_a_missing_h5_file(tmp_path):
    from click.testing import CliRunner

    from harness.cli.main import main

    result = CliRunner().invoke(main, ["weights", "convert-keras", "--backbone", "resnet50v2",
                                       "--h5", str(tmp_path / "none.h5"), "--out",
                                       str(tmp_path / "out")])
    assert result.exit_code == 2 and "none.h5" in result.output
    assert not list((tmp_path / "out").glob("*.pt"))
    assert "tensorflow" not in sys.modules  # the test process never imports it
