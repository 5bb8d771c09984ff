"""``harness describe`` and ``harness bench``: counts, shapes and the pipeline ratio.

Both commands run each framework in a child process, so invoking them in-process here
keeps TensorFlow and torch out of the pytest process.
"""

from __future__ import annotations

import importlib.util
import json
import re

import pytest
from click.testing import CliRunner

from harness.cli.model_commands import bench_command, describe_command

pytestmark = pytest.mark.keras

# tiny, default channels 16-32-64-64: bias-free 3x3 convs + BatchNorm (gamma, beta | mean, var)
TINY_CONV = 3 * 3 * (3 * 16 + 16 * 32 + 32 * 64 + 64 * 64)
TINY_BN = 16 + 32 + 64 + 64


def invoke(command, args):
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_describe_tiny_keras_prints_shape_and_counts():
    out = invoke(describe_command, ["backbone", "tiny", "--engine", "keras", "--image-size",
                                    "64", "--head", "gap"])
    assert "feature map: 4x4x64" in out
    counts = r"\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)$"
    backbone = re.search(r"^backbone" + counts, out, re.MULTILINE)
    model = re.search(r"^model" + counts, out, re.MULTILINE)
    as_int = [int(v.replace(",", "")) for v in backbone.groups()]
    assert as_int == [TINY_CONV + 4 * TINY_BN, TINY_CONV + 2 * TINY_BN, 2 * TINY_BN]
    assert int(model.group(1).replace(",", "")) == as_int[0] + 64 * 3 + 3


def test_describe_counts_agree_between_engines():
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed")
    args = ["backbone", "tiny", "--image-size", "48", "--head", "paper", "--json"]
    keras = json.loads(invoke(describe_command, [*args, "--engine", "keras"]))
    torch = json.loads(invoke(describe_command, [*args, "--engine", "torch"]))
    assert keras["feature_shape"] == torch["feature_shape"] == [3, 3, 64]
    assert keras["params"] == torch["params"]


def test_describe_unknown_backbone_lists_known_ones_without_a_framework():
    result = CliRunner().invoke(describe_command, ["backbone", "xceptoin", "--engine", "keras"])
    assert result.exit_code != 0
    assert "Did you mean 'xception'" in str(result.exception)
    result = CliRunner().invoke(describe_command, ["backbone", "resnetv2_50_timm",
                                                   "--engine", "keras"])
    assert "has no keras build" in str(result.exception)


def test_describe_keras_concat_at_300_has_the_papers_parameter_count():
    out = invoke(describe_command, ["backbone", "concat", "--engine", "keras",
                                    "--image-size", "300"])
    assert "feature map: 10x10x4096" in out
    assert re.search(r"^model\s+48,928,811\s", out, re.MULTILINE), out


def test_bench_prints_the_pipeline_ratio_against_the_papers_pipeline():
    out = invoke(bench_command, ["--engine", "keras", "--backbone", "tiny", "--image-size",
                                 "32", "--batch-size", "4", "--steps", "2"])
    row = r"^keras\s+CPU\s+float32\s+tiny\s+4\s+[\d.]+\s+[\d.]+\s+n/a\s+n/a\s+n/a$"
    assert re.search(row, out, re.MULTILINE), out
    paper = float(re.search(r"paper pipeline \(ImageDataGenerator.flow, Table 2\): "
                            r"([\d.]+) img/s", out).group(1))
    m = re.search(r"keras pipeline \(cache -> augmented device batch\): ([\d.]+) img/s = "
                  r"([\d.]+)x the paper's", out)
    assert m, out
    rate, ratio = float(m.group(1)), float(m.group(2))
    assert paper > 0 and rate > 0
    assert ratio == pytest.approx(rate / paper, rel=0.02, abs=0.006)  # printed to 2 decimals


def test_bench_data_fits_every_batch_size(tmp_path):
    # The pipeline is timed at batch 30 while concat trains at 20: the noise cache must hold
    # the larger (this crashed `harness bench --engine torch --backbone concat`).
    from harness.cli.describe import _bench_data, batch_sizes
    from harness.plugin.registry import build_registry

    sizes = batch_sizes(build_registry(), ["concat", "xception"], None)
    assert sizes == {"concat": 20, "xception": 30}
    cache, labels = _bench_data(tmp_path, [30, *sizes.values()], steps=3, image_size=8)
    assert cache.shape == (120, 8, 8) and len(labels) == 120


