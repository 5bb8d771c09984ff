"""``harness data summary | prepare | fetch | bench-decode``."""

from __future__ import annotations

import json
import subprocess

import plugin_calls as calls
import pytest
from click.testing import CliRunner
from fixtures_data import (
    IEEE_EXPECTED,
    paper_records,
    write_broken_dicom,
    write_ieee8023,
    write_rsna,
)
from harness_plugins.splitters import paper

from harness.cli.data_commands import render, summarize
from harness.cli.main import main

RSNA_PATIENTS = {f"n{i}": ("Normal", 0) for i in range(6)} | {
    f"p{i}": ("Lung Opacity", 1 + i % 2) for i in range(5)} | {
    "x0": ("No Lung Opacity / Not Normal", 0)}


def invoke(*args):
    result = CliRunner().invoke(main, ["data", *map(str, args)])
    return result


@pytest.fixture
def suite_file(tmp_path):
    write_ieee8023(tmp_path / "data" / "ieee8023")
    write_rsna(tmp_path / "data" / "rsna", RSNA_PATIENTS, size=48)
    path = tmp_path / "suites" / "mini.yaml"
    path.parent.mkdir()
    path.write_text(
        "name: mini\n"
        "image_size: 32\n"
        "cache_dir: ../cache\n"
        "datasets:\n"
        "  - {name: ieee8023, options: {root: ../data/ieee8023, mapping: current}}\n"
        "  - {name: rsna, options: {root: ../data/rsna}}\n"
        "split: {kind: grouped-kfold, folds: 2, seed: 0, select_fraction: 0.2}\n")
    return path


