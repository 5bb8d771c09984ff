"""Metrics from predictions files: the paper's Tables 3/4, other figures, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import conftest
import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import balanced_accuracy_score, f1_score, matthews_corrcoef, roc_auc_score

from harness.analysis.metrics import (
    bootstrap_intervals,
    compute_metrics,
    confusion,
    figures,
)
from harness.cli.main import main
from harness.cli.report_commands import metrics_command
from harness.errors import HarnessError
from harness.rundir.predictions import read_predictions

CLASSES = ["normal", "pneumonia", "covid19"]
SHARED = conftest.SHARED / "paper"  # ../shared, or HARNESS_SHARED


def write_predictions(path: Path, rows: list[tuple], classes=CLASSES) -> Path:
    """rows: (uid, true, pred, probabilities...)."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["uid", "true", "pred"] + [f"p_{c}" for c in classes])
        writer.writerows(rows)
    return path


# -- the paper's published confusions reproduce its Table 4 --------------------------------

PAPER_CLASSES = ["covid19", "pneumonia", "normal"]   # the paper's column order
SHORT = {"covid19": "covid", "pneumonia": "pneu", "normal": "normal"}
NETWORK = {"Xception-": "Xception", "ResNet50V2-": "ResNet50V2", "concatenate-": "Concatenated"}


def paper_table4() -> dict[tuple[str, str], list[float]]:
    """{(fold or 'Average', network): 13 figures} parsed from the paper's text."""
    lines = (SHARED / "rahimzadeh-attar-2020-concat-xception-resnet50v2.txt").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("roid\tNetwork"))
    parsed = []   # (fold label or None, network, figures); the label sits on a group's middle line
    for line in lines[start + 1:]:
        if line.startswith("Table 4"):
            break
        tokens = line.split()
        if not tokens:
            continue
        label = tokens.pop(0) if tokens[0].isdigit() or tokens[0] == "Average" else None
        parsed.append((label, tokens[0], [float(t) for t in tokens[1:]]))
    assert len(parsed) == 18   # 5 folds and the average, 3 networks each
    rows = {}
    for g in range(0, 18, 3):
        fold = next(label for label, _, _ in parsed[g:g + 3] if label)
        for _, network, values in parsed[g:g + 3]:
            rows[(fold, network)] = values
    return rows


def paper_prediction_rows(row: dict[str, str]) -> list[tuple]:
    """One predictions row per image of a published 3x3 confusion (one-hot probabilities)."""
    out = []
    for t in PAPER_CLASSES:
        for p in PAPER_CLASSES:
            key = f"correct_{SHORT[t]}" if t == p else f"wrong_{SHORT[t]}_{SHORT[p]}"
            onehot = [1.0 if c == p else 0.0 for c in PAPER_CLASSES]
            out += [(f"{t}-{p}-{i}", t, p, *onehot) for i in range(int(row[key]))]
    return out


def ours_as_table4(m: dict) -> list[float]:
    """Our figures in the paper's Table 4 column order, in percent."""
    pc = m["per_class"]
    return [m["accuracy"] * 100] + [pc[c][f] * 100 for f in
                                    ("sensitivity", "specificity", "accuracy", "precision")
                                    for c in PAPER_CLASSES]


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/paper is not available")
def test_paper_confusions_reproduce_table4(tmp_path):
    expected = paper_table4()
    confusions = list(csv.DictReader((SHARED / "paper_confusions.csv").open()))
    assert len(confusions) == 15
    runner = CliRunner()
    per_network: dict[str, list[list[float]]] = {}
    for row in confusions:
        path = write_predictions(tmp_path / f"f{row['fold']}-{row['name']}.csv",
                                 paper_prediction_rows(row), PAPER_CLASSES)
        # Through the command (JSON) and through the functions: the same figures.
        result = runner.invoke(metrics_command, [str(path), "--json", "--bootstrap", "0"])
        assert result.exit_code == 0, result.output
        via_cli = json.loads(result.output)
        via_api = compute_metrics(read_predictions(path), bootstrap=0)
        assert via_cli == via_api
        # Table 3 counts are the published ones.
        assert via_api["per_class"]["covid19"]["wrong_detected"] == int(row["wrong_covid"])
        assert via_api["per_class"]["pneumonia"]["not_detected"] == int(row["not_detected_pneu"])
        ours = ours_as_table4(via_api)
        paper = expected[(row["fold"], NETWORK[row["name"]])]
        assert len(paper) == 13
        # The paper truncates some figures (87.09 for 87.096...): two decimals, 0.011 slack.
        assert np.allclose(ours, paper, atol=0.011, rtol=0), (row["fold"], row["name"],
                                                             list(zip(ours, paper)))
        per_network.setdefault(NETWORK[row["name"]], []).append(ours)
    for network, rows in per_network.items():
        assert len(rows) == 5
        average = np.mean(rows, axis=0)     # the "Average" row: mean over folds
        assert np.allclose(average, expected[("Average", network)], atol=0.011, rtol=0)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/paper is not available")
