"""``harness run --dry-run`` refuses weights whose file is missing (one ``error:`` line,
exit 2) and says what the run will do with the image cache: ready, built, completed or
rebuilt."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness import HarnessError, WeightSource
from harness.config.suite import load_suite
from harness.data.cache import FILLED, IMAGES
from harness.plugin.weights import check_weight_files, local_files


def test_a_missing_weights_file_is_one_line_at_dry_run(make_suite, run_harness, tmp_path):
    missing = tmp_path / "gone" / "best.pt"
    suite = make_suite("w", training={"weights": str(missing), "normalization": "unit"})
    result = run_harness("run", suite, "--dry-run", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2
    assert result.output.splitlines() == [(
        f"error: {suite}: training.weights: weights file {missing} does not exist (backbone "
        "'pixels', engine 'centroid'); give an existing file, a declared name, or 'none'")]
    assert "Traceback" not in result.output
    # a backbone's own setting is named by its key
    override = make_suite("o", backbones={"pixels": {"weights": str(missing), "normalization": "unit"}})
    result = run_harness("run", override, "--dry-run", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {override}: backbones.pixels.weights: weights "
                                    f"file {missing} does not exist")
    # with the file there, the same dry run lists the runs
    missing.parent.mkdir()
    missing.write_bytes(b"")
    result = run_harness("run", suite, "--dry-run", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    assert "pending" in result.output


def test_a_run_refuses_a_missing_weights_file_before_decoding(make_suite, run_harness,
                                                              tmp_path):
    missing = tmp_path / "best.pt"
    suite = make_suite("w", training={"weights": str(missing), "normalization": "unit"})
    result = run_harness("run", suite, "--no-report", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2
    assert result.output.splitlines()[-1].startswith(
        f"error: {suite}: training.weights: weights file {missing} does not exist")
    assert not list((tmp_path / "cache").glob(f"*/{IMAGES}"))  # no image was decoded


def test_a_named_source_read_from_a_local_file_is_checked(make_suite, tmp_path):
    suite = load_suite(make_suite("n"))
    where = tmp_path / "keras" / "x.h5"
    local = WeightSource("imagenet", "files", "unit", location=f"{tmp_path}/a.h5, {where}")
    words = WeightSource("imagenet", "timm's", "unit", location="timm's cache; never downloaded")
    assert local_files(local) == [tmp_path / "a.h5", where]
    assert local_files(words) == []
    (tmp_path / "a.h5").write_bytes(b"")
    with pytest.raises(HarnessError) as err:
        check_weight_files(suite, {("pixels", "centroid"): local}, [("pixels", "centroid")])
    assert str(err.value) == (
        f"{suite.source}: training.weights: weights 'imagenet' of backbone 'pixels' (centroid "
        f"engine) are read from {where}, which does not exist; put the file there (the "
        "harness never downloads weights) or set weights: none")
    check_weight_files(suite, {("pixels", "centroid"): words}, [("pixels", "centroid")])
    where.parent.mkdir()
    where.write_bytes(b"")
    check_weight_files(suite, {("pixels", "centroid"): local}, [("pixels", "centroid")])


def _cache(run_harness, suite, tmp_path) -> dict:
    result = run_harness("run", suite, "--dry-run", "--json", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["cache"]


def test_dry_run_says_what_becomes_of_the_image_cache(make_suite, run_harness, tmp_path):
    suite = make_suite("c")
    cache = _cache(run_harness, suite, tmp_path)
    assert (cache["state"], cache["images"], cache["size"], cache["decoded"]) == \
        ("missing", 120, 32, 0)
    result = run_harness("run", suite, "--dry-run", "--runs-dir", tmp_path / "runs")
    assert f"  cache:  {cache['path']}: will be built (120 images of 32 px, 0.12 MB)" \
        in result.output.splitlines()
    assert not (tmp_path / "cache").exists()  # the dry run wrote nothing

    assert run_harness("run", suite, "--only", "fold=1", "--no-report",
                       "--runs-dir", tmp_path / "runs").exit_code == 0
    cache = _cache(run_harness, suite, tmp_path)
    assert (cache["state"], cache["decoded"]) == ("ready", 120)
    result = run_harness("run", suite, "--dry-run", "--runs-dir", tmp_path / "runs")
    assert f"  cache:  {cache['path']}: ready (120 images of 32 px)" in result.output

    # a fill that stopped: the rest will be decoded
    folder = tmp_path / "cache" / cache["path"].rsplit("/", 1)[-1]
    filled = np.load(folder / FILLED)
    filled[:50] = False
    np.save(folder / FILLED, filled)
    cache = _cache(run_harness, suite, tmp_path)
    assert (cache["state"], cache["decoded"]) == ("partial", 70)

    # a damaged cache is what the run rebuilds, not an error
    with open(folder / IMAGES, "r+b") as images:
        images.truncate(1000)
    cache = _cache(run_harness, suite, tmp_path)
    assert cache["state"] == "damaged"
    assert "truncated" in cache["why"]
    result = run_harness("run", suite, "--dry-run", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0
    assert "will be rebuilt" in result.output
