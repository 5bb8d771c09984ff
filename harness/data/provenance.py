"""What data a run came from: per dataset its version, label mapping and class counts.

Written into every run's ``config.json`` under ``"data"`` so a result can be traced to the
exact copy of each dataset (a git commit where the dataset root is a clone, else a content
hash of its metadata and image list; see ``DatasetSpec.version``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from harness.config.suite import Suite
from harness.plugin.check import dataset_context
from harness.plugin.options import Options
from harness.plugin.registry import Registry


def dataset_version(suite: Suite, registry: Registry, i: int,
                    options: Options) -> dict[str, Any]:
    """The version of the suite's ``i``-th dataset (whose validated options are
    ``options``): ``DatasetSpec.version``, else its ``fingerprint``, else nothing."""
    ref = suite.datasets[i]
    spec = registry.get("datasets", ref.name)
    context = dataset_context(suite, i)
    if spec.version is not None:
        return dict(spec.version(options, context))
    if spec.fingerprint is not None:
        return {"fingerprint": spec.fingerprint(options, context)}
    return {}


def data_provenance(suite: Suite, records: pd.DataFrame, registry: Registry,
                    options: Sequence[Options]) -> dict[str, Any]:
    """``{dataset: {"version": {...}, "options": {...}, "counts": {class: n}, "images": n}}``.

    ``counts`` are the images the suite uses (after every exclusion); a dataset without a
    ``version`` callable is identified by its ``fingerprint`` when it has one. ``options``
    are the datasets' validated options (``CheckedSuite.datasets``).
    """
    out: dict[str, Any] = {}
    by_dataset = records.groupby("_dataset")["label"] if "_dataset" in records else None
    for i, ref in enumerate(suite.datasets):
        version = dataset_version(suite, registry, i, options[i])
        labels = (by_dataset.get_group(ref.name) if by_dataset is not None
                  and ref.name in by_dataset.groups else pd.Series([], dtype=str))
        found = labels.value_counts().to_dict()
        out[ref.name] = {
            "version": version,
            "options": dict(ref.options),
            "counts": {c: int(found.get(c, 0)) for c in suite.classes},
            "images": len(labels),
        }
    return out
