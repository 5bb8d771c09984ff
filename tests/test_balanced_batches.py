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


def test_job_orders_a_balanced_batches_phase_by_batch(tmp_path):
    from harness.config.suite import RunSpec, Training
    from harness.plugin.specs import BackboneSpec, Phase, Plan
    from harness.training.job import Job

    labels = np.array([0] * 40 + [1] * 14 + [2] * 6 + [0] * 10)   # last 10: test images
    settings = {"epochs_per_phase": 1, "batch_size": 6, "weights": "none"}
    run = RunSpec(suite="t", backbone="b", sampler="balanced-batch", engine="e", fold=1,
                  seed=0, training=settings, sampler_options={}, run_id="r")
    phase = Phase(indices=list(range(60)), sample_weights=[1.0] * 60, draws=60,
                  balanced_batches=True)
    job = Job(run=run, run_dir=tmp_path, classes=["a", "b", "c"], image_size=4,
              images=np.zeros((70, 4, 4), np.uint8), labels=labels, train=np.arange(60),
              select=np.arange(60, 60), test=np.arange(60, 70), plan=Plan(phases=[phase]),
              training=Training(**settings), backbone=BackboneSpec("b", "", {}))
    order = job.epoch_indices(0, 0)
    assert len(order) == 60
    for start in range(0, 60, 6):
        assert np.bincount(labels[order[start:start + 6]], minlength=3).tolist() == [2, 2, 2]
    assert np.array_equal(order, job.epoch_indices(0, 0))         # seeded
    assert not np.array_equal(order, job.epoch_indices(0, 1))     # a fresh order per epoch
