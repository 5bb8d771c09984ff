"""The image cache: decode every image once into an S×S uint8 grayscale memory map.

Every run of a suite (and every later suite over the same data and size) reads from it, so
DICOM/JPEG decoding and resizing never happen twice. The folder name is a hash of the
dataset content and the size. Filling is parallel and keeps every image as soon as it is
written: Ctrl-C or SIGTERM stops it at once and the next fill decodes only the rest.
Unreadable images, including one that crashes its decoder, are recorded, not fatal.

The cache protects itself: before the images are mapped, the index must parse and the file
must have exactly the size it describes, and once a fill completes ``digests.json`` records a
SHA-256 per block of images. A process checks each block once before it trusts it (about
0.5 s per 540 MB, the paper's 6,000 images at 300 px). A damaged cache (truncated, edited,
its index broken) is rebuilt by the next fill, and refused with one line by a run.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness import store
from harness.errors import HarnessError
from harness.interrupts import Interrupted, signals_interrupt
from harness.progress import is_enabled, progress_bar

IMAGES = "images.u8"
INDEX = "index.json"
FILLED = "filled.npy"
ERRORS = "errors.json"
#: Rows a worker began decoding in the current fill (finds the image that crashed a worker).
STARTED = "started.npy"
LOCK = "fill.lock"
#: ``{"algorithm", "block", "digests"}``: one hash per block of ``block`` images, written
#: when a fill completes (absent while a fill is incomplete).
DIGESTS = "digests.json"
#: Images per hashed block: small enough that a run checks little beyond what it reads.
BLOCK = 256
#: Everything a cache folder holds but its lock: removed together when it is rebuilt.
CACHE_FILES = (IMAGES, INDEX, FILLED, ERRORS, STARTED, DIGESTS, "last_fill.json")


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


class CacheDamaged(HarnessError):
    """The cache's files disagree with each other or with the digests of their images."""


def _structure(path: Path) -> tuple[int, int, list[str]]:
    """``(n, size, uids)`` from the index, after checking that the files match it."""
    try:
        index = store.read_json(path / INDEX)
        n, size, uids = index["n"], index["size"], index["uids"]
        if not (isinstance(n, int) and isinstance(size, int) and n >= 0 and size > 0
                and isinstance(uids, list) and len(uids) == n):
            raise ValueError
    except FileNotFoundError:
        raise CacheDamaged(f"{path / INDEX} is missing") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise CacheDamaged(f"{path / INDEX} is not a valid cache index") from None
    expected = max(n, 1) * size * size
    try:
        actual = (path / IMAGES).stat().st_size
    except OSError:
        raise CacheDamaged(f"{path / IMAGES} is missing") from None
    if actual != expected:
        raise CacheDamaged(f"{path / IMAGES} has {actual} bytes where its index describes "
                           f"{expected} (truncated?)")
    return n, size, [str(u) for u in uids]


def _digest(block: np.ndarray) -> str:
    return hashlib.sha256(memoryview(np.ascontiguousarray(block)).cast("B")).hexdigest()


def block_digests(images: np.ndarray) -> list[str]:
    return [_digest(images[i:i + BLOCK]) for i in range(0, len(images), BLOCK)]


#: Blocks this process has found intact, per (cache path, file identity).
_checked: dict[tuple[str, int, int], set[int]] = {}


