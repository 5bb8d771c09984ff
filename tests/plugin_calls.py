"""Call built-in plugin functions directly the way the runner does: options validated into
the plugin's model, and what the runner provides (classes, suite folder, folds) as context.

Tests give one flat mapping (options plus ``classes`` / ``suite_dir`` / ``select_fraction``)
so each test reads as the suite it stands for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import DEFAULT_CLASSES, DatasetContext, SplitterContext
from harness.plugin.options import validate_options


def _dataset(module, options: dict[str, Any] | None):
    options = dict(options or {})
    context = DatasetContext(classes=tuple(options.pop("classes", DEFAULT_CLASSES)),
                             suite_dir=Path(options.pop("suite_dir", ".")),
                             name=module.SPEC.name)
    return validate_options(module.SPEC.options, options, "options", "test"), context


def records(module, options: dict[str, Any] | None = None):
    return module.records(*_dataset(module, options))


def read_image(module, record, options: dict[str, Any] | None = None):
    """Reading one image needs no options here: they are built unchecked."""
    context = DatasetContext(name=module.SPEC.name)
    return module.read_image(record, module.SPEC.options.model_construct(**(options or {})),
                             context)


def fingerprint(module, options: dict[str, Any] | None = None):
    return module.fingerprint(*_dataset(module, options))


def split(fn, model, records_table, n_folds: int, seed: int,
          options: dict[str, Any] | None = None):
    options = dict(options or {})
    context = SplitterContext(folds=n_folds, seed=seed,
                              select_fraction=options.pop("select_fraction", 0.15),
                              classes=tuple(options.pop("classes", DEFAULT_CLASSES)),
                              suite_dir=Path(options.pop("suite_dir", ".")))
    return fn(records_table, validate_options(model, options, "split.options", "test"), context)
