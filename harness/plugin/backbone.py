"""A backbone's spec and the weights it declares (like timm's ``pretrained_cfg``).

Its own module, below ``harness.plugin.engine``: the engine's context holds the run's
``BackboneSpec``, and ``harness.plugin.specs`` (every plugin kind's spec) names that context.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from harness.config.suite import NORMALIZATIONS
from harness.config.validate import suggest
from harness.errors import HarnessError
from harness.plugin.options import Options

O_contra = TypeVar("O_contra", bound=Options, contravariant=True)


@dataclass(frozen=True)
class WeightSource:
    """Weights a backbone can start from: declared by the backbone, like timm's
    ``pretrained_cfg``, so that a suite's ``training.weights`` is checked against them
    before anything runs and ``normalization: auto`` knows what inputs they expect.

    ``name`` is what a suite writes in ``training.weights`` (``imagenet``,
    ``keras-imagenet``); ``description`` says where they come from (the checkpoint, the
    library); ``normalization`` is the ``training.normalization`` they were trained with
    (``unit``, ``imagenet``, ``inception``) or ``None`` when it is none of these (or not
    known: a file), and then ``auto`` is refused; ``engines`` lists the
    ``BackboneSpec.builders`` keys that can load them (empty: every one); ``location`` the
    file or cache they are read from (the harness never downloads weights).

    ``kind``: ``named`` (declared by a backbone), ``random`` (no weights: every backbone
    has :data:`RANDOM_WEIGHTS`), ``file`` (a path the suite gives, made by
    :meth:`BackboneSpec.weights_for`; ``location`` holds it). A builder receives one of
    these, already resolved, and loads by ``kind`` and ``name``.
    """

    name: str
    description: str = ""
    normalization: str | None = "unit"
    engines: tuple[str, ...] = ()
    location: str = ""
    kind: Literal["named", "random", "file"] = "named"

    def __post_init__(self):
        if self.normalization is not None and self.normalization not in NORMALIZATIONS:
            raise ValueError(f"weight source {self.name!r}: normalization "
                             f"{self.normalization!r} is not one of {', '.join(NORMALIZATIONS)}")

    @property
    def path(self) -> Path:
        """The file of a ``file`` source (``~`` expanded)."""
        return Path(self.location).expanduser()

    def loads_in(self, builder: str) -> bool:
        return not self.engines or builder in self.engines

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "normalization": self.normalization, "engines": list(self.engines),
                "location": self.location, "kind": self.kind}


#: Every backbone's untrained start (``training.weights: random``, or ``none``).
RANDOM_WEIGHTS = WeightSource("random", "no weights: the builder's random initialisation",
                              normalization="unit", kind="random")
#: ``training.weights`` values that mean :data:`RANDOM_WEIGHTS`.
RANDOM_NAMES = ("random", "none", "null", "")
#: A ``training.weights`` value is a file when it has a path separator, starts with ``~`` or
#: ``.``, or ends in one of these; any other value must name a declared source.
WEIGHT_FILE_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".h5", ".keras", ".ckpt",
                        ".npz")


def is_weights_file(text: str) -> bool:
    return ("/" in text or "\\" in text or text.startswith(("~", "."))
            or text.lower().endswith(WEIGHT_FILE_SUFFIXES))


class UnknownWeights(HarnessError):
    """A ``training.weights`` value that names no source of the backbone (one line)."""


class BackboneBuilder(Protocol[O_contra]):
    """``build(image_size=, weights=, options=) -> model``; see :class:`BackboneSpec`."""

    def __call__(self, *, image_size: int, weights: WeightSource, options: O_contra) -> Any: ...


#: The backbone contract, per engine: what the model a builder returns must expose. The
#: engine checks it (``EngineSpec.check_backbone``) once when a suite is validated.
BACKBONE_CONTRACT = {
    "torch": "a torch.nn.Module mapping a (B, 3, S, S) float batch to a (B, C, H, W) "
             "feature map, with an integer attribute out_channels == C",
    "keras": "a keras Model mapping a (B, S, S, 3) float batch to a (B, H, W, C) feature map",
}


@dataclass(frozen=True)
class BackboneSpec:
    """A feature extractor, buildable in one or more engines.

    ``builders`` maps an engine name (``"torch"``, ``"keras"``) to a callable
    ``build(image_size=, weights=, options=) -> model`` (keyword arguments; ``weights`` a
    resolved :class:`WeightSource`; ``options`` an instance of ``options``). The
    model must meet ``BACKBONE_CONTRACT[engine]``; the classifier head is added by the
    engine, so every backbone shares it. Builders run only inside worker processes (and once
    in a child process when a suite is validated), so they may import their framework.

    ``weights`` declares the named weight sources (:class:`WeightSource`) its builders
    load; :data:`RANDOM_WEIGHTS` and a weights file are always accepted. The core resolves
    a suite's ``training.weights`` against them (:meth:`weights_for`) when it checks the
    suite, so a name the backbone lacks is refused before anything runs, and a builder is
    never handed a string to interpret.

    Facts about the published network (in the spirit of timm's ``pretrained_cfg``), which
    commands use as defaults instead of naming backbones themselves:
    ``published_batch_size`` is the batch size its original publication trained it with
    (``harness bench`` times it at that batch unless ``--batch-size`` is given; otherwise
    ``harness.cli.describe.DEFAULT_BATCH``); ``bench_default`` marks the networks
    ``harness bench`` times when no ``--backbone`` is given.
    """

    name: str
    description: str
    builders: Mapping[str, BackboneBuilder[Any]]
    options: type[Options] = Options
    published_batch_size: int | None = None
    bench_default: bool = False
    weights: tuple[WeightSource, ...] = ()

    def weight_sources(self, builder: str | None = None) -> list[WeightSource]:
        """:data:`RANDOM_WEIGHTS` and the declared sources (those ``builder`` loads)."""
        return [RANDOM_WEIGHTS, *(w for w in self.weights
                                  if builder is None or w.loads_in(builder))]

    def weights_for(self, builder: str, value: Any) -> WeightSource:
        """``training.weights`` resolved for ``builder``: the one parser of the setting.

        ``random`` (also ``none``, ``null``, empty) is :data:`RANDOM_WEIGHTS`; a declared
        name (any case) its source; a path (:func:`is_weights_file`) a ``file`` source;
        anything else raises :class:`UnknownWeights` naming the backbone's sources.
        """
        if isinstance(value, WeightSource):
            return value
        text = "" if value is None else str(value).strip()
        if text.lower() in RANDOM_NAMES:
            return RANDOM_WEIGHTS
        for source in self.weight_sources(builder):
            if source.name.lower() == text.lower():
                return source
        if is_weights_file(text):
            return WeightSource(text, "a weights file", normalization=None,
                                engines=(builder,), location=text, kind="file")
        names = [s.name for s in self.weight_sources(builder)]
        elsewhere = [s for s in self.weights if s.name.lower() == text.lower()]
        where = (f" ({text!r} loads in {', '.join(elsewhere[0].engines)} only)"
                 if elsewhere else "")
        close = suggest(text, names) if not elsewhere else None
        hint = f" Did you mean {close!r}?" if close else ""
        raise UnknownWeights(
            f"backbone {self.name!r} has no weights {text!r} for the {builder} engine"
            f"{where}.{hint} Expected one of: {', '.join(names)}, or a weights file (a path "
            f"with '/' or ending in {', '.join(WEIGHT_FILE_SUFFIXES[:6])})")

