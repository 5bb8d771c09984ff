"""Keras weights converted for the torch builds give the same feature maps.

The Keras models get random weights (BatchNorm statistics included), so nothing is
downloaded; the sizes are the smallest that exercise every layer kind (75 px makes the
Xception max-pools meet an even-sized map).
"""

from __future__ import annotations

import numpy as np
import pytest

# torch (and timm, which pulls in torchvision) before TensorFlow: the other order crashes
# the process on import.
torch = pytest.importorskip("torch")
pytest.importorskip("timm")
tf = pytest.importorskip("tensorflow")

from harness_plugins.backbones import keras_convert, keras_models, torch_models


def randomize(model, seed: int = 0) -> None:
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


@pytest.mark.parametrize(("name", "size"), [("xception", 75), ("resnet50v2", 64)])
def test_converted_weights_give_the_keras_feature_maps(name, size, tmp_path, monkeypatch):
    keras_model = keras_models.MEMBERS[name](size, "none")
    randomize(keras_model)
    image = np.random.default_rng(1).uniform(0, 1, (2, size, size, 3)).astype(np.float32)
    expected = keras_model(image, training=False).numpy()

    monkeypatch.setenv(keras_convert.WEIGHTS_ENV, str(tmp_path))
    torch.save(keras_convert.convert(name, keras_model), keras_convert.converted_file(name))
    net = torch_models.BUILDERS[name](size, "keras-imagenet").eval()
    with torch.no_grad():
        got = net(torch.from_numpy(image.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
    assert got.shape == expected.shape
    scale = float(np.abs(expected).max())
    assert scale > 0.1  # the maps are not trivially zero
    # Within 1e-4 with room to spare: 2e-5 of the map's scale. Measured: xception 6e-8
    # (8.9e-5 with torch's symmetric max-pool padding), resnet50v2 2.6e-6 of the scale.
    assert float(np.abs(got - expected).max()) <= 2e-5 * max(1.0, scale)


def test_missing_conversion_says_how_to_make_it(tmp_path, monkeypatch):
    from harness.errors import HarnessError

    monkeypatch.setenv(keras_convert.WEIGHTS_ENV, str(tmp_path))
    with pytest.raises(HarnessError, match="harness weights convert-keras"):
        torch_models.build_concat(64, "keras-imagenet")


def test_convert_command_names_a_missing_h5_file(tmp_path):
    from click.testing import CliRunner

    from harness.cli.main import main

    result = CliRunner().invoke(main, ["weights", "convert-keras", "--backbone", "resnet50v2",
                                       "--h5", str(tmp_path / "none.h5"), "--out",
                                       str(tmp_path / "out")])
    assert result.exit_code == 2 and "none.h5" in result.output
    assert not list((tmp_path / "out").glob("*.pt"))
