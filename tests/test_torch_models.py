"""Torch builds of the paper's models: shapes, parameter counts, stride placement, weights."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from harness_plugins.backbones import tiny, torch_models
from harness_plugins.backbones.torch_heads import build_classifier
from harness_plugins.backbones.torch_models import (
    build_concat,
    build_resnet50v2,
    build_resnetv2_50_timm,
    build_xception,
    describe,
)
from torch import nn

from harness import RANDOM_WEIGHTS, WeightSource
from harness.errors import HarnessError
from harness.plugin.registry import build_registry


def weights_of(backbone: str, value: str) -> WeightSource:
    """``training.weights: value`` resolved for ``backbone``'s torch build, as the core does."""
    return build_registry().get("backbones", backbone).weights_for("torch", value)


#: Keras ``include_top=False`` totals (trainable + BN moving statistics).
KERAS_XCEPTION = 20_861_480
KERAS_RESNET50V2 = 23_564_800
#: Keras's bias on the stem conv, each block's last 1×1 conv and each projection shortcut.
RESNET50V2_KERAS_BIASES = 64 + (256 * 3 + 512 * 4 + 1024 * 6 + 2048 * 3) + (256 + 512 + 1024 + 2048)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def stage_sizes(features, size: int) -> list[int]:
    net = features.net
    x = net.stem(torch.zeros(1, 3, size, size))
    sizes = [x.shape[-1]]
    for stage in net.stages:
        x = stage(x)
        sizes.append(x.shape[-1])
    return sizes


def test_tiny_feature_map_and_channels():
    model = tiny.build_torch(32, RANDOM_WEIGHTS, {})
    info = describe(model, 32)
    assert info["feature_shape"] == (64, 2, 2) and model.out_channels == 64
    model = tiny.build_torch(32, RANDOM_WEIGHTS, {"channels": [8, 8]})
    assert describe(model, 32)["feature_shape"] == (8, 8, 8)
    with pytest.raises(HarnessError, match="has no weights 'imagenet'"):
        tiny.build_torch(32, WeightSource("imagenet"), {})


def test_xception_matches_keras_counts():
    model = build_xception(71, RANDOM_WEIGHTS, {})
    info = describe(model, 71)
    assert info["feature_shape"] == (2048, 3, 3)
    assert model.out_channels == 2048
    assert info["params_total"] + info["buffers"] == KERAS_XCEPTION
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert bn.eps == pytest.approx(1e-3) and bn.momentum == pytest.approx(0.01)


def test_resnet50v2_is_the_keras_network():
    keras_layout = build_resnet50v2(64, RANDOM_WEIGHTS, {})
    timm_layout = build_resnetv2_50_timm(64, RANDOM_WEIGHTS, {})
    k, t = describe(keras_layout, 64), describe(timm_layout, 64)
    assert k["feature_shape"] == t["feature_shape"] == (2048, 2, 2)
    # Same blocks; Keras adds biases, and its total counts the BN moving statistics too.
    assert k["params_total"] == t["params_total"] + RESNET50V2_KERAS_BIASES
    assert k["params_total"] + k["buffers"] == KERAS_RESNET50V2
    # Where the stride is: Keras strides in the last block of conv2..conv4, timm in the first
    # block of stages 2..4, so the stage outputs differ while the final map is equal.
    assert stage_sizes(keras_layout, 64) == [16, 8, 4, 2, 2]
    assert stage_sizes(timm_layout, 64) == [16, 16, 8, 4, 2]


def test_keras_layout_costs_fewer_flops_than_timm_layout():
    from torch.utils.flop_counter import FlopCounterMode

    def flops(model, size=128):
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model.eval()(torch.zeros(1, 3, size, size))
        return counter.get_total_flops()

    keras_flops = flops(build_resnet50v2(128, RANDOM_WEIGHTS, {}))
    timm_flops = flops(build_resnetv2_50_timm(128, RANDOM_WEIGHTS, {}))
    # 300×300: ≈13.1 vs ≈15.3 GMAC·2; the ratio does not depend on the size much.
    assert 0.83 < keras_flops / timm_flops < 0.88


def test_resnet50v2_stride_block_subsamples_the_raw_input():
    model = build_resnet50v2(32, RANDOM_WEIGHTS, {}).eval()
    block = model.net.stages[0].blocks[-1]
    x = torch.randn(1, 256, 8, 8)
    with torch.no_grad():
        residual = block.conv3(block.norm3(block.conv2(block.norm2(block.conv1(block.norm1(x))))))
        assert torch.allclose(block(x), residual + x[:, :, ::2, ::2], atol=1e-5)