def verify_images(path: Path, images: np.ndarray, rows: Any = None) -> None:
    """Check the blocks that hold ``rows`` (all when None) against ``digests.json``.

    Each block is hashed once per process. Raises ``CacheDamaged`` naming the first
    block that differs; a cache without digests (a fill not completed) passes.
    """
    try:
        recorded = store.read_json(path / DIGESTS)
        digests, block = list(recorded["digests"]), int(recorded["block"])
    except FileNotFoundError:
        return
    except (OSError, ValueError, KeyError, TypeError):
        raise CacheDamaged(f"{path / DIGESTS} is not a valid digest list") from None
    stat = (path / IMAGES).stat()
    done = _checked.setdefault((str(path), stat.st_ino, int(stat.st_mtime_ns)), set())
    blocks = range(len(digests)) if rows is None else sorted(
        {int(r) // block for r in np.asarray(rows).ravel()})
    if len(digests) != -(-max(len(images), 1) // block):
        raise CacheDamaged(f"{path / DIGESTS} lists {len(digests)} blocks for "
                           f"{len(images)} images")
    for b in blocks:
        if b in done:
            continue
        if _digest(images[b * block:(b + 1) * block]) != digests[b]:
            raise CacheDamaged(f"{path / IMAGES}: images {b * block}-"
                               f"{min((b + 1) * block, len(images)) - 1} differ from their "
                               "digest (edited or damaged since the cache was filled)")
        done.add(b)


def open_cache(path: str | Path, rows_of: list[str] | None = None) -> CacheView:
    """Map a filled cache after checking it; ``rows_of``: check only the blocks these
    uids are in (a run's images), else every block."""
    path = Path(path)
    if not path.is_dir():
        raise CacheDamaged(f"the image cache {path} is missing; run the suite again to "
                           "fill it")
    n, size, uids = _structure(path)
    images = np.memmap(path / IMAGES, dtype=np.uint8, mode="r", shape=(max(n, 1), size, size))
    view = CacheView(path=path, images=images[:n], uids=uids)
    verify_images(path, images, None if rows_of is None else view.rows(rows_of))
    return view


@dataclass(frozen=True)
class CacheState:
    """What the next fill will do with a suite's cache (``harness run --dry-run``).

    ``state``: ``ready`` (every image decoded and intact: nothing to do), ``partial`` (a fill
    stopped: ``decoded`` of ``images`` are kept, the rest will be decoded), ``missing`` (it
    will be built) or ``damaged`` (``why``; it will be rebuilt).
    """

    path: Path
    state: str
    images: int
    size: int
    decoded: int = 0
    why: str = ""

    def line(self) -> str:
        what = f"{self.images} images of {self.size} px"
        return {
            "ready": f"ready ({what})",
            "partial": f"will be completed ({self.decoded} of {what} decoded)",
            "missing": f"will be built ({what}, {_gb(self.images * self.size ** 2)})",
            "damaged": f"will be rebuilt ({self.why})",
        }[self.state]

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "state": self.state, "images": self.images,
                "size": self.size, "decoded": self.decoded, "why": self.why}


def cache_state(root: Path, fingerprints: list[str], uids: list[str], size: int) -> CacheState:
    """Look at the cache a fill of ``uids`` would use, without writing or locking anything:
    the same checks as the fill's own (:func:`_remove_if_damaged`), all blocks hashed."""
    path = Path(root) / cache_key(fingerprints, uids, size)
    n = len(uids)
    if not (path / INDEX).exists() and not (path / IMAGES).exists():
        return CacheState(path, "missing", n, size)
    try:
        filled, errors = _check_files(path, n, size)
    except (CacheDamaged, OSError, ValueError) as exc:
        return CacheState(path, "damaged", n, size, why=_problem(exc))
    decoded = sum(1 for i in range(n) if filled[i] or uids[i] in errors)
    return CacheState(path, "ready" if decoded == n else "partial", n, size, decoded)


class FillInterrupted(Interrupted):
    """SIGINT or SIGTERM arrived while the cache filled; ``signum`` says which."""


class _Filler:
    """Decodes rows into the memory map and marks each one filled as soon as it is written.

    ``filled.npy`` is itself memory-mapped, so a row's mark reaches the page cache right after
    its pixels: an interrupted or killed fill keeps every image it finished, and a resume
    decodes only the rest.
    """

    def __init__(self, path: Path, n: int, size: int, records: list[dict],
                 readers: Mapping[str, Callable], options: Mapping[str, Mapping[str, Any]]):
        self.images = np.memmap(path / IMAGES, dtype=np.uint8, mode="r+", shape=(n, size, size))
        self.filled = np.load(path / FILLED, mmap_mode="r+")
        self.started = np.load(path / STARTED, mmap_mode="r+")
        self.size, self.records, self.readers, self.options = size, records, readers, options

    def fill(self, rows: list[int]) -> dict[int, str]:
        errors: dict[int, str] = {}
        for row in rows:
            record = self.records[row]
            dataset = record["_dataset"]
            self.started[row] = True
            try:
                image = self.readers[dataset](record, self.options[dataset])
                self.images[row] = to_square_uint8(np.asarray(image), self.size)
            except Exception as exc:  # noqa: BLE001 - one bad file must never stop a long job
                errors[row] = f"{record.get('path', record['uid'])}: {type(exc).__name__}: {exc}"
                continue
            self.filled[row] = True
        return errors


_worker_filler: _Filler | None = None


def _start_worker(parent: int, *args: Any) -> None:
    """Pool initializer: die with the parent, leave Ctrl-C and SIGTERM to it, open the maps."""
    global _worker_filler
    if sys.platform.startswith("linux"):
        import ctypes

        # PR_SET_PDEATHSIG (1): the kernel kills this worker when its parent dies, even by
        # SIGKILL, so no decoder is ever left running on its own.
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)
    # A terminal's Ctrl-C reaches the whole process group; the parent alone decides, and
    # stops the workers with SIGTERM (the parent's own SIGTERM handler is inherited by fork).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _worker_filler = _Filler(*args)


def _fill_rows(rows: list[int]) -> dict[int, str]:
    assert _worker_filler is not None
    return _worker_filler.fill(rows)


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """End the workers now, mid-image: what they finished is already marked filled.

    ``shutdown(cancel_futures=True)`` alone waits for every running chunk to finish, so the
    workers are terminated as well (public API from Python 3.14, the executor's process table
    before it).
    """
    terminate = getattr(pool, "terminate_workers", None)
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    if terminate is not None:
        terminate()
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=1.0)
        if process.is_alive():
            process.kill()
            process.join(timeout=1.0)


