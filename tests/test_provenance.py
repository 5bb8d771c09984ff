"""Every run records the data it came from: version, mapping and counts per dataset."""

from __future__ import annotations

import json
import subprocess

import pytest
from fixtures_data import IEEE_EXPECTED, write_ieee8023, write_rsna
from test_report import write_run

from harness.analysis.report import render_report
from harness.config.suite import load_suite
from harness.data.prepare import prepare
from harness.data.provenance import data_provenance
from harness.plugin.check import check_data_options
from harness.plugin.registry import build_registry

RSNA = {"n0": ("Normal", 0), "n1": ("Normal", 0), "p0": ("Lung Opacity", 1)}


def git(*args, cwd):
    subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args],
                   cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def suite(tmp_path):
    write_ieee8023(tmp_path / "data" / "ieee8023")
    write_rsna(tmp_path / "data" / "rsna", RSNA, size=32)
    path = tmp_path / "suite.yaml"
    path.write_text("name: prov\nimage_size: 16\ncache_dir: cache\n"
                    "datasets:\n"
                    "  - {name: ieee8023, options: {root: data/ieee8023, mapping: current}}\n"
                    "  - {name: rsna, options: {root: data/rsna}}\n"
                    "split: {kind: grouped-kfold, folds: 2, seed: 0}\n")
    return load_suite(path)


def test_version_is_the_commit_of_a_clone_else_a_content_hash(suite, tmp_path):
    registry = build_registry()
    checked = check_data_options(suite, registry)
    prepared = prepare(suite, registry, checked, show_progress=False)
    data = prepared.provenance
    assert data["ieee8023"]["counts"] == {"normal": 1, "pneumonia": 5, "covid19": 3}
    assert data["ieee8023"]["counts"] == {
        c: IEEE_EXPECTED["current"]["classes"].get(c, 0) for c in suite.classes}
    assert data["rsna"]["counts"] == {"normal": 2, "pneumonia": 1, "covid19": 0}
    assert data["ieee8023"]["version"]["mapping"] == "current"
    assert data["ieee8023"]["version"]["finding_to_class"]["No Finding"] == "normal"
    before = data["ieee8023"]["version"]["content_sha256"]
    assert len(before) == 64 and "git_commit" not in data["ieee8023"]["version"]

    root = tmp_path / "data" / "ieee8023"
    (root / "images" / "extra.png").write_bytes(b"")  # the image list changed
    changed = data_provenance(suite, prepared.records, registry, checked.datasets)
    assert changed["ieee8023"]["version"]["content_sha256"] != before
    assert changed["rsna"]["version"] == data["rsna"]["version"]

    git("init", "--quiet", cwd=root)
    git("add", ".", cwd=root)
    git("commit", "--quiet", "-m", "snapshot", cwd=root)
    head = subprocess.run(["git", "rev-parse", "HEAD"], check=True, cwd=root, capture_output=True,
                          text=True).stdout.strip()
    cloned = data_provenance(suite, prepared.records, registry, checked.datasets)["ieee8023"]["version"]
    assert cloned["git_commit"] == head and cloned["git_dirty"] is False


def test_the_report_shows_the_data_and_its_warnings(tmp_path):
    root = tmp_path / "runs" / "fixture"
    for fold in (1, 2):
        run_dir = write_run(root, "phased", fold)
        config = json.loads((run_dir / "config.json").read_text())
        config["data"] = {"ieee8023": {"version": {"git_commit": "abc123", "mapping": "paper"},
                                       "counts": {"normal": 0, "pneumonia": 42,
                                                  "covid19": 612}, "images": 654}}
        config["data_notes"] = ["split 'paper': covid19 397 per phase, the paper 149"]
        (run_dir / "config.json").write_text(json.dumps(config))
    html = render_report(root, tmp_path / "out").read_text()
    assert "git commit abc123" in html and "<td>612</td>" in html
    assert html.count("covid19 397 per phase, the paper 149") == 1
    assert "Mixed data" not in html