def test_concat_with_paper_head_has_the_keras_parameter_count():
    model = build_classifier(build_concat(300, RANDOM_WEIGHTS, {}), "paper", 3, 300)
    info = describe(model.backbone, 300)
    assert info["feature_shape"] == (4096, 10, 10)
    head = n_params(model.head)
    assert head == (4096 * 1024 + 1024) + (1024 * 100 * 3 + 3)
    buffers = info["buffers"]
    # Keras: 48,928,811 including 99,968 non-trainable BN statistics.
    assert n_params(model) + buffers == 48_928_811
    assert buffers == 99_968
    dense = model.head[-1]
    assert abs(float(dense.weight.detach().std()) - 0.001) < 1e-4 and float(dense.bias.detach().abs().sum()) == 0


def test_concat_pools_members_to_the_smallest_map(monkeypatch):
    def member(stride):
        def build(image_size, weights, options):
            conv = nn.Conv2d(3, 5, 3, stride=stride, padding=1)
            conv.out_channels = 5
            return conv
        return build

    monkeypatch.setitem(torch_models.BUILDERS, "fine", member(1))
    monkeypatch.setitem(torch_models.BUILDERS, "coarse", member(4))
    model = build_concat(16, RANDOM_WEIGHTS, {"members": ["fine", "coarse"]})
    assert model.out_channels == 10
    assert tuple(model(torch.zeros(2, 3, 16, 16)).shape) == (2, 10, 4, 4)
    with pytest.raises(HarnessError, match="two or more"):
        build_concat(16, RANDOM_WEIGHTS, {"members": ["fine"]})
    with pytest.raises(HarnessError, match="nosuch"):
        build_concat(16, RANDOM_WEIGHTS, {"members": ["fine", "nosuch"]})


def test_missing_imagenet_weights_fail_naming_the_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(HarnessError) as err:
        build_xception(71, weights_of("xception", "imagenet"), {})
    message = str(err.value)
    # timm serves legacy_xception from a release URL, cached under TORCH_HOME/hub/checkpoints.
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "xception-43020ad28.pth") in message
    with pytest.raises(HarnessError) as err:
        build_resnet50v2(32, weights_of("resnet50v2", "imagenet"), {})
    message = str(err.value)
    assert str(tmp_path / "hub" / "models--timm--resnetv2_50.a1h_in1k") in message
    assert "model.safetensors" in message and "'resnet50v2'" in message


def test_imagenet_weights_load_from_the_local_cache(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    # A stand-in for timm's cached checkpoint, written where the HF cache would hold it.
    source = build_resnetv2_50_timm(64, RANDOM_WEIGHTS, {})
    state = {k: v.contiguous() for k, v in source.net.state_dict().items()}
    state["head.fc.weight"] = torch.zeros(1000, 2048)  # classifier keys are ignored
    snap = tmp_path / "hub" / "models--timm--resnetv2_50.a1h_in1k" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    save_file(state, str(snap / "model.safetensors"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    model = build_resnet50v2(64, weights_of("resnet50v2", "imagenet"), {})
    assert torch.equal(model.net.stem.conv.weight, source.net.stem.conv.weight)
    assert float(model.net.stem.conv.bias.detach().abs().sum()) == 0.0  # Keras bias, absent in timm


def test_weights_from_a_path_round_trip(tmp_path):
    a = build_resnet50v2(32, RANDOM_WEIGHTS, {}).eval()
    torch.save(a.state_dict(), tmp_path / "w.pt")
    b = build_resnet50v2(32, weights_of("resnet50v2", str(tmp_path / "w.pt")), {}).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(a(x), b(x))
    with pytest.raises(HarnessError, match="does not exist"):
        build_resnet50v2(32, weights_of("resnet50v2", str(tmp_path / "missing.pt")), {})
    torch.save({"bogus.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(HarnessError, match="do not fit"):
        build_resnet50v2(32, weights_of("resnet50v2", str(tmp_path / "bad.pt")), {})


@pytest.mark.parametrize("builder,size", [(build_xception, 71), (build_resnet50v2, 64)])
def test_loss_decreases_on_a_fixed_batch(builder, size):
    torch.manual_seed(0)
    model = build_classifier(builder(size, RANDOM_WEIGHTS, {}), "paper", 3, size)
    model.head[2].p = 0.0  # no dropout noise: the same batch must get easier step by step
    x, y = torch.rand(3, 3, size, size), torch.tensor([0, 1, 2])
    opt = torch.optim.NAdam(model.parameters(), lr=1e-3)
    model.train()
    losses = []
    for _ in range(3):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