# Each bench call times every engine in a child process, and the paper's pipeline in one
# more (TensorFlow): the torch figures of several tests come from two calls, made once.

@pytest.fixture(scope="module")
def torch_bench_json():
    """--overhead, --peak-tflops and --precision bf16 at once: one torch child."""
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed")
    out = invoke(bench_command, ["--engine", "torch", "--backbone", "tiny", "--image-size",
                                 "32", "--batch-size", "4", "--steps", "2", "--overhead",
                                 "--peak-tflops", "2", "--precision", "bf16", "--json"])
    return json.loads(out[out.index("{"):])


@pytest.fixture(scope="module")
def torch_bench_text():
    """The table as printed: float32, --overhead, no --peak-tflops."""
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed")
    return invoke(bench_command, ["--engine", "torch", "--backbone", "tiny", "--image-size",
                                  "32", "--batch-size", "4", "--steps", "1", "--overhead"])


def test_bench_overhead_reports_fractions_and_a_projection(torch_bench_json, torch_bench_text):
    [model] = torch_bench_json["engines"]["torch"]["models"]
    copies, projection = model["copies"], model["projection"]
    assert copies["state_bytes"] > copies["best_bytes"] > 0  # state adds optimizer moments
    device = projection["device"]
    assert device["epoch_s"] == pytest.approx(633 / model["train_images_per_s"], rel=1e-3)
    assert device["overhead_frac"] == pytest.approx(
        device["select_frac"] + device["checkpoint_frac"] + device["bookkeeping_frac"],
        abs=2e-4)
    gpu = projection["modelled_gpu"]  # no GPU in tests: modelled, and marked as such
    assert gpu["epoch_s"] == pytest.approx(633 / 1500, rel=1e-3)
    text = torch_bench_text
    assert "GPU rows are modelled, not measured" in text
    assert re.search(r"^torch\s+tiny\s+GPU\*\s+0\.422\s", text, re.MULTILINE), text


def test_bench_times_the_precision_and_compile_asked_for(torch_bench_json):
    out = invoke(bench_command, ["--engine", "keras", "--backbone", "tiny", "--image-size",
                                 "32", "--batch-size", "4", "--steps", "1", "--compile", "both",
                                 "--json"])
    result = json.loads(out[out.index("{"):])
    assert set(result["engines"]) == {"keras", "keras+compile"}
    assert [result["engines"][e]["compile"] for e in ("keras", "keras+compile")] == [False, True]
    for engine in result["engines"].values():
        assert engine["models"][0]["train_images_per_s"] > 0
    assert "bfloat16" in torch_bench_json["engines"]["torch"]["precision"]


def test_bench_reports_flops_and_the_share_of_the_peak(torch_bench_json, torch_bench_text):
    from harness.training.peaks import peak_flops

    [model] = torch_bench_json["engines"]["torch"]["models"]
    # tiny: 3x3 convs 3-16-32-64-64 at 32, 16, 8, 4 px (2 FLOPs a multiply-add), plus a head
    convs = 2 * 9 * (3 * 16 * 32**2 + 16 * 32 * 16**2 + 32 * 64 * 8**2 + 64 * 64 * 4**2)
    assert convs < model["forward_flops"] < 1.2 * convs
    assert model["train_peak_frac"] == pytest.approx(
        3 * model["forward_flops"] * model["train_images_per_s"] / 2e12)
    assert model["infer_peak_frac"] == pytest.approx(
        model["forward_flops"] * model["infer_images_per_s"] / 2e12)
    # without --peak-tflops: datasheet figures for known GPUs only
    assert peak_flops("NVIDIA H100 80GB HBM3", "bfloat16") == 989.4e12
    assert peak_flops("NVIDIA H100 PCIe", "float32") == 378.0e12
    assert peak_flops("cpu", "float32") is None
    text = torch_bench_text
    assert re.search(r"^torch\s+cpu\s+float32\s+tiny\s+4\s+[\d.]+\s+[\d.]+\s+0\.01\s+n/a\s+n/a$",
                     text, re.MULTILINE), text
    assert "not known for this device: --peak-tflops N gives it" in text