def chunk_size(todo: int, workers: int) -> int:
    """Rows per task: about 32 tasks per worker, so that the last tasks leave no worker idle
    for long, and at most 16 rows, so that progress and errors are recorded often. A task
    costs well under a millisecond to hand out, an image 5-20 ms to decode."""
    return max(1, min(16, math.ceil(todo / (workers * 32))))


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    return max(1, min(usable_cores(), 8))


def fill_cache(
    root: Path,
    records: Any,
    readers: Mapping[str, Callable],
    options: Mapping[str, Mapping[str, Any]],
    fingerprints: list[str],
    size: int,
    workers: int | None = None,
    chunk: int | None = None,
    show_progress: bool = True,
) -> tuple[CacheView, dict[str, str]]:
    """Decode every record into the cache (only rows not yet filled) and open it.

    ``records`` is a DataFrame with ``uid``, ``path`` and ``_dataset`` (the dataset name that
    reads it). Returns the cache and ``{uid: error}`` for unreadable images. SIGINT or
    SIGTERM stops the fill at once (:class:`FillInterrupted`), keeping every decoded image.
    """
    uids = [str(u) for u in records["uid"]]
    path = Path(root) / cache_key(fingerprints, uids, size)
    _make_folder(path)
    with _fill_lock(path, show_progress):
        _remove_if_damaged(path, n=len(uids), size=size)
        errors = _fill_locked(path, uids, records, readers, options, size, workers, chunk,
                              show_progress)
        try:
            view = open_cache(path)
        except CacheDamaged as exc:  # damaged while being filled: say so, never use it
            raise CacheDamaged(f"{exc}; run again to rebuild the cache") from None
    return view, errors


