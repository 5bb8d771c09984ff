"""From a suite to data ready for training: records, the filled image cache, and folds.

Used by ``harness run`` and ``harness data``; each step is a function so commands can stop
after any of them (``data summary`` needs no images, ``data prepare`` no folds). Each takes
the options ``harness.plugin.check`` validated (``CheckedSuite``): nothing here validates
them again.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import store
from harness.config.suite import Suite
from harness.data.cache import (
    ERRORS,
    FILLED,
    CacheDamaged,
    CacheState,
    CacheView,
    cache_key,
    cache_state,
    default_cache_root,
    fill_cache,
    open_cache,
)
from harness.errors import HarnessError
from harness.plugin import guard
from harness.plugin.check import CheckedSuite, dataset_context, splitter_context, suite_dir
from harness.plugin.registry import Registry
from harness.plugin.specs import RECORD_COLUMNS, DatasetContext, Fold


@dataclass
class Prepared:
    records: pd.DataFrame
    cache: CacheView
    folds: list[Fold]
    #: ``{dataset: {reason: count}}`` of rows and images left out.
    exclusions: dict[str, dict[str, int]]
    #: Images left out because they could not be read: see :func:`unreadable_images`.
    dropped: list[dict[str, str]] = field(default_factory=list)
    #: ``config.json``'s ``"data"``: per dataset its version, options and class counts.
    provenance: dict[str, Any] = field(default_factory=dict)
    #: Warnings about the data raised while splitting (e.g. "differs from the paper").
    notes: list[str] = field(default_factory=list)


def load_records(suite: Suite, registry: Registry, checked: CheckedSuite) -> pd.DataFrame:
    """Concatenate every dataset's records; check labels and uids."""
    frames, exclusions = [], {}
    for i, ref in enumerate(suite.datasets):
        spec = registry.get("datasets", ref.name)
        plugin = guard.who(registry, "datasets", ref.name)
        frame = guard.call(plugin, "records", spec.records, checked.datasets[i],
                           dataset_context(suite, i))
        if not isinstance(frame, pd.DataFrame):
            raise guard.broken(plugin, "records", f"returned {type(frame).__name__}, expected "
                                                  "a pandas DataFrame")
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


@dataclass(frozen=True)
class BoundReader:
    """A dataset's ``read_image`` with its context bound: ``reader(record, options)``.

    A class, not a closure, so it pickles to the cache's worker processes.
    """

    read_image: Callable[..., Any]
    context: DatasetContext

    def __call__(self, record: Any, options: Any) -> Any:
        return self.read_image(record, options, self.context)


def cache_root(suite: Suite) -> Path:
    if suite.cache_dir:
        root = Path(suite.cache_dir)
        return root if root.is_absolute() else suite_dir(suite) / root
    return default_cache_root()


def cache_fingerprints(suite: Suite, registry: Registry, checked: CheckedSuite) -> list[str]:
    """``dataset:fingerprint`` of every dataset: with the uids and size, the cache's key."""
    fingerprints = []
    for i, ref in enumerate(suite.datasets):
        spec = registry.get("datasets", ref.name)
        fingerprint = (guard.call(guard.who(registry, "datasets", ref.name), "fingerprint",
                                  spec.fingerprint, checked.datasets[i],
                                  dataset_context(suite, i))
                       if spec.fingerprint else "")
        fingerprints.append(f"{ref.name}:{fingerprint}")
    return fingerprints


def cache_status(suite: Suite, registry: Registry, checked: CheckedSuite) -> CacheState:
    """What ``harness run`` will do with the suite's image cache (reads records, decodes
    nothing, writes nothing)."""
    records = load_records(suite, registry, checked)
    return cache_state(cache_root(suite), cache_fingerprints(suite, registry, checked),
                       [str(u) for u in records["uid"]], suite.image_size)


def filled_cache(suite: Suite, records: pd.DataFrame, registry: Registry,
                 checked: CheckedSuite):
    """The suite's cache when every image is already decoded (``data prepare`` or a run),
    else None: ``data summary`` decodes nothing itself."""
    path = cache_root(suite) / cache_key(cache_fingerprints(suite, registry, checked),
                                         [str(u) for u in records["uid"]], suite.image_size)
    if not (path / FILLED).exists():
        return None
    try:  # a damaged cache is as good as none here: the next fill rebuilds it
        view = open_cache(path)
        errors = store.read_json(path / ERRORS) if (path / ERRORS).exists() else {}
        filled = np.load(path / FILLED)
    except (CacheDamaged, OSError, ValueError):
        return None
    if len(filled) != len(view.uids) or not all(
            f or u in errors for f, u in zip(filled, view.uids)):
        return None
    return view, set(errors)