def test_metrics_command_prints_paper_tables(tmp_path):
    row = next(csv.DictReader((SHARED / "paper_confusions.csv").open()))  # fold 1, Xception
    path = write_predictions(tmp_path / "p.csv", paper_prediction_rows(row), PAPER_CLASSES)
    result = CliRunner().invoke(metrics_command, [str(path), "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    assert "11302 images" in result.output
    assert "83.87" in result.output          # COVID-19 sensitivity, 26/31
    assert "20.47" in result.output          # COVID-19 precision, 26/127
    assert "overall accuracy   90.73 %" in result.output   # 10254/11302 (paper: 90.72)


# -- hand-computed values on a tiny fixture -----------------------------------------------

TINY = [  # uid, true, pred
    ("u1", "normal", "normal"), ("u2", "normal", "normal"), ("u3", "normal", "pneumonia"),
    ("u4", "pneumonia", "pneumonia"), ("u5", "pneumonia", "covid19"),
    ("u6", "covid19", "covid19"), ("u7", "covid19", "normal"), ("u8", "normal", "normal"),
]
TINY_PROBA = [[.8, .1, .1], [.6, .3, .1], [.3, .6, .1], [.2, .7, .1], [.1, .3, .6],
              [.2, .1, .7], [.5, .1, .4], [.7, .2, .1]]


@pytest.fixture
def tiny(tmp_path):
    return write_predictions(tmp_path / "tiny.csv",
                             [(*r, *p) for r, p in zip(TINY, TINY_PROBA)])


def test_tiny_fixture_hand_computed(tiny):
    table = read_predictions(tiny)
    assert table.classes == CLASSES
    m = compute_metrics(table, bootstrap=0)
    assert m["confusion"] == [[3, 1, 0], [0, 1, 1], [1, 0, 1]]
    n, p, c = (m["per_class"][k] for k in CLASSES)
    # Table 3: correct detected / not detected / wrong detected
    assert (n["correct"], n["not_detected"], n["wrong_detected"]) == (3, 1, 1)
    assert (p["correct"], p["not_detected"], p["wrong_detected"]) == (1, 1, 1)
    assert (c["correct"], c["not_detected"], c["wrong_detected"]) == (1, 1, 1)
    # Table 4, equations 1-5
    assert n["sensitivity"] == 0.75 and n["specificity"] == 0.75
    assert n["accuracy"] == 0.75 and n["precision"] == 0.75
    assert p["sensitivity"] == 0.5 and p["specificity"] == pytest.approx(5 / 6)
    assert p["accuracy"] == 0.75 and p["precision"] == 0.5
    assert m["accuracy"] == 5 / 8
    assert m["balanced_accuracy"] == pytest.approx((0.75 + 0.5 + 0.5) / 3)
    true = [CLASSES.index(r[1]) for r in TINY]
    pred = [CLASSES.index(r[2]) for r in TINY]
    assert m["mcc"] == pytest.approx(matthews_corrcoef(true, pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(true, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(true, pred, average="macro"))
    assert m["macro_auroc"] == pytest.approx(
        roc_auc_score(true, np.array(TINY_PROBA), multi_class="ovr", average="macro"))
    json.dumps(m, allow_nan=False)   # strict JSON: no NaN anywhere


def test_mcc_and_f1_match_sklearn_on_random_labels():
    rng = np.random.default_rng(3)
    true, pred = rng.integers(0, 4, 500), rng.integers(0, 4, 500)
    pred[:200] = true[:200]
    f = figures(confusion(true, pred, 4))
    assert f["mcc"] == pytest.approx(matthews_corrcoef(true, pred))
    assert f["macro_f1"] == pytest.approx(f1_score(true, pred, average="macro"))
    assert f["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(true, pred))


def test_class_absent_from_truth_gives_none_not_a_crash(tmp_path):
    path = write_predictions(tmp_path / "p.csv", [
        ("a", "normal", "normal", .9, .05, .05), ("b", "pneumonia", "covid19", .2, .3, .5),
        ("c", "pneumonia", "pneumonia", .1, .8, .1), ("d", "normal", "pneumonia", .4, .5, .1)])
    m = compute_metrics(read_predictions(path, CLASSES), bootstrap=20)
    covid = m["per_class"]["covid19"]
    assert covid["support"] == 0 and covid["wrong_detected"] == 1
    assert covid["sensitivity"] is None and covid["auroc"] is None
    assert m["per_class"]["normal"]["auroc"] == pytest.approx(1.0)
    assert m["macro_auroc"] == pytest.approx(np.mean([m["per_class"][c]["auroc"]
                                                      for c in ("normal", "pneumonia")]))
    json.dumps(m, allow_nan=False)


def test_bootstrap_is_seeded_and_equals_a_plain_loop(tiny):
    table = read_predictions(tiny)
    a = compute_metrics(table, bootstrap=50, seed=1)
    b = compute_metrics(table, bootstrap=50, seed=1)
    assert a == b
    assert compute_metrics(table, bootstrap=50, seed=2) != a
    # The vectorised resampling gives what a loop over the same draws gives.
    ci = bootstrap_intervals(table.true, table.pred, 3, n=50, seed=1)
    idx = np.random.default_rng(1).integers(0, len(table), size=(50, len(table)))
    sens = []
    for row in idx:
        t, p = table.true[row], table.pred[row]
        sens.append([np.mean(p[t == k] == k) if np.any(t == k) else np.nan for k in range(3)])
    expected = np.nanpercentile(np.array(sens), [2.5, 97.5], axis=0)
    assert np.allclose(ci["sensitivity"], expected)
    lo, hi = a["per_class"]["normal"]["ci"]["sensitivity"]
    assert 0 <= lo <= hi <= 1
    assert a["bootstrap"] == {"n": 50, "seed": 1, "level": 0.95, "method": "percentile",
                              "resampled": "images"}


def test_cluster_bootstrap_draws_whole_patients(tiny):
    table = read_predictions(tiny)
    patients = [f"p{i // 3:03d}" for i in range(len(table))]   # three images per patient
    ci = bootstrap_intervals(table.true, table.pred, 3, n=50, seed=4, clusters=patients)
    names = sorted(set(patients))
    members = [np.flatnonzero(np.asarray(patients) == p) for p in names]
    draws = np.random.default_rng(4).integers(0, len(names), size=(50, len(names)))
    sens = []
    for row in draws:
        idx = np.concatenate([members[j] for j in row])
        t, p = table.true[idx], table.pred[idx]
        sens.append([np.mean(p[t == k] == k) if np.any(t == k) else np.nan for k in range(3)])
    assert np.allclose(ci["sensitivity"], np.nanpercentile(np.array(sens), [2.5, 97.5], axis=0))
    m = compute_metrics(table, bootstrap=20, clusters=patients, resampled="patients")
    assert m["bootstrap"]["resampled"] == "patients"


# -- bad predictions files: one clear message naming file, line and column ----------------

def test_missing_column(tmp_path):
    path = tmp_path / "nopred.csv"
    path.write_text("uid,true,p_normal,p_pneumonia,p_covid19\na,normal,1,0,0\n")
    with pytest.raises(HarnessError, match=r"nopred\.csv: missing column\(s\) pred"):
        read_predictions(path)
    result = CliRunner().invoke(main, ["metrics", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {path}: missing column(s) pred")
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""
    assert "Traceback" not in result.output


def test_missing_probability_column_for_given_classes(tmp_path):
    path = write_predictions(tmp_path / "two.csv", [("a", "normal", "normal", 1, 0)],
                             ["normal", "pneumonia"])
    with pytest.raises(HarnessError, match=r"two\.csv: missing column\(s\) p_covid19"):
        read_predictions(path, CLASSES)


def test_unknown_label(tmp_path):
    path = write_predictions(tmp_path / "labels.csv", [
        ("a", "normal", "normal", 1, 0, 0), ("b", "covid", "normal", 1, 0, 0)])
    with pytest.raises(HarnessError) as err:
        read_predictions(path)
    msg = str(err.value)
    assert "labels.csv, line 3, column 'true': unknown label 'covid'" in msg
    assert "normal, pneumonia, covid19" in msg


def test_truncated_file(tmp_path):
    path = tmp_path / "cut.csv"
    path.write_text("uid,true,pred,p_normal,p_pneumonia,p_covid19\n"
                    "a,normal,normal,0.9,0.05,0.05\nb,pneumonia,pneu")
    with pytest.raises(HarnessError) as err:
        read_predictions(path)
    assert "cut.csv, line 3: 3 field(s) where the header has 6" in str(err.value)
    assert "truncated" in str(err.value)
    result = CliRunner().invoke(main, ["metrics", str(path)])
    assert result.exit_code == 2 and result.stderr.startswith(f"error: {path}, line 3")
    assert len(result.stderr.splitlines()) == 1


def test_header_only_and_empty_files(tmp_path):
    header = tmp_path / "header.csv"
    header.write_text("uid,true,pred,p_normal,p_pneumonia,p_covid19\n")
    with pytest.raises(HarnessError, match=r"header\.csv: a header but no predictions"):
        read_predictions(header)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(HarnessError, match=r"empty\.csv: empty file"):
        read_predictions(empty)


def test_non_numeric_probability(tmp_path):
    path = write_predictions(tmp_path / "nan.csv", [
        ("a", "normal", "normal", 0.9, 0.05, 0.05), ("b", "normal", "normal", 0.9, "x", 0.05)])
    with pytest.raises(HarnessError,
                       match=r"nan\.csv, line 3, column 'p_pneumonia': 'x' is not a finite"):
        read_predictions(path)


def test_classes_option_orders_columns(tiny):
    result = CliRunner().invoke(metrics_command, [str(tiny), "--json", "--bootstrap", "0",
                                                  "--classes", "covid19,pneumonia,normal"])
    assert result.exit_code == 0, result.output
    m = json.loads(result.output)
    assert m["classes"] == ["covid19", "pneumonia", "normal"]
    assert m["confusion"] == [[1, 0, 1], [1, 1, 0], [0, 1, 3]]
    assert m["per_class"]["normal"]["sensitivity"] == 0.75