def _make_folder(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise HarnessError(f"cannot create the image cache folder {path}: a file is in the "
                           "way; remove it or set cache_dir") from None
    except OSError as exc:
        raise HarnessError(f"cannot create the image cache folder {path}: "
                           f"{exc.strerror or exc}; set cache_dir to a writable folder"
                           ) from None


def _check_files(path: Path, n: int, size: int) -> tuple[np.ndarray, dict[str, str]]:
    """``(filled, errors)`` of a cache whose files agree with each other, with ``n`` images
    of ``size`` px and with their digests; raises ``CacheDamaged``, ``OSError`` or
    ``ValueError`` otherwise."""
    found_n, found_size, _ = _structure(path)
    if (found_n, found_size) != (n, size):
        raise CacheDamaged(f"{path / INDEX} describes {found_n} images of {found_size} px "
                           f"where the suite has {n} of {size} px")
    filled = np.load(path / FILLED)
    if filled.shape != (n,):
        raise CacheDamaged(f"{path / FILLED} marks {filled.size} images where the index has {n}")
    errors = store.read_json(path / ERRORS)
    images = np.memmap(path / IMAGES, dtype=np.uint8, mode="r", shape=(max(n, 1), size, size))
    verify_images(path, images)
    return filled, errors


def _problem(exc: Exception) -> str:
    return str(exc) if isinstance(exc, CacheDamaged) else f"{type(exc).__name__}: {exc}"


def _remove_if_damaged(path: Path, n: int, size: int) -> None:
    """A cache whose files disagree (or whose images differ from their digests) is removed,
    with one warning line, so the fill that follows rebuilds it."""
    import warnings

    from harness.errors import HarnessWarning

    if not (path / INDEX).exists() and not (path / IMAGES).exists():
        return
    try:
        _check_files(path, n, size)
    except (CacheDamaged, OSError, ValueError) as exc:
        warnings.warn(HarnessWarning(f"the image cache is damaged ({_problem(exc)}); "
                                     "rebuilding it"), stacklevel=2)
        for name in CACHE_FILES:
            (path / name).unlink(missing_ok=True)


@contextlib.contextmanager
def _fill_lock(path: Path, show_progress: bool) -> Iterator[None]:
    """One filling process per cache: a second ``harness run`` or ``data prepare`` on the
    same data waits, then finds the images decoded."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(path / LOCK))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if is_enabled(show_progress):
            print(f"waiting for another process that fills the cache {path}", file=sys.stderr)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _fill_locked(path: Path, uids: list[str], records: Any, readers: Mapping[str, Callable],
                 options: Mapping[str, Mapping[str, Any]], size: int, workers: int | None,
                 chunk: int | None, show_progress: bool) -> dict[str, str]:
    n = len(uids)
    _check_space(path, max(n, 1) * size * size)
    if not (path / INDEX).exists():
        try:
            np.memmap(path / IMAGES, dtype=np.uint8, mode="w+",
                      shape=(max(n, 1), size, size)).flush()
        except OSError as exc:
            raise HarnessError(f"cannot create the image cache {path / IMAGES} "
                               f"({_gb(max(n, 1) * size * size)}): {exc.strerror or exc}"
                               ) from None
        np.save(path / FILLED, np.zeros(n, dtype=bool))
        store.write_json(path / ERRORS, {})
        store.write_json(path / INDEX, {"n": n, "size": size, "uids": uids})
    filled = np.load(path / FILLED)
    errors: dict[str, str] = store.read_json(path / ERRORS)
    todo = [i for i in range(n) if not filled[i] and uids[i] not in errors]
    if not todo:
        if not (path / DIGESTS).exists():  # a fill completed by an older version
            _write_digests(path, n, size)
        return errors
    (path / DIGESTS).unlink(missing_ok=True)  # rows change: digests only once complete
    workers = max(1, min(workers or default_workers(), len(todo)))
    np.save(path / STARTED, np.zeros(n, dtype=bool))
    args = (path, n, size, records.to_dict("records"), dict(readers), dict(options))
    started = time.perf_counter()
    rows = todo
    with signals_interrupt(FillInterrupted):
        try:
            while rows:
                crashed = _fill_in_pool(workers, rows, chunk or chunk_size(len(rows), workers),
                                        args, errors, uids, path,
                                        (len(todo), len(todo) - len(rows), show_progress))
                if not crashed:
                    break
                rows = _after_crash(rows, args, errors, uids, path)
        finally:
            store.write_json(path / ERRORS, errors)
    rate = len(todo) / max(time.perf_counter() - started, 1e-9)
    _write_digests(path, n, size)
    store.write_json(path / "last_fill.json", {"images": len(todo), "images_per_s": rate})
    return errors


def _write_digests(path: Path, n: int, size: int) -> None:
    images = np.memmap(path / IMAGES, dtype=np.uint8, mode="r", shape=(max(n, 1), size, size))
    digests = block_digests(images)
    stat = (path / IMAGES).stat()
    _checked[(str(path), stat.st_ino, int(stat.st_mtime_ns))] = set(range(len(digests)))
    store.write_json(path / DIGESTS, {"algorithm": "sha256", "block": BLOCK,
                                      "digests": digests})


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 1e8 else f"{n_bytes / 1e6:.2f} MB"


def _check_space(path: Path, total: int) -> None:
    """Refuse a fill the disk cannot hold, before it starts.

    The cache is a sparse file that takes disk space as images are written into its memory
    map; a full disk then kills the process with SIGBUS mid-fill instead of raising an error.
    """
    import shutil

    images = path / IMAGES
    allocated = images.stat().st_blocks * 512 if images.exists() else 0
    needed = max(0, total - allocated)
    free = shutil.disk_usage(path).free
    if needed > free:
        raise HarnessError(
            f"the image cache needs {_gb(needed)} more on {path} and the disk has "
            f"{_gb(free)} free: lower image_size, or point cache_dir to a larger disk")


def _record(errors: dict[str, str], uids: list[str], bad: dict[int, str], path: Path) -> None:
    if bad:
        errors.update({uids[r]: message for r, message in bad.items()})
        store.write_json(path / ERRORS, errors)


def _fill_in_pool(workers: int, rows: list[int], chunk: int, args: tuple,
                  errors: dict[str, str], uids: list[str], path: Path,
                  progress: tuple[int, int, bool]) -> bool:
    """Decode ``rows`` in a pool; False when done, True when a worker died (a crash)."""
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_start_worker,
                               initargs=(os.getpid(), *args))
    total, done, show_progress = progress
    try:
        # Submitting forks the workers: before the progress bar starts its thread, so that
        # no worker inherits a lock that thread held.
        futures = {pool.submit(_fill_rows, rows[i:i + chunk]): len(rows[i:i + chunk])
                   for i in range(0, len(rows), chunk)}
        with progress_bar("decoding images into the cache", total=total,
                          enabled=show_progress) as advance:
            advance(done)
            for future in as_completed(futures):
                try:
                    bad = future.result()
                except BrokenProcessPool:
                    _stop_pool(pool)
                    return True
                _record(errors, uids, bad, path)
                advance(futures[future])
    except BaseException:
        _stop_pool(pool)
        raise
    pool.shutdown(wait=True)
    return False


def _after_crash(rows: list[int], args: tuple, errors: dict[str, str], uids: list[str],
                 path: Path) -> list[int]:
    """A decoder killed its worker (a segfault in a C library, the out-of-memory killer).

    The rows that were being decoded are decoded again one at a time, each in a pool of its
    own: one that kills its worker again is recorded as unreadable. Returns the rows left.
    """
    filled, began = np.load(path / FILLED), np.load(path / STARTED)
    suspects = [r for r in rows if began[r] and not filled[r] and uids[r] not in errors]
    if not suspects:
        raise HarnessError(f"the processes filling the cache {path} died before decoding any "
                           "image (out of memory?); run again with fewer workers")
    records = args[3]
    for row in suspects:
        if _fill_in_pool(1, [row], 1, args, errors, uids, path, (1, 0, False)):
            where = records[row].get("path", uids[row])
            _record(errors, uids, {row: f"{where}: the decoder crashed its process (a "
                                        "segmentation fault or out of memory)"}, path)
    filled = np.load(path / FILLED)
    return [r for r in rows if not filled[r] and uids[r] not in errors]
