"""Helpers for testing harness plugins the way the harness tests itself.

``small_suite`` and the fakes (``plugins: [harness.testing.fakes]``) need no pytest. The
pytest plugin (``harness.testing.pytest_plugin``, installed through the ``pytest11`` entry
point) gives every test session:

- ``make_suite(**overrides)``: writes a small suite YAML (synthetic data, fast settings) into
  ``tmp_path`` and returns its path; overrides are merged key by key.
- ``harness_registry(*plugins)``: a registry with extra plugin objects or modules.
- ``run_harness(*args)``: runs the ``harness`` CLI in-process and returns click's result.

The fake ``centroid`` engine and ``pixels`` backbone (``harness.testing.fakes``) train in
milliseconds without any framework.
"""

from __future__ import annotations

from typing import Any

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
