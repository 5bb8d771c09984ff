"""The framework-free parts the core gives every engine (``harness.engine_api``)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import harness
from harness import engine_api as core


@pytest.mark.parametrize("precision, accelerator, bf16, expected", [
    ("auto", False, True, "float32"),  # the CPU trains in full precision unless asked
    ("auto", True, True, "bfloat16"),
    ("auto", True, False, "float16"),  # an accelerator without bf16
    ("fp32", True, True, "float32"),
    ("fp16", True, True, "float16"),
    ("bf16", False, True, "bfloat16"),
])
def test_compute_dtype(precision, accelerator, bf16, expected):
    assert core.compute_dtype(precision, accelerator, bf16) == expected


def test_state_keys_round_trip_and_mismatch_is_one_line():
    optim = {0: {"step": np.array(3.0), "exp_avg": np.ones(2)}, 1: {"step": np.array(1.0)}}
    flat = core.flatten(optim)
    assert sorted(flat) == ["0/exp_avg", "0/step", "1/step"]
    assert flat["0/exp_avg"] is not optim[0]["exp_avg"]  # a copy: training may go on
    state = core.pack_state(model={"w": np.zeros(3)}, optim=flat)
    assert sorted(state) == ["model/w", "optim/0/exp_avg", "optim/0/step", "optim/1/step"]
    back = core.unflatten(core.unpack_state(state, "optim"))
    assert back.keys() == {"0", "1"} and np.array_equal(back["0"]["exp_avg"], np.ones(2))
    values = core.in_order(core.numbered([np.zeros(1), np.ones(1)]), 2, "weights")
    assert [float(v[0]) for v in values] == [0.0, 1.0]
    with pytest.raises(core.StateMismatch, match=r"saved weights do not fit this model "
                                                  r"\(2 arrays for 3\); delete"):
        core.in_order(core.numbered([np.zeros(1), np.ones(1)]), 3, "weights")


def test_classifier_init_is_seeded_and_small():
    kernel, bias = core.classifier_init(7, 512, 3)
    again, _ = core.classifier_init(7, 512, 3)
    assert kernel.shape == (512, 3) and kernel.dtype == np.float32 and np.array_equal(kernel, again)
    assert kernel.std() == pytest.approx(core.CLASSIFIER_STD, rel=0.1) and not bias.any()
    assert not np.array_equal(kernel, core.classifier_init(8, 512, 3)[0])


def test_tally_and_stacked_probabilities():
    tally = core.Tally()
    tally.add(np.float32(0.5), np.int64(3), 4)
    tally.add(1.0, 1, 2)
    assert tally.result() == core.EpochResult(loss_sum=4.0, correct=4, seen=6)
    assert core.stack_probabilities([], 3).shape == (0, 3)
    out = core.stack_probabilities([np.ones((2, 3)), np.zeros((1, 3))], 3)
    assert out.shape == (3, 3) and out.dtype == np.float32


def test_feature_map_problems_name_the_layout():
    assert core.feature_map_problem((1, 64, 3, 3), 48, channels_last=False, channels=64) is None
    assert core.feature_map_problem((1, 64), 48, channels_last=False) == (
        "maps a (1, 3, 48, 48) batch to (1, 64); expected a (1, C, H, W) feature map")
    assert core.feature_map_problem((None, 64), 48, channels_last=True, batch="B") == (
        "maps a (B, 48, 48, 3) batch to (None, 64); expected a (B, H, W, C) feature map")
    assert core.feature_map_problem((1, 3, 3, 32), 48, channels_last=True, channels=64) == (
        "out_channels is 64 but its feature map has 32 channels")
    assert "a non-tensor" in core.feature_map_problem(None, 48, channels_last=True)


def test_lazy_imports_on_the_first_call_only(monkeypatch):
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    to_hsv = harness.lazy("colorsys:rgb_to_hsv")
    assert "colorsys" not in sys.modules and to_hsv.__module__ == "colorsys"
    assert to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0) and "colorsys" in sys.modules
