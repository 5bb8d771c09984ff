"""A suite's ``training.weights`` and ``normalization: auto``, resolved once, when it is checked.

Every backbone declares its weight sources (``BackboneSpec.weights``, :class:`WeightSource`);
``BackboneSpec.weights_for`` is the one reading of the setting. Here the core applies it to
every (backbone, engine) pair of a suite, so a wrong name is one ``error: FILE: KEY: ...``
line at ``--dry-run``, and turns ``normalization: auto`` into what the weights declare.

The run id hashes ``normalization`` as written (``auto``), like ``threads: 0``: the resolved
value is what the run records in ``config.json`` (and its fingerprint), so a backbone that
changes what its weights expect makes its runs stale, not new.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

from harness.config.suite import NORMALIZATIONS, RunSpec, Suite, Training, training_for
from harness.errors import HarnessError
from harness.plugin.registry import Registry
from harness.plugin.specs import BackboneSpec, UnknownWeights, WeightSource

#: ``training.normalization`` that takes the weights' own.
AUTO = "auto"


def _key(suite: Suite, backbone: str, setting: str) -> str:
    """Where ``setting`` of ``backbone`` was written: its override, or ``training``."""
    if setting in (suite.backbones.get(backbone) or {}):
        return f"backbones.{backbone}.{setting}"
    return f"training.{setting}"


def normalization_for(setting: str, source: WeightSource) -> str:
    """``setting`` itself, or for ``auto`` the normalization ``source`` declares."""
    if setting != AUTO:
        return setting
    if source.normalization is None:
        what = "a weights file" if source.kind == "file" else source.description
        raise ValueError(f"auto (the default) takes the weights' own, but {source.name!r} "
                         f"({what}) declares none; set one of {', '.join(NORMALIZATIONS)}")
    return source.normalization


def resolved_normalization(training: Training, backbone: BackboneSpec,
                           builder: str) -> Training:
    """``training`` with ``normalization: auto`` the weights' own, for a model built outside
    a suite (``harness describe``/``bench``, a job built by hand); a suite's runs are
    resolved when planned (:func:`with_normalization`). Raises ``ValueError``."""
    if training.normalization != AUTO:
        return training
    source = backbone.weights_for(builder, training.weights)
    return dataclasses.replace(training, normalization=normalization_for(AUTO, source))


def suite_weights(suite: Suite, registry: Registry) -> dict[tuple[str, str], WeightSource]:
    """The weight source of every (backbone, engine) pair of the suite's matrix.

    Raises ``HarnessError`` (one line: file, key, the backbone's sources) for a name the
    backbone does not declare for that engine, or ``auto`` with weights that declare no
    normalization.
    """
    source_file = suite.source or suite.name
    found: dict[tuple[str, str], WeightSource] = {}
    for backbone in suite.matrix.backbone:
        spec = registry.get("backbones", backbone)
        training = training_for(suite, backbone)
        for engine in suite.matrix.engine:
            builder = registry.get("engines", engine).builder
            if builder not in spec.builders:
                continue  # check_names refuses the pair
            try:
                source = spec.weights_for(builder, training.weights)
            except UnknownWeights as exc:
                raise HarnessError(f"{source_file}: {_key(suite, backbone, 'weights')}: "
                                   f"{exc}") from None
            try:
                normalization_for(training.normalization, source)
            except ValueError as exc:
                raise HarnessError(f"{source_file}: "
                                   f"{_key(suite, backbone, 'normalization')}: {exc}") from None
            found[(backbone, engine)] = source
    return found


def with_normalization(run: RunSpec, sources: dict[tuple[str, str], WeightSource]) -> RunSpec:
    """``run`` with ``normalization: auto`` replaced by its weights' (its id unchanged)."""
    if run.training.normalization != AUTO:
        return run
    resolved = normalization_for(AUTO, sources[(run.backbone, run.engine)])
    return dataclasses.replace(run, training=dataclasses.replace(
        run.training, normalization=resolved))

def local_files(source: WeightSource) -> list[Path]:
    """The files a source is read from, where it names them: a ``file`` source's path, or a
    named source whose ``location`` is one or more local paths (``/...`` or ``~/...``,
    separated by ``, ``). A location in words (a library's cache) names none."""
    if source.kind == "file":
        return [source.path]
    if source.kind != "named":
        return []
    parts = [p.strip() for p in source.location.split(", ")]
    if not parts or not all(p.startswith(("/", "~")) for p in parts):
        return []
    return [Path(p).expanduser() for p in parts]


def check_weight_files(suite: Suite, sources: dict[tuple[str, str], WeightSource],
                       pairs: Iterable[tuple[str, str]]) -> None:
    """Refuse, before any image is decoded, weights whose file is not on disk: the builder
    would fail on it only once the run starts. One line: file, key, the missing path."""
    source_file = suite.source or suite.name
    for backbone, engine in dict.fromkeys(pairs):
        source = sources.get((backbone, engine))
        if source is None:
            continue
        missing = [p for p in local_files(source) if not p.is_file()]
        if not missing:
            continue
        key = _key(suite, backbone, "weights")
        if source.kind == "file":
            raise HarnessError(f"{source_file}: {key}: weights file {missing[0].absolute()} "
                               f"does not exist (backbone {backbone!r}, engine {engine!r}); "
                               "give an existing file, a declared name, or 'none'")
        raise HarnessError(f"{source_file}: {key}: weights {source.name!r} of backbone "
                           f"{backbone!r} ({engine} engine) are read from {missing[0]}, which "
                           "does not exist; put the file there (the harness never downloads "
                           "weights) or set weights: none")
