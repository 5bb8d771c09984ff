"""The per-epoch overhead model of ``harness bench --overhead`` (framework-free)."""

import pytest

from harness.training import overhead


def test_projection_of_the_paper_protocol():
    # 1,500 img/s training, 4,500 inference, 0.1 s state copy, 0.02 s best copy, 1 ms loop.
    p = overhead.project(1500, 4500, 0.1, 0.02, 0.001)
    epoch = 633 / 1500
    assert p["epoch_s"] == pytest.approx(epoch, abs=1e-4)
    assert p["select_frac"] == pytest.approx((631 / 4500 + 0.02) / epoch, abs=1e-4)
    assert p["checkpoint_frac"] == pytest.approx(0.1 * (1 / 100 + epoch / 600) / epoch,
                                                 abs=1e-4)
    run = 800 * (epoch + 631 / 4500 + 0.02 + 0.1 * (1 / 100 + epoch / 600) + 0.001) \
        + 11302 / 4500
    assert p["protocol_hours"] == pytest.approx(5 * run / 3600, abs=1e-3)
    # Scoring every 10th epoch cuts selection's share tenfold.
    assert overhead.project(1500, 4500, 0.1, 0.02, 0.001, select_every=10)["select_frac"] \
        == pytest.approx(p["select_frac"] / 10, abs=1e-4)


def test_loop_bookkeeping_is_measured_with_a_no_op_engine():
    seconds = overhead.bookkeeping_seconds(epochs=20)
    assert 0 < seconds < 0.05
