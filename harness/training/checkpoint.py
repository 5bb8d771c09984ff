"""Checkpoints sized to the work: when to write one, and writing it off the training path.

Policy: a resumable checkpoint every ``minutes`` (default 10), at every phase end, and when
the process is asked to stop (SIGTERM/SIGINT: preemption, Ctrl-C). Never one per epoch: on a
GPU the paper's 633-image epochs train in well under a second, and a full checkpoint of the
concatenated network is ~0.6 GB.

Writing: the engine's ``get_state`` is the fast copy (device → host arrays); a background
thread then writes one ``.npz`` file (model, optimizer, best weights, position, history) to
a temporary name and renames it over the previous one, so a run folder never holds more than
one full checkpoint (the temporary file exists only while a write is in flight). ``npz``
without pickle is framework-free and safe to load.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.store import atomic_write

#: The one checkpoint file of a run, in ``<run>/checkpoints/``.
FILE = "state.npz"
META = "__meta__"


class Policy:
    """Decides after each epoch whether a checkpoint is due (``clock`` is injectable)."""

    def __init__(self, minutes: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.seconds = minutes * 60.0
        self.clock = clock
        self.last = clock()

    def due(self, phase_end: bool = False, stopping: bool = False) -> bool:
        if phase_end or stopping:
            return True
        return self.seconds > 0 and self.clock() - self.last >= self.seconds

    def written(self) -> None:
        self.last = self.clock()


def save(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write one checkpoint atomically (called on the writer thread)."""
    payload = {META: np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays}
    atomic_write(path, lambda fh: np.savez(fh, **payload), mode="wb")


def load(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """``(arrays, meta)`` of a checkpoint, or ``None`` when the run has none."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k != META}
            meta = json.loads(bytes(data[META]).decode())
    except Exception as exc:
        raise HarnessError(f"checkpoint {path} cannot be read ({exc}); delete it to start "
                           "the run from the beginning") from exc
    return arrays, meta


def position(path: Path) -> dict[str, Any] | None:
    """The saved position (``phase``, ``epoch``: the next to run, 0-based) of a checkpoint,
    reading only its small metadata member; ``None`` when there is none or it cannot be
    read (the worker then says why)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return dict(json.loads(bytes(data[META]).decode()).get("position") or {})
    except Exception:  # noqa: BLE001 - a missing or damaged file: no resume point to show
        return None


def split(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays stored under ``prefix/`` (``model``, ``best``), without the prefix."""
    start = len(prefix) + 1
    return {k[start:]: v for k, v in arrays.items() if k.startswith(prefix + "/")}


def join(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {f"{prefix}/{k}": v for k, v in arrays.items()}


class Writer:
    """One background write at a time; ``submit`` waits for the previous one first."""

    def __init__(self, path: Path):
        self.path = path
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.count = 0

    def submit(self, arrays: dict[str, np.ndarray], meta: dict[str, Any],
               background: bool = True) -> None:
        self.wait()

        def write() -> None:
            try:
                save(self.path, arrays, meta)
            except BaseException as exc:  # noqa: BLE001 - re-raised on the training thread
                self.error = exc

        self.count += 1
        if background:
            self.thread = threading.Thread(target=write, name="checkpoint", daemon=False)
            self.thread.start()
        else:
            write()
            self._raise()

    def wait(self) -> None:
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        self._raise()

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise HarnessError(f"checkpoint {self.path} could not be written: {error}")
