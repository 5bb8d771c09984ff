"""The image cache: decode every image once into an S×S uint8 grayscale memory map.

Every run of a suite (and every later suite over the same data and size) reads from it, so
DICOM/JPEG decoding and resizing never happen twice. The folder name is a hash of the
dataset content and the size; filling is parallel, resumable, and records unreadable
images instead of stopping.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.progress import progress_bar
from harness.runs import store

IMAGES = "images.u8"
INDEX = "index.json"
FILLED = "filled.npy"
ERRORS = "errors.json"


def default_cache_root() -> Path:
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "cxr-harness"))


def to_square_uint8(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a 2-D grayscale image to ``size``×``size`` uint8 (aspect not kept, as the paper)."""
    from PIL import Image

    if image.dtype != np.uint8:
        raise HarnessError(f"read_image returned {image.dtype}; expected uint8")
    if image.shape == (size, size):
        return np.ascontiguousarray(image)
    # Pillow's resampling filters antialias when shrinking; BILINEAR matches the paper's eval.
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


@dataclass
class CacheView:
    """An opened, filled cache: images in record order plus the uid → row index."""

    path: Path
    images: np.ndarray
    uids: list[str]

    def rows(self, uids: list[str]) -> np.ndarray:
        where = {u: i for i, u in enumerate(self.uids)}
        try:
            return np.fromiter((where[u] for u in uids), dtype=np.int64, count=len(uids))
        except KeyError as exc:
            raise HarnessError(f"image {exc.args[0]!r} is not in the cache at {self.path}; "
                               "run 'harness data prepare' for this suite again") from exc


def cache_key(fingerprints: list[str], uids: list[str], size: int) -> str:
    h = hashlib.sha1()
    h.update(f"size={size}\n".encode())
    for f in fingerprints:
        h.update(f.encode() + b"\n")
    for u in uids:
        h.update(u.encode() + b"\n")
    return h.hexdigest()[:16]


def open_cache(path: str | Path) -> CacheView:
    path = Path(path)
    index = store.read_json(path / INDEX)
    n, size = index["n"], index["size"]
    images = np.memmap(path / IMAGES, dtype=np.uint8, mode="r", shape=(n, size, size))
    return CacheView(path=path, images=images, uids=index["uids"])


def _fill_chunk(path: str, n: int, size: int, rows: list[int], records: list[dict],
                reader: Callable, options: list[tuple[Any, Any]]) -> dict[int, str]:
    """Decode one chunk of rows into the memory map (runs in a worker process)."""
    images = np.memmap(Path(path) / IMAGES, dtype=np.uint8, mode="r+", shape=(n, size, size))
    errors: dict[int, str] = {}
    for row, record, opts in zip(rows, records, options):
        try:
            image = reader[record["_dataset"]](record, *opts)
            images[row] = to_square_uint8(np.asarray(image), size)
        except Exception as exc:  # noqa: BLE001 - one bad file must never stop a long job
            errors[row] = f"{record.get('path', record['uid'])}: {type(exc).__name__}: {exc}"
    images.flush()
    return errors


def fill_cache(
    root: Path,
    records: Any,
    readers: Mapping[str, Callable],
    options: Mapping[str, tuple[Any, Any]],
    fingerprints: list[str],
    size: int,
    workers: int | None = None,
    chunk: int = 64,
    show_progress: bool = True,
) -> tuple[CacheView, dict[str, str]]:
    """Decode every record into the cache (only rows not yet filled) and open it.

    ``records`` is a DataFrame with ``uid``, ``path`` and ``_dataset`` (the dataset name that
    reads it); ``options`` maps a dataset name to its reader's ``(options, context)``.
    Returns the cache and ``{uid: error}`` for unreadable images.
    """
    uids = [str(u) for u in records["uid"]]
    path = Path(root) / cache_key(fingerprints, uids, size)
    path.mkdir(parents=True, exist_ok=True)
    n = len(uids)
    if not (path / INDEX).exists():
        np.memmap(path / IMAGES, dtype=np.uint8, mode="w+", shape=(max(n, 1), size, size)).flush()
        np.save(path / FILLED, np.zeros(n, dtype=bool))
        store.write_json(path / ERRORS, {})
        store.write_json(path / INDEX, {"n": n, "size": size, "uids": uids})
    filled = np.load(path / FILLED)
    errors: dict[str, str] = store.read_json(path / ERRORS)
    todo = [i for i in range(n) if not filled[i] and uids[i] not in errors]
    if todo:
        as_dicts = records.to_dict("records")
        workers = workers or min(os.cpu_count() or 1, 8)
        chunks = [todo[i:i + chunk] for i in range(0, len(todo), chunk)]
        started = time.perf_counter()
        done = 0
        with progress_bar("decoding images into the cache", total=len(todo),
                          enabled=show_progress) as advance, \
                ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {
                pool.submit(_fill_chunk, str(path), n, size, rows,
                            [as_dicts[r] for r in rows], dict(readers),
                            [options[as_dicts[r]["_dataset"]] for r in rows]): rows
                for rows in chunks
            }
            for future in as_completed(futures):
                rows = futures[future]
                bad = future.result()
                for r in rows:
                    if r in bad:
                        errors[uids[r]] = bad[r]
                    else:
                        filled[r] = True
                done += len(rows)
                advance(len(rows))
                # Save progress often so an interrupted preparation resumes where it was.
                store.atomic_write(path / FILLED, lambda fh: np.save(fh, filled), mode="wb")
                store.write_json(path / ERRORS, errors)
        rate = done / max(time.perf_counter() - started, 1e-9)
        store.write_json(path / "last_fill.json", {"images": done, "images_per_s": rate})
    view = open_cache(path)
    return view, errors
