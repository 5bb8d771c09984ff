"""Helpers for testing harness plugins the way the harness tests itself.

``small_suite`` and the fakes (``plugins: [harness.testing.fakes]``) need no pytest. The
pytest plugin (``harness.testing.pytest_plugin``, installed through the ``pytest11`` entry
point) gives every test session:

- ``make_suite(**overrides)``: writes a small suite YAML (synthetic data, fast settings) into
  ``tmp_path`` and returns its path; overrides are merged key by key.
- ``harness_registry(*plugins)``: a registry with extra plugin objects or modules.
- ``run_harness(*args)``: runs the ``harness`` CLI in-process and returns click's result.

Also without pytest: ``write_suite`` (a small suite as a file), ``plan_with`` and
``records_with`` (call a sampler / dataset as the runner would).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from harness.config.suite import DEFAULT_CLASSES
from harness.plugin.options import validate_options
from harness.plugin.specs import (
    DatasetContext,
    OptionsContext,
    Plan,
    SamplerContext,
)

FAKES = "harness.testing.fakes"


def small_suite(name: str = "t", **overrides: Any) -> dict[str, Any]:
    """A suite that runs in seconds: synthetic data, the centroid engine, two folds."""
    suite: dict[str, Any] = {
        "name": name,
        "plugins": [FAKES],
        "image_size": 32,
        "datasets": [{"name": "synthetic", "options": {"n": 120, "seed": 1}}],
        "split": {"kind": "grouped-kfold", "folds": 2, "seed": 0},
        "matrix": {"backbone": ["pixels"], "sampler": ["none"], "engine": ["centroid"]},
        "training": {"epochs_per_phase": 2, "batch_size": 16, "weights": "none"},
        "report": {"bootstrap": 50},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(suite.get(key), dict):
            suite[key] = {**suite[key], **value}
        else:
            suite[key] = value
    return suite


def write_suite(path: Path, name: str = "t", **overrides: Any) -> Path:
    """``small_suite(name, **overrides)`` written as YAML to ``path``."""
    path = Path(path)
    path.write_text(yaml.safe_dump(small_suite(name, **overrides), sort_keys=False))
    return path


def plan_with(spec: Any, labels: Any, options: Mapping[str, Any] | None = None, *,
              classes: Sequence[str] = DEFAULT_CLASSES, budget: int | None = None,
              epochs_per_phase: int = 1, split_phases: list[list[int]] | None = None,
              seed: Any = 0) -> Plan:
    """Call a sampler spec's ``plan`` as the runner would: options validated, a context built."""
    opts = validate_options(spec.options, options or {}, f"samplers.{spec.name}", "test",
                            OptionsContext(classes=tuple(classes)))
    context = SamplerContext(classes=tuple(classes), rng=np.random.default_rng(seed),
                             budget=budget, epochs_per_phase=epochs_per_phase,
                             split_phases=split_phases)
    return spec.plan(np.asarray(labels), opts, context)


def records_with(spec: Any, options: Mapping[str, Any] | None = None, *,
                 classes: Sequence[str] = DEFAULT_CLASSES, suite_dir: str | Path = "."):
    """Call a dataset spec's ``records`` as the runner would; returns the records table."""
    opts = validate_options(spec.options, options or {}, "datasets[0].options", "test",
                            OptionsContext(classes=tuple(classes), datasets=(spec.name,)))
    return spec.records(opts, dataset_context(spec, classes, suite_dir))


def dataset_context(spec: Any, classes: Sequence[str] = DEFAULT_CLASSES,
                    suite_dir: str | Path = ".") -> DatasetContext:
    return DatasetContext(classes=tuple(classes), suite_dir=Path(suite_dir), name=spec.name)
