"""Host batches for every engine: the epoch's images read ahead from the cache on a thread.

The loop decides the order (``Job.epoch_indices``) and draws the augmentation (seeded by
run seed, fold, phase and epoch), so every engine trains on the same images transformed the
same way; engines only move the uint8 arrays to their device.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from harness.plugin.engine import Batch
from harness.training import augment


def read(images: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``images[idx]`` with sorted reads (kinder to a memory-mapped file), order kept."""
    order = np.argsort(idx, kind="stable")
    out = np.empty((len(idx),) + images.shape[1:], images.dtype)
    out[order] = images[idx[order]]
    return out


def read_ahead(load, n: int, prefetch: int = 2) -> Iterator:
    """``load(i)`` for ``i < n``, the next ``prefetch`` computed on a thread meanwhile."""
    if n <= 0:
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = [pool.submit(load, i) for i in range(min(prefetch, n))]
        for i in range(n):
            item = pending.pop(0).result()
            if i + prefetch < n:
                pending.append(pool.submit(load, i + prefetch))
            yield item


def train_batches(images: np.ndarray, labels: np.ndarray, order: np.ndarray, batch_size: int,
                  aug, image_size: int, rng: np.random.Generator | None,
                  prefetch: int = 2) -> Iterator[Batch]:
    """Batches of ``order``; augmentation drawn batch by batch from ``rng`` (in order)."""
    steps = -(-len(order) // batch_size)
    # Draw every batch's transforms up front, in batch order: the draw never depends on
    # how far the reader thread has got.
    sizes = [len(order[s * batch_size:(s + 1) * batch_size]) for s in range(steps)]
    params = (augment.sample_batches(rng, sizes, aug, image_size)
              if rng is not None and aug.enabled else [None] * steps)

    def load(step: int) -> Batch:
        idx = order[step * batch_size:(step + 1) * batch_size]
        return Batch(read(images, idx), np.asarray(labels[idx], dtype=np.int64), params[step])

    return read_ahead(load, steps, prefetch)


def image_batches(images: np.ndarray, indices: np.ndarray, batch_size: int,
                  prefetch: int = 2) -> Iterator[np.ndarray]:
    """uint8 batches of ``indices`` in order (prediction)."""
    indices = np.asarray(indices)
    steps = -(-len(indices) // batch_size)
    return read_ahead(lambda s: read(images, indices[s * batch_size:(s + 1) * batch_size]),
                      steps, prefetch)


def free_cores(samples: int = 5, interval: float = 0.01) -> int:
    """CPU cores this process may use that other processes are not busy on (at least 1).

    Two threads fighting a busy process for two cores train several times slower than one
    thread alone (measured: 62-176 img/s against 451-929), so the count subtracts the
    processes running right now (``/proc/loadavg``'s runnable count, less this one; the
    median of a few samples) from the cores this process may run on. The 1-minute load
    average would count the run that just ended on this machine as busy.
    """
    import statistics
    import time

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    busy = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as fh:
                busy.append(int(fh.read().split()[3].split("/")[0]) - 1)
        except (OSError, IndexError, ValueError):
            break
        if i + 1 < samples:
            time.sleep(interval)
    if not busy:
        try:
            busy = [int(os.getloadavg()[0] + 0.5)]
        except OSError:
            busy = [0]
    return max(1, cores - int(statistics.median(busy)))
