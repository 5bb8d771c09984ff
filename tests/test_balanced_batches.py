"""Balanced batches: equal class counts in every batch, rare images repeated, all covered."""

from __future__ import annotations

import numpy as np

from harness.training.balanced import balanced_batch_order


def test_every_batch_has_equal_class_counts():
    labels = np.array([0] * 90 + [1] * 25 + [2] * 5)
    positions = np.arange(120) + 1000
    order = balanced_batch_order(positions, labels, 120, 12, np.random.default_rng(0))
    assert len(order) == 120
    cls = labels[order - 1000]
    for start in range(0, 120, 12):
        assert np.bincount(cls[start:start + 12], minlength=3).tolist() == [4, 4, 4]
    # the 5 covid images are cycled: each appears 8 times, none 9
    counts = np.bincount(order[cls == 2] - 1000 - 115)
    assert counts.tolist() == [8] * 5


def test_uneven_batches_rotate_the_remainder_and_are_seeded():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    a = balanced_batch_order(np.arange(100), labels, 100, 10, np.random.default_rng(3))
    b = balanced_batch_order(np.arange(100), labels, 100, 10, np.random.default_rng(3))
    assert np.array_equal(a, b)
    per_batch = [np.bincount(labels[a[s:s + 10]], minlength=3) for s in range(0, 100, 10)]
    assert all(sorted(c.tolist()) == [3, 3, 4] for c in per_batch)
    total = np.sum(per_batch, axis=0)
    assert total.max() - total.min() <= 1   # the extra image goes to each class in turn
    # a common class is covered without repeats until all its images were used
    zeros = a[labels[a] == 0]
    assert len(set(zeros.tolist())) == min(len(zeros), 50)
