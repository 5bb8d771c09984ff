"""The paper's three networks train and predict through `harness run`, at full depth.

One run per network, each at the smallest input its engine's build accepts, one step of
two images: this checks the whole path (suite → worker → engine → predictions → metrics),
not accuracy. The concatenation, the paper's model, runs in the paper's framework (Keras;
71 px, the smallest Keras Xception accepts) and builds both members' graphs there; Xception
and ResNet50V2 alone run in the torch engine (32 px). Shapes and parameter counts of every
network in both engines are checked in ``test_keras_models`` and ``test_torch_models``.
"""

from __future__ import annotations

import csv
import json

import pytest

from harness.rundir.folder import RunFolder

RUNS = {"keras": (["concat"], 71), "torch": (["xception", "resnet50v2"], 32)}


@pytest.mark.slow
@pytest.mark.parametrize("engine", sorted(RUNS))
def test_paper_networks_run_end_to_end(make_suite, run_harness, tmp_path, engine):
    networks, image_size = RUNS[engine]
    suite = make_suite(f"paper-{engine}", plugins=[], image_size=image_size,
                       datasets=[{"name": "synthetic", "options": {"n": 48, "seed": 3}}],
                       matrix={"backbone": networks, "sampler": ["phased"], "engine": [engine],
                               "fold": [1]},
                       samplers={"phased": {"phases": 1}},
                       training={"epochs_per_phase": 1, "batch_size": 2, "weights": "none",
                                 "head": "paper", "max_steps_per_epoch": 1, "device": "cpu",
                                 "selection": "last"})
    result = run_harness("run", suite, "--runs-dir", tmp_path / "runs", "--no-report")
    assert result.exit_code == 0, result.output
    runs = sorted(p.parent for p in (tmp_path / "runs" / f"paper-{engine}").glob("*/config.json"))
    assert sorted(json.loads((r / "config.json").read_text())["run"]["backbone"]
                  for r in runs) == sorted(networks)
    for run in runs:
        assert json.loads((run / "status.json").read_text())["state"] == "done"
        with (run / "history.csv").open(newline="") as fh:
            assert [r["images"] for r in csv.DictReader(fh)] == ["2"]  # one step, 2 images
        rows = (run / "predictions.csv").read_text().splitlines()
        assert rows[0] == "uid,true,pred,p_normal,p_pneumonia,p_covid19"
        n_test = len(RunFolder(run).plan_document()["test"]["uids"])
        assert len(rows) - 1 == n_test > 0
        probs = [sum(map(float, r.split(",")[3:])) for r in rows[1:]]
        assert all(abs(p - 1) < 1e-3 for p in probs)
        assert json.loads((run / "metrics.json").read_text())["n"] == n_test