def prepare_cache(suite: Suite, records: pd.DataFrame, registry: Registry,
                  checked: CheckedSuite, show_progress: bool = True) -> tuple[CacheView, pd.DataFrame]:
    """Fill the cache; drop (and count) unreadable images unless ``on_bad_image: fail``."""
    readers, options = {}, {}
    for i, ref in enumerate(suite.datasets):
        spec = registry.get("datasets", ref.name)
        readers[ref.name] = BoundReader(spec.read_image, dataset_context(suite, i))
        options[ref.name] = checked.datasets[i]
    cache, errors = fill_cache(cache_root(suite), records, readers, options,
                               cache_fingerprints(suite, registry, checked), suite.image_size,
                               show_progress=show_progress)
    if errors:
        if suite.on_bad_image == "fail":
            first = next(iter(errors.values()))
            raise HarnessError(f"{len(errors)} image(s) could not be read, first: {first}. "
                               "Fix or remove them, or set 'on_bad_image: skip' in the suite")
        bad = records["uid"].isin(errors)
        exclusions = records.attrs["exclusions"]
        for name, n in records[bad].groupby("_dataset").size().items():
            exclusions[name]["unreadable file"] = exclusions[name].get("unreadable file", 0) + int(n)
        dropped = unreadable_images(records[bad], errors)
        records = records[~bad].reset_index(drop=True)
        records.attrs["exclusions"] = exclusions
        records.attrs["unreadable"] = errors
        records.attrs["dropped"] = dropped
    return cache, records


def unreadable_images(records: pd.DataFrame, errors: dict[str, str]) -> list[dict[str, str]]:
    """One row per image the cache could not read: ``uid``, ``dataset``, ``file`` and
    ``reason`` (what went into each run's ``config.json`` and the report)."""
    rows = []
    for uid, dataset, path in records[["uid", "_dataset", "path"]].itertuples(index=False):
        message = errors[uid]
        prefix = f"{path}: "  # the cache's messages start with the file
        rows.append({"uid": str(uid), "dataset": str(dataset), "file": str(path),
                     "reason": message.removeprefix(prefix)})
    return rows


def dropped_lines(dropped: list[dict[str, str]], shown: int = 5) -> list[str]:
    """What ``harness run`` prints about images left out while reading."""
    if not dropped:
        return []
    lines = [(f"{len(dropped)} unreadable image(s) left out of every run (all listed in each "
              "run's recorded config under 'dropped_images' and in the report):")]
    lines += [f"  {d['file']}: {d['reason']}" for d in dropped[:shown]]
    if len(dropped) > shown:
        lines.append(f"  ... and {len(dropped) - shown} more")
    return lines


def make_folds(suite: Suite, records: pd.DataFrame, registry: Registry,
               checked: CheckedSuite) -> list[Fold]:
    spec = registry.get("splitters", suite.split.kind)
    plugin = guard.who(registry, "splitters", suite.split.kind)
    folds = guard.call(plugin, "split", spec.split, records, checked.split,
                       splitter_context(suite))
    if not isinstance(folds, (list, tuple)) or not all(isinstance(f, Fold) for f in folds):
        raise guard.broken(plugin, "split", f"returned {type(folds).__name__}, expected a "
                                            "list of Folds")
    folds = [Fold(*(guard.check_indices(getattr(f, part), len(records), plugin, "split",
                                        f"fold {n}.{part}")
                    for part in ("train", "select", "test")), phases=f.phases)
             for n, f in enumerate(folds, start=1)]
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


def prepare(suite: Suite, registry: Registry, checked: CheckedSuite,
            show_progress: bool = True) -> Prepared:
    records = load_records(suite, registry, checked)
    cache, records = prepare_cache(suite, records, registry, checked, show_progress)
    from harness.data.duplicates import merge_near_duplicates, searched_datasets

    records = merge_near_duplicates(records, cache, searched_datasets(suite, registry))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folds = make_folds(suite, records, registry, checked)
    for w in caught:  # shown to the user as before, and kept for every run's config.json
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    from harness.data.provenance import data_provenance

    return Prepared(records, cache, folds, records.attrs.get("exclusions", {}),
                    records.attrs.get("dropped", []),
                    provenance=data_provenance(suite, records, registry, checked.datasets),
                    notes=list(dict.fromkeys(str(w.message) for w in caught)))
