"""From a suite to data ready for training: records, the filled image cache, and folds.

Used by ``harness run`` and ``harness data``; each step is a function so commands can stop
after any of them (``data summary`` needs no images, ``data prepare`` no folds).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.config.suite import Suite
from harness.data.cache import CacheView, default_cache_root, fill_cache
from harness.errors import HarnessError
from harness.plugin.check import (
    dataset_context,
    dataset_options,
    split_options,
    splitter_context,
    suite_dir,
)
from harness.plugin.registry import Registry
from harness.plugin.specs import RECORD_COLUMNS, Fold


@dataclass
class Prepared:
    records: pd.DataFrame
    cache: CacheView
    folds: list[Fold]
    #: ``{dataset: {reason: count}}`` of rows and images left out.
    exclusions: dict[str, dict[str, int]]


def load_records(suite: Suite, registry: Registry) -> pd.DataFrame:
    """Concatenate every dataset's records; check labels and uids."""
    frames, exclusions = [], {}
    for i, ref in enumerate(suite.datasets):
        spec = registry.get("datasets", ref.name)
        frame = spec.records(dataset_options(suite, registry, i), dataset_context(suite, i))
        where = f"dataset {ref.name!r} (datasets[{i}] of {suite.source or suite.name})"
        missing = [c for c in RECORD_COLUMNS if c not in frame.columns]
        if missing:
            raise HarnessError(f"{where}: records lack columns {missing}; "
                               f"a dataset must return {list(RECORD_COLUMNS)}")
        unknown = sorted(set(frame["label"]) - set(suite.classes))
        if unknown:
            raise HarnessError(f"{where}: labels {unknown} are not among the suite's classes "
                               f"{suite.classes}; map them in the dataset options or add them "
                               "to 'classes'")
        exclusions[ref.name] = dict(frame.attrs.get("exclusions", {}))
        frame = frame.copy()
        frame["_dataset"] = ref.name
        frames.append(frame)
    records = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    dupes = records["uid"][records["uid"].duplicated()].tolist()
    if dupes:
        raise HarnessError(f"{suite.source}: image uid {dupes[0]!r} appears twice "
                           f"({len(dupes)} duplicates); each dataset must give unique uids")
    records.attrs["exclusions"] = exclusions
    return records


def cache_root(suite: Suite) -> Path:
    if suite.cache_dir:
        root = Path(suite.cache_dir)
        return root if root.is_absolute() else suite_dir(suite) / root
    return default_cache_root()


def prepare_cache(suite: Suite, records: pd.DataFrame, registry: Registry,
                  show_progress: bool = True) -> tuple[CacheView, pd.DataFrame]:
    """Fill the cache; drop (and count) unreadable images unless ``on_bad_image: fail``."""
    readers, options, fingerprints = {}, {}, []
    for i, ref in enumerate(suite.datasets):
        spec = registry.get("datasets", ref.name)
        readers[ref.name] = spec.read_image
        options[ref.name] = (dataset_options(suite, registry, i), dataset_context(suite, i))
        fingerprint = spec.fingerprint(*options[ref.name]) if spec.fingerprint else ""
        fingerprints.append(f"{ref.name}:{fingerprint}")
    cache, errors = fill_cache(cache_root(suite), records, readers, options, fingerprints,
                               suite.image_size, show_progress=show_progress)
    if errors:
        if suite.on_bad_image == "fail":
            first = next(iter(errors.values()))
            raise HarnessError(f"{len(errors)} image(s) could not be read, first: {first}. "
                               "Fix or remove them, or set 'on_bad_image: skip' in the suite")
        bad = records["uid"].isin(errors)
        exclusions = records.attrs["exclusions"]
        for name, n in records[bad].groupby("_dataset").size().items():
            exclusions[name]["unreadable file"] = exclusions[name].get("unreadable file", 0) + int(n)
        records = records[~bad].reset_index(drop=True)
        records.attrs["exclusions"] = exclusions
        records.attrs["unreadable"] = errors
    return cache, records


def make_folds(suite: Suite, records: pd.DataFrame, registry: Registry) -> list[Fold]:
    spec = registry.get("splitters", suite.split.kind)
    folds = spec.split(records, split_options(suite, registry), splitter_context(suite))
    if len(folds) != suite.split.folds:
        raise HarnessError(f"splitter {suite.split.kind!r} returned {len(folds)} folds; the "
                           f"suite asks for split.folds = {suite.split.folds}")
    check_folds(folds, records, suite.split.kind)
    return folds


def check_folds(folds: list[Fold], records: pd.DataFrame, kind: str) -> None:
    """No patient in two parts of one fold: a leak here would make every number a lie."""
    patients = records["patient_id"].astype(str).to_numpy()
    for n, fold in enumerate(folds, start=1):
        parts = {"train": fold.train, "select": fold.select, "test": fold.test}
        seen: dict[str, str] = {}
        for part, idx in parts.items():
            for p in np.unique(patients[np.asarray(idx, dtype=np.int64)]):
                if p in seen and seen[p] != part:
                    raise HarnessError(f"split {kind!r} fold {n}: patient {p!r} is in both "
                                       f"{seen[p]} and {part}; the splitter leaks patients")
                seen[p] = part


def prepare(suite: Suite, registry: Registry, show_progress: bool = True) -> Prepared:
    records = load_records(suite, registry)
    cache, records = prepare_cache(suite, records, registry, show_progress)
    folds = make_folds(suite, records, registry)
    return Prepared(records, cache, folds, records.attrs.get("exclusions", {}))
