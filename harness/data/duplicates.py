"""Near-duplicate radiographs filed under different patient ids, merged into one group.

ieee8023 holds the same radiograph under two patient ids more than once (patients 97 and
178 share four pixel-identical images). A patient-grouped split would put one copy in
training and its twin in test. Every image of the filled cache is hashed with imagehash's
perceptual hash (pHash: a 64-bit DCT signature of a 32×32 thumbnail). Two images whose
hashes differ in at most ``THRESHOLD`` bits are candidates, confirmed when their 32×32
thumbnails correlate at ``MIN_CORRELATION`` or more (chest radiographs look alike, so the
hash alone also pairs distinct images). The patients of a confirmed pair become one group
(``patient_id``), so every patient-grouped split keeps them on one side; the dataset's own
id stays in ``original_patient_id``.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.runs import store

#: pHash Hamming distance (bits of 64) at or below which two images are candidates.
THRESHOLD = 8
#: Pearson correlation of the 32×32 thumbnails that confirms a candidate. On the real
#: ieee8023 subset (June 2020) from a 128 px cache, the same radiograph filed twice
#: correlated at 0.978 or more (pixel-identical copies: 1.0; copies re-published with a
#: caption: 0.978-0.982) and the closest distinct radiographs at 0.943 or less;
#: ``tests/test_duplicates.py`` checks that exactly the known pairs are found (64 px cache).
MIN_CORRELATION = 0.96
HASHES = "phash.json"


def perceptual_hashes(cache, uids: Iterable[str]) -> dict[str, int]:
    """pHash of each cached image, kept in the cache folder (hashing once per cache)."""
    import imagehash
    from PIL import Image

    path = Path(cache.path) / HASHES
    known: dict[str, str] = store.read_json(path) if path.exists() else {}
    wanted = [str(u) for u in uids]
    missing = [u for u in wanted if u not in known]
    if missing:
        rows = cache.rows(missing)
        for uid, row in zip(missing, rows):
            known[uid] = str(imagehash.phash(Image.fromarray(np.asarray(cache.images[row]))))
        store.write_json(path, known)
    return {u: int(known[u], 16) for u in wanted}


def close_pairs(hashes: dict[str, int], threshold: int = THRESHOLD) -> list[tuple[str, str, int]]:
    """Every pair within ``threshold`` bits.

    Pigeonhole search instead of all pairs: split the 64 bits into ``threshold + 1``
    chunks; two hashes within ``threshold`` bits agree exactly on at least one chunk, so
    only images sharing a chunk value are compared (fast on tens of thousands of images).
    """
    uids = list(hashes)
    values = np.array([hashes[u] for u in uids], dtype=np.uint64)
    bounds = np.linspace(0, 64, threshold + 2).astype(int)
    found: dict[tuple[int, int], int] = {}
    for lo, hi in pairwise(bounds):
        chunk = (values >> np.uint64(lo)) & np.uint64((1 << int(hi - lo)) - 1)
        order = np.argsort(chunk, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(chunk[order]) != 0])
        for start, stop in zip(starts, np.r_[starts[1:], len(order)]):
            if stop - start < 2:
                continue
            members = order[start:stop]
            bits = np.bitwise_count(values[members][:, None] ^ values[members][None, :])
            for a, b in zip(*np.nonzero(np.triu(bits <= threshold, k=1))):
                i, j = sorted((int(members[a]), int(members[b])))
                found[(i, j)] = int(bits[a, b])
    return sorted((uids[a], uids[b], d) for (a, b), d in found.items())


def thumbnail_correlation(cache, a: str, b: str) -> float:
    from PIL import Image

    rows = cache.rows([a, b])
    thumbs = [np.asarray(Image.fromarray(np.asarray(cache.images[r])).resize(
        (32, 32), Image.BILINEAR), dtype=np.float64).ravel() for r in rows]
    if thumbs[0].std() == 0 or thumbs[1].std() == 0:
        return 1.0 if np.array_equal(thumbs[0], thumbs[1]) else 0.0
    return float(np.corrcoef(thumbs[0], thumbs[1])[0, 1])


def searched_datasets(suite, registry) -> set[str]:
    """The suite's datasets whose images may repeat (all but ``distinct_images`` ones)."""
    return {ref.name for ref in suite.datasets
            if not registry.get("datasets", ref.name).distinct_images}


def merge_near_duplicates(records: pd.DataFrame, cache, datasets: set[str] | None = None,
                          threshold: int = THRESHOLD) -> pd.DataFrame:
    """Records whose near-duplicate images across patients share one ``patient_id``.

    Only images of ``datasets`` (default: all) are compared. ``attrs["near_duplicates"]``
    lists each such pair (uids, patients, distance in bits).
    """
    searched = records if datasets is None or "_dataset" not in records else \
        records[records["_dataset"].isin(datasets)]
    hashes = perceptual_hashes(cache, searched["uid"])
    patient = dict(zip(records["uid"].astype(str), records["patient_id"].astype(str)))
    pairs = [(a, b, d) for a, b, d in close_pairs(hashes, threshold)
             if patient[a] != patient[b]
             and thumbnail_correlation(cache, a, b) >= MIN_CORRELATION]
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, _ in pairs:
        ra, rb = find(patient[a]), find(patient[b])
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    out = records.copy()
    out.attrs = dict(records.attrs)
    if pairs:
        members: dict[str, set[str]] = {}
        for p in list(parent):
            members.setdefault(find(p), set()).add(p)
        merged = {p: "+".join(sorted(members[find(p)])) for p in parent}
        out["patient_id"] = [merged.get(p, p) for p in records["patient_id"].astype(str)]
    out.attrs["near_duplicates"] = [
        {"uids": [a, b], "patients": [patient[a], patient[b]], "distance": d}
        for a, b, d in pairs]
    return out


def describe(pairs: list[dict[str, Any]], shown: int = 10) -> list[str]:
    """Lines for ``harness data summary``."""
    if not pairs:
        return [(f"  none (perceptual hash within {THRESHOLD} of 64 bits and thumbnail "
                 f"correlation >= {MIN_CORRELATION})")]
    lines = [(f"  {len(pairs)} pair(s) of images filed under different patients, each pair's "
              f"patients merged into one group (perceptual hash within {THRESHOLD} of 64 bits "
              f"and thumbnail correlation >= {MIN_CORRELATION}):")]
    for p in pairs[:shown]:
        lines.append(f"  {p['uids'][0]} ({p['patients'][0]}) = {p['uids'][1]} "
                     f"({p['patients'][1]}), {p['distance']} bits")
    if len(pairs) > shown:
        lines.append(f"  ... and {len(pairs) - shown} more (--json lists all)")
    return lines


def filled_cache(suite, records: pd.DataFrame, registry):
    """The suite's cache when every image is already decoded (``data prepare`` or a run),
    else None: ``data summary`` decodes nothing itself."""
    from harness.data.cache import ERRORS, FILLED, CacheDamaged, cache_key, open_cache
    from harness.data.prepare import cache_root
    from harness.plugin.check import dataset_context, dataset_options

    fingerprints = []
    for i, ref in enumerate(suite.datasets):
        spec = registry.get("datasets", ref.name)
        fp = (spec.fingerprint(dataset_options(suite, registry, i), dataset_context(suite, i))
              if spec.fingerprint else "")
        fingerprints.append(f"{ref.name}:{fp}")
    path = cache_root(suite) / cache_key(fingerprints, [str(u) for u in records["uid"]],
                                         suite.image_size)
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
