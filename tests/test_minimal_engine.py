"""A new engine is its primitives: ``tests/minimal_engine.py`` (plain torch, ~150 lines),
installed as a third-party plugin through the entry-point group, trains the ``tiny``
backbone on synthetic data through ``harness run`` next to the built-in torch engine, with
the same history schema; and the host-side input the core gives it matches the built-in
engine's device-side input."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from harness.config.suite import Augmentation
from harness.engine_api import host_inputs
from harness.training import augment
from harness.training.job import HISTORY_COLUMNS

HERE = Path(__file__).resolve().parent
ENGINES = HERE.parent / "plugins" / "engines"


def code_lines(path: Path) -> int:
    """Lines that are not blank (docstrings and comments count)."""
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def test_an_engine_is_about_150_lines():
    sizes = {p: code_lines(p) for p in (HERE / "minimal_engine.py",
                                         ENGINES / "torch_engine" / "model.py",
                                         ENGINES / "keras_engine" / "model.py")}
    assert all(n <= 150 for n in sizes.values()), sizes


@pytest.fixture
def minimal(tmp_path, monkeypatch):
    """``harness_minimal`` (``tests/minimal_engine.py``) installed with entry point
    ``minimal``: a ``.dist-info`` folder on ``sys.path``, as ``importlib.metadata`` finds
    installed packages; ``PYTHONPATH`` carries it to the worker and check processes."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(HERE / "minimal_engine.py", site / "harness_minimal.py")
    info = site / "harness_minimal-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-minimal\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text("[harness]\nminimal = harness_minimal\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))
    return site


def rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path) as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def test_a_third_party_engine_trains_through_harness_run(minimal, make_suite, run_harness,
                                                         tmp_path):
    suite = make_suite("mini", plugins=[], image_size=32,
                       matrix={"backbone": ["tiny"], "sampler": ["phased"],
                               "engine": ["minimal", "torch"], "fold": [1]},
                       samplers={"phased": {"phases": 2}},
                       training={"epochs_per_phase": 2, "batch_size": 16, "weights": "none",
                                 "head": "gap", "lr": 3e-3, "device": "cpu",
                                 "backbone_options": {"channels": [8, 16]}})
    listed = json.loads(run_harness("list", "engines", "--json").output)["engines"]
    assert {"name": "minimal", "plugin": "minimal"}.items() <= \
        next(e for e in listed if e["name"] == "minimal").items()
    result = run_harness("run", suite, "--runs-dir", tmp_path / "runs", "--no-report")
    assert result.exit_code == 0, result.output
    runs = {json.loads((d / "config.json").read_text())["run"]["engine"]: d
            for d in (tmp_path / "runs" / "mini").iterdir() if (d / "config.json").exists()}
    assert set(runs) == {"minimal", "torch"}
    histories = {}
    for engine, run_dir in runs.items():
        status = json.loads((run_dir / "status.json").read_text())
        assert status["state"] == "done", (engine, status)
        histories[engine] = rows(run_dir / "history.csv")
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert 0.0 <= metrics["accuracy"] <= 1.0
        lines = (run_dir / "predictions.csv").read_text().splitlines()
        assert lines[0] == "uid,true,pred,p_normal,p_pneumonia,p_covid19" and len(lines) > 10
    (columns, mini), (torch_columns, builtin) = histories["minimal"], histories["torch"]
    assert columns == torch_columns == HISTORY_COLUMNS
    assert [(r["phase"], r["epoch"], r["images"]) for r in mini] == \
        [(r["phase"], r["epoch"], r["images"]) for r in builtin] == \
        [("1", "1", mini[0]["images"]), ("1", "2", mini[0]["images"]),
         ("2", "1", mini[2]["images"]), ("2", "2", mini[2]["images"])]
    assert any(r["select_score"] != "" for r in mini)  # the core's selection ran (budget: equal
    # scores once per pass over the fold's training images, not every epoch)


def test_the_minimal_engine_learns_and_resumes_exactly(tmp_path, monkeypatch):
    """Under the core loop on easy synthetic classes (``test_torch_engine``'s jobs): it
    learns, and a run killed after phase 2's first epoch resumes from the phase-1
    checkpoint (its optimizer state through ``flatten``) to the same predictions."""
    from minimal_engine import MinimalModel
    from test_torch_engine import history, make_job

    from harness.training import loop
    from harness.training.job import Job

    job = make_job(tmp_path / "a", epochs_per_phase=3, batch_size=8, optimizer="nadam")
    reference = loop.train(job, MinimalModel)
    losses = [float(r["loss"]) for r in history(tmp_path / "a")]
    assert losses[-1] < 0.8 * losses[0]
    assert (reference.argmax(1) == job.labels[job.test]).mean() > 0.6

    class Killed(Exception):
        pass

    killed = make_job(tmp_path / "b", epochs_per_phase=3, batch_size=8, optimizer="nadam")

    def log_then_die(**row):
        Job.log_epoch(killed, **row)
        if len(killed.history) == 4:
            raise Killed()

    monkeypatch.setattr(killed, "log_epoch", log_then_die)
    with pytest.raises(Killed):
        loop.train(killed, MinimalModel)
    resumed = loop.train(make_job(tmp_path / "b", epochs_per_phase=3, batch_size=8,
                                  optimizer="nadam"), MinimalModel)
    assert len(history(tmp_path / "b")) == 6
    np.testing.assert_allclose(resumed, reference, atol=1e-6)


def test_a_backbone_without_a_torch_build_fails_the_dry_run(minimal, make_suite, run_harness):
    # ``backbones="torch"``: the minimal engine builds what torch builds, nothing else.
    suite = make_suite("nobuild", plugins=["harness.testing.fakes"],
                       matrix={"backbone": ["pixels"], "engine": ["minimal"]})
    result = run_harness("run", suite, "--dry-run")
    assert result.exit_code == 2, result.output
    assert "backbone 'pixels' cannot be built by engine 'minimal'" in result.output


@pytest.mark.parametrize("fill", ["nearest", "constant", "reflect"])
def test_host_inputs_match_the_torch_engines_device_inputs(fill):
    from harness_plugins.engines.torch_engine import ops

    rng = np.random.default_rng(0)
    size = 24
    images = rng.integers(0, 256, (6, size, size)).astype(np.uint8)
    params = augment.sample_params(rng, 6, Augmentation(rotation=40, zoom=0.2, shift=0.1,
                                                        shear=10), size)
    host = host_inputs(images, params, "imagenet", fill)
    device = ops.device_batch(torch.from_numpy(images), torch.device("cpu"), "imagenet",
                              augment.affine_matrices(params, size), fill).numpy()
    assert host.shape == device.shape == (6, 3, size, size)
    np.testing.assert_allclose(host, device, atol=2e-4)
    plain = host_inputs(images, None, "unit", channels_last=True)
    assert plain.shape == (6, size, size, 3)
    assert plain[0, 0, 0, 2] == pytest.approx(images[0, 0, 0] / 255.0)


def test_describe_says_which_optional_primitive_the_engine_lacks(minimal, run_harness):
    result = run_harness("describe", "backbone", "tiny", "--engine", "minimal",
                         "--image-size", "32")
    assert result.exit_code == 2, result.output
    assert ("engine model MinimalModel lacks the optional primitive(s) describe "
            "(harness.engine_api.Describable)") in result.output
