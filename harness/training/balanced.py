"""Epoch orders whose every batch holds the same number of images of each class.

Used for phases with ``Phase.balanced_batches`` (the ``balanced-batch`` sampler). Each
class's images are cycled through fresh permutations (class-aware sampling, Shen, Lin &
Huang 2016, Relay Backpropagation, ECCV), so a rare class repeats and a common one is
covered over several epochs; each batch takes ``batch_size / K`` images of each of the K
classes present, the remainder of the division going to the classes in turn.
"""

from __future__ import annotations

import numpy as np


def balanced_batch_order(positions: np.ndarray, labels: np.ndarray, n: int, batch_size: int,
                         rng: np.random.Generator) -> np.ndarray:
    """``n`` positions in batch order; ``labels[i]`` is the class of ``positions[i]``."""
    positions = np.asarray(positions, dtype=np.int64)
    labels = np.asarray(labels)
    classes = [c for c in np.unique(labels)]
    if n <= 0 or not classes:
        return positions[:0]
    pools = {c: positions[labels == c] for c in classes}
    streams = {c: rng.permutation(pools[c]) for c in classes}
    used = {c: 0 for c in classes}

    def take(c, k: int) -> list[int]:
        out: list[int] = []
        while len(out) < k:
            if used[c] == len(streams[c]):
                streams[c], used[c] = rng.permutation(pools[c]), 0
            step = min(k - len(out), len(streams[c]) - used[c])
            out += streams[c][used[c]:used[c] + step].tolist()
            used[c] += step
        return out

    order: list[int] = []
    k = len(classes)
    turn = 0
    while len(order) < n:
        size = min(batch_size, n - len(order))
        share, rest = divmod(size, k)
        batch: list[int] = []
        for j in range(k):
            c = classes[(turn + j) % k]
            batch += take(c, share + (1 if j < rest else 0))
        turn = (turn + rest) % k
        order += rng.permutation(np.asarray(batch, dtype=np.int64)).tolist()
    return np.asarray(order, dtype=np.int64)