def test_summary_of_a_suite_shows_table1_exclusions_and_folds(suite_file):
    result = invoke("summary", suite_file, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["table1"]["ieee8023"] == {"normal": 1, "pneumonia": 5, "covid19": 3}
    assert summary["table1"]["rsna"] == {"normal": 6, "pneumonia": 5, "covid19": 0}
    assert summary["total"] == {"normal": 7, "pneumonia": 10, "covid19": 3}
    assert summary["exclusions"]["ieee8023"] == IEEE_EXPECTED["current"]["exclusions"]
    assert summary["exclusions"]["rsna"] == {"No Lung Opacity / Not Normal": 1}
    assert len(summary["folds"]) == 2
    for fold in summary["folds"]:
        sizes = [sum(fold[p].values()) for p in ("train", "select", "test")]
        assert sum(sizes) == 20

    text = invoke("summary", suite_file).output
    assert "Table 1" in text and "ieee8023" in text and "unmapped finding" in text
    assert "fold 1: train" in text


def test_summary_of_one_dataset_without_a_suite(tmp_path):
    root = write_ieee8023(tmp_path / "ieee")
    result = invoke("summary", "--dataset", "ieee8023", "--root", root, "--mapping", "paper",
                    "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["total"] == {"normal": 0, "pneumonia": 4, "covid19": 3}
    assert summary["exclusions"] == {"ieee8023": IEEE_EXPECTED["paper"]["exclusions"]}
    assert "folds" not in summary

    missing = invoke("summary", "--dataset", "ieee8023", "--root", tmp_path / "none")
    assert missing.exit_code == 2
    assert "harness data fetch ieee8023" in missing.output


def test_summary_reports_the_papers_per_fold_composition():
    records = paper_records()
    folds = calls.split(paper.split_paper, paper.PaperOptions, records, 5, 0, {"select_from": "none"})
    summary = summarize(records, ["normal", "pneumonia", "covid19"], {}, folds)
    assert summary["total"] == {"normal": 8851, "pneumonia": 6054, "covid19": 180}
    first = summary["folds"][0]
    assert first["train"] == {"normal": 2000, "pneumonia": 1634, "covid19": 149}
    assert first["test"] == {"normal": 6851, "pneumonia": 4420, "covid19": 31}
    assert first["phases"] == [633] * 8
    assert first["first_phase"] == {"normal": 250, "pneumonia": 234, "covid19": 149}
    text = render(summary)
    assert "fold 1: train 2000/1634/149  select 0/0/0  test 6851/4420/31  phases 8 x 633" in text
    assert "fold 3: train 2000/1634/150" in text


def test_prepare_fills_the_cache_and_names_a_broken_file(suite_file):
    rsna_images = suite_file.parent.parent / "data" / "rsna" / "stage_2_train_images"
    write_broken_dicom(rsna_images / "p0.dcm", "corrupt-jpeg")
    result = invoke("prepare", suite_file, "--quiet")
    assert result.exit_code == 0, result.output
    assert "19 images ready (32x32); 20 decoded now" in result.output
    assert "images/s" in result.output
    assert "1 unreadable image(s) skipped" in result.output
    assert str(rsna_images / "p0.dcm") in result.output and "cannot decode DICOM" in result.output
    again = invoke("prepare", suite_file, "--quiet")
    assert "all were cached already" in again.output


def git(*args, cwd, date=None):
    env = None
    if date:
        import os

        env = {**os.environ, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


@pytest.fixture
def upstream(tmp_path):
    """A local stand-in for the ieee8023 repository: one commit from before the paper's
    snapshot date (March 2020), one from after (June 2020)."""
    repo = tmp_path / "upstream"
    repo.mkdir()
    git("init", "--quiet", cwd=repo)
    git("config", "user.email", "t@example.org", cwd=repo)
    git("config", "user.name", "t", cwd=repo)
    (repo / "metadata.csv").write_text("patientid,finding\n1,COVID-19\n")
    git("add", ".", cwd=repo)
    git("commit", "--quiet", "-m", "first", cwd=repo, date="2020-03-01T12:00:00Z")
    first = git("rev-parse", "HEAD", cwd=repo)
    (repo / "metadata.csv").write_text("patientid,finding\n1,Pneumonia/Viral/COVID-19\n")
    git("commit", "--quiet", "-am", "second", cwd=repo, date="2020-06-01T12:00:00Z")
    return repo, first


def test_fetch_pins_the_paper_time_commit_unless_told_otherwise(tmp_path, upstream):
    repo, first = upstream
    default = invoke("fetch", "ieee8023", tmp_path / "default", "--url", repo)
    assert default.exit_code == 0, default.output
    assert (tmp_path / "default" / "metadata.csv").read_text() == \
        "patientid,finding\n1,COVID-19\n"
    assert f"at commit {first}: the last commit before 2020-04-11" in default.output
    latest = invoke("fetch", "ieee8023", tmp_path / "latest", "--url", repo, "--commit", "latest")
    assert latest.exit_code == 0, latest.output
    assert "Pneumonia/Viral" in (tmp_path / "latest" / "metadata.csv").read_text()
    pinned = invoke("fetch", "ieee8023", tmp_path / "pinned", "--url", repo, "--commit",
                    first[:10])
    assert pinned.exit_code == 0, pinned.output
    assert f"at commit {first}" in pinned.output


def test_fetch_url_from_the_environment_and_clear_errors(tmp_path, upstream, monkeypatch):
    repo, _ = upstream
    monkeypatch.setenv("HARNESS_IEEE8023_URL", str(repo))
    assert invoke("fetch", "ieee8023", tmp_path / "env").exit_code == 0
    again = invoke("fetch", "ieee8023", tmp_path / "env")
    assert again.exit_code == 2 and "exists and is not empty" in again.output
    bad = invoke("fetch", "ieee8023", tmp_path / "bad", "--commit", "0" * 40)
    assert bad.exit_code == 2 and "checking out commit 000" in bad.output
    # an option-looking URL or commit is never handed to git as an option
    option = invoke("fetch", "ieee8023", tmp_path / "opt", "--url=--version")
    assert option.exit_code == 2 and "cloning --version failed" in option.output
    assert "git version" not in option.output
    commit = invoke("fetch", "ieee8023", tmp_path / "c", "--commit=--orphan=x")
    assert commit.exit_code == 2 and "expected a commit id" in commit.output
    unknown = invoke("fetch", "synthetic", tmp_path / "s")
    assert unknown.exit_code == 2 and "has no fetch step" in unknown.output


def test_fetch_rsna_prints_the_kaggle_steps(tmp_path):
    result = invoke("fetch", "rsna", tmp_path / "rsna")
    assert result.exit_code == 0
    assert "kaggle competitions download -c rsna-pneumonia-detection-challenge" in result.output
    assert "stage_2_train_images" in result.output and not (tmp_path / "rsna").exists()


def test_bench_decode_measures_both_paths_side_by_side():
    result = invoke("bench-decode", "--n", 6, "--size", 128, "--image-size", 32, "--workers", 2,
                    "--repeats", 2, "--json")
    assert result.exit_code == 0, result.output
    numbers = json.loads(result.output)
    assert numbers["images"] == 6 and numbers["workers"] == 2
    assert len(numbers["plain_s"]) == len(numbers["cache_s"]) == 2
    assert numbers["speedups"] == pytest.approx(
        [p / c for p, c in zip(numbers["plain_s"], numbers["cache_s"])])
    assert numbers["speedup"] == pytest.approx(sum(numbers["speedups"]) / 2)
    assert numbers["decoder_ms"] > 0 and numbers["default_decoder_ms"] > 0
    assert all(c > 0 for c in numbers["cache_cpu_s"])
    assert numbers["verdict"].split()[0] in ("at", "inconclusive:", "below")
    text = invoke("bench-decode", "--n", 4, "--size", 64, "--image-size", 16, "--repeats", 1)
    assert "speed-up over the plain loop" in text.output and "verdict:" in text.output
