"""Keras builders of the paper's backbones: keras.applications models, without their tops.

These are the authors' own networks (``Xception`` and ``ResNet50V2`` from
``keras.applications``). ImageNet weights come only from a local file: the Keras cache
(``$KERAS_HOME/models`` or ``~/.keras/models``) under the exact name Keras itself uses, or a
file the user names. Nothing is ever downloaded; a missing file fails before training with
the name and the folder that were searched.

TensorFlow is imported inside the builders only, so that listing plugins stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from harness import RANDOM_WEIGHTS, HarnessError, WeightSource

from .paper_models import KERAS_FILES as IMAGENET_FILES


def keras_models_dir() -> Path:
    """Where Keras keeps downloaded weights (the same rule Keras itself applies)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def weights_file(name: str, weights: WeightSource) -> Path | None:
    """The weights file a backbone will load, or ``None`` for random init.

    ``imagenet`` and ``keras-imagenet`` (both declared in ``paper_models.py``) are Keras's
    own file. Raises ``HarnessError`` naming the exact file and folder when it does not
    exist, so a run fails before any training starts. Imports no framework.
    """
    if weights.kind == "random":
        return None
    if weights.kind == "named":
        if name not in IMAGENET_FILES:
            raise HarnessError(
                f"backbone {name!r} has no ImageNet weights in the keras engine; "
                "use 'weights: none' or a weights file path")
        folder = keras_models_dir()
        path = folder / IMAGENET_FILES[name]
        if not path.is_file():
            raise HarnessError(
                f"ImageNet weights for keras backbone {name!r} not found: looked for "
                f"{IMAGENET_FILES[name]!r} in {str(folder)!r}. Copy the file there (Keras's "
                "own download cache; $KERAS_HOME moves it), name a weights file with "
                "'weights: /path/to/file.h5', or train from scratch with 'weights: none'. "
                "The harness never downloads weights.")
        return path
    path = weights.path
    if not path.is_file():
        raise HarnessError(
            f"weights file for keras backbone {name!r} not found: {str(path)!r} "
            f"(from 'weights: {weights.location}'); give an existing .h5/.weights.h5 file, "
            "'imagenet' or 'random'")
    return path


def _load(model: Any, path: Path | None, name: str) -> Any:
    if path is None:
        return model
    try:
        model.load_weights(str(path))
    except Exception as exc:  # a wrong file must say which file and which model
        raise HarnessError(
            f"could not load weights {str(path)!r} into keras backbone {name!r}: "
            f"{type(exc).__name__}: {exc}") from exc
    return model


def _application(name: str, factory: str, image_size: int, weights: WeightSource) -> Any:
    path = weights_file(name, weights)  # fail before building anything
    import keras

    build = getattr(keras.applications, factory)
    model = build(include_top=False, weights=None, input_shape=(image_size, image_size, 3))
    model.name = name  # type: ignore[misc]
    return _load(model, path, name)


def build_xception(image_size: int, weights: WeightSource = RANDOM_WEIGHTS,
                   options: Mapping[str, Any] | None = None) -> Any:
    """Keras ``Xception`` (needs ``image_size >= 71``): 10×10×2048 at 300."""
    _check_size("xception", image_size, 71)
    return _application("xception", "Xception", image_size, weights)


def build_resnet50v2(image_size: int, weights: WeightSource = RANDOM_WEIGHTS,
                     options: Mapping[str, Any] | None = None) -> Any:
    """Keras ``ResNet50V2`` (stride in each stage's last block): 10×10×2048 at 300."""
    _check_size("resnet50v2", image_size, 32)
    return _application("resnet50v2", "ResNet50V2", image_size, weights)


def build_tiny(image_size: int, weights: WeightSource = RANDOM_WEIGHTS,
               options: Mapping[str, Any] | None = None) -> Any:
    """The ``tiny`` backbone's keras build (a concat member for quick tests)."""
    from .tiny import build_keras

    return build_keras(image_size, weights, options)


def build_concat(image_size: int, weights: WeightSource = RANDOM_WEIGHTS,
                 options: Mapping[str, Any] | None = None) -> Any:
    """Two or more backbones on ONE shared input, feature maps concatenated on channels.

    A named source (``imagenet``) or ``random`` applies to every member; a file is loaded
    into the whole concatenated backbone. When the members' maps differ in size each is
    area-averaged to the smallest one (as the torch build's adaptive average pooling).
    """
    from .paper_models import ConcatOptions

    members = list(ConcatOptions.of(options).members)
    if len(members) < 2:
        raise HarnessError(f"backbone 'concat' needs two or more members; got {members}")
    unknown = [m for m in members if m not in MEMBERS]
    if unknown:
        raise HarnessError(f"backbone 'concat': unknown members {unknown} for the keras "
                           f"engine; known: {', '.join(sorted(MEMBERS))}")
    file_path = None
    member_weights = weights
    if weights.kind == "file":
        file_path, member_weights = weights_file("concat", weights), RANDOM_WEIGHTS
    elif weights.kind == "named":
        for m in members:  # every missing file is reported before anything is built
            if m in IMAGENET_FILES:
                weights_file(m, weights)
    import keras
    from keras import layers

    nets = [MEMBERS[m](image_size, member_weights, None) for m in members]
    inp = keras.Input((image_size, image_size, 3), name="image")
    maps = [net(inp) for net in nets]
    h = min(int(m.shape[1]) for m in maps)
    w = min(int(m.shape[2]) for m in maps)
    maps = [m if (m.shape[1], m.shape[2]) == (h, w)
            else layers.Resizing(h, w, interpolation="area", name=f"pool_{n}")(m)
            for m, n in zip(maps, members)]
    out = layers.Concatenate(axis=-1, name="concat")(maps)
    model = keras.Model(inp, out, name="concat")
    return _load(model, file_path, "concat")


def _check_size(name: str, size: int, minimum: int) -> None:
    if size < minimum:
        raise HarnessError(f"keras backbone {name!r} needs image_size >= {minimum}; "
                           f"got {size}")


MEMBERS: dict[str, Callable[..., Any]] = {
    "xception": build_xception,
    "resnet50v2": build_resnet50v2,
    "tiny": build_tiny,
}
