"""The Python API: ``harness.run`` (a file or a dict) and ``harness.load_results``."""

from __future__ import annotations

import pandas as pd
import pytest

import harness
from harness.testing import small_suite


def test_run_a_dict_then_load_the_long_results_table(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    capfd.readouterr()
    suite = small_suite("api", cache_dir="cache", matrix={"sampler": ["none", "phased"]})
    result = harness.run(suite, runs_dir="runs", reports_dir="reports")
    assert [o.state for o in result.outcomes] == ["done"] * 4
    assert capfd.readouterr() == ("", "")   # quiet by default, worker processes included
    # relative paths of the dict and the arguments resolve against the current folder
    assert (tmp_path / "cache").is_dir() and any((tmp_path / "cache").iterdir())
    assert result.report.resolve() == tmp_path / "reports" / "api" / "index.html"
    assert result.report.resolve().is_file()
    table = harness.load_results(tmp_path / "runs" / "api")
    assert list(table.columns) == ["suite", "run_id", "backbone", "sampler", "engine", "fold",
                                   "seed", "class", "metric", "value"]
    # 4 runs x (6 figures of the whole test set + 3 classes x 7 per-class figures)
    assert len(table) == 4 * (6 + 3 * 7)
    assert table["fold"].dtype == "int64" and sorted(table["fold"].unique()) == [1, 2]
    overall = table[table["class"].isna()]
    accuracy = overall[overall["metric"] == "accuracy"]["value"]
    assert len(accuracy) == 4 and ((accuracy >= 0) & (accuracy <= 1)).all()
    sens = table[(table["class"] == "covid19") & (table["metric"] == "sensitivity")]
    assert len(sens) == 4 and sens["value"].between(0, 1).all()
    # every value a fraction, but the counts (n, support) and MCC (-1 to 1)
    assert set(table["metric"]) >= {"n", "support", "mcc"}
    from harness.analysis.results import COUNTS
    assert COUNTS == ("n", "support")
    fractions = table[~table["metric"].isin([*COUNTS, "mcc"])]["value"].dropna()
    assert len(fractions) == 4 * (4 + 3 * 6) and fractions.between(0, 1).all()
    assert table[table["metric"] == "mcc"]["value"].between(-1, 1).all()
    n = table[table["metric"] == "n"]["value"]
    assert (n == n.round()).all() and (n > 1).all()
    support = table[table["metric"] == "support"].groupby("run_id")["value"].sum()
    assert support.to_dict() == table[table["metric"] == "n"].set_index("run_id")["value"].to_dict()
    # the whole runs/ folder gives the same rows; the report folder holds the same table
    assert len(harness.load_results(tmp_path / "runs")) == len(table)
    written = pd.read_csv(tmp_path / "reports" / "api" / "results.csv")
    assert written.shape == table.shape
    assert written["value"].sum() == pytest.approx(table["value"].sum())
    pytest.importorskip("pyarrow")
    parquet = pd.read_parquet(tmp_path / "reports" / "api" / "results.parquet")
    assert parquet["value"].sum() == pytest.approx(table["value"].sum())


def test_run_refuses_a_dict_with_a_mistake_as_the_cli_does(tmp_path):
    suite = small_suite("bad", datasets=[{"name": "synthetic", "options": {"nn": 5}}])
    with pytest.raises(harness.HarnessError, match=r"bad \(a dict\): datasets\[0\].options.nn: "
                                                   r"unknown option. Did you mean 'n'\?"):
        harness.run(suite, runs_dir=tmp_path / "runs", dry_run=True)


def test_load_results_of_a_missing_folder_says_so(tmp_path):
    with pytest.raises(harness.HarnessError, match="no such runs folder"):
        harness.load_results(tmp_path / "nowhere")
