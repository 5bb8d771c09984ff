"""``training.weights`` reads the same in every backbone and engine (``harness.parse_weights``)."""

from __future__ import annotations

import pytest

from harness import HarnessError, Weights, parse_weights


@pytest.mark.parametrize("value", [None, "", "none", "None", "null", "random", " Random "])
def test_no_weights(value):
    assert parse_weights(value) == Weights("none")


def test_named_and_file():
    assert parse_weights("ImageNet") == Weights("named", "imagenet")
    assert parse_weights("keras-imagenet") == Weights("named", "keras-imagenet")
    assert parse_weights("runs/x/best.pt") == Weights("file", "runs/x/best.pt")
    assert parse_weights("imagenet", named=()) == Weights("file", "imagenet")


def test_random_means_no_weights_in_torch_as_in_keras():
    """Before, ``random`` was a missing file for the torch builders (and none in Keras)."""
    pytest.importorskip("torch")
    from harness_plugins.backbones import keras_models, tiny

    assert keras_models.no_weights("random")
    model = tiny.build_torch(16, "random", {"channels": [4, 4]})
    assert model.out_channels == 4
    with pytest.raises(HarnessError, match=r"no ImageNet weights \(keras-imagenet\)"):
        tiny.build_torch(16, "keras-imagenet", {"channels": [4, 4]})
