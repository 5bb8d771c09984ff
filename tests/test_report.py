"""The HTML report, rendered from fake run folders written here."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from harness.analysis.metrics import compute_metrics
from harness.analysis.report import render_report
from harness.cli.report_commands import report_command
from harness.rundir.predictions import read_predictions

CLASSES = ["normal", "pneumonia", "covid19"]


def write_run(root: Path, sampler: str, fold: int, *, seed: int = 0, state: str = "done",
              selection: str = "holdout", skill: float = 2.0, n: int = 120,
              with_metrics: bool = True, error: str = "", budget: int | None = 960,
              report: dict | None = None) -> Path:
    """A run folder as the runner writes it; predictions drawn from a seeded generator."""
    run_id = f"tiny-{sampler}-torch-f{fold}-s{seed}-0a1b2c"
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    run = {"suite": "fixture", "backbone": "tiny", "sampler": sampler, "engine": "torch",
           "fold": fold, "seed": seed, "run_id": run_id, "sampler_options": {},
           "training": {"epochs_per_phase": 2, "batch_size": 8, "selection": selection}}
    suite = {"name": "fixture", "source": "suites/fixture.yaml", "classes": CLASSES,
             "image_size": 32, "plugins": [], "report": {"bootstrap": 100, **(report or {})}}
    (run_dir / "config.json").write_text(json.dumps({"run": run, "suite": suite,
                                                     "versions": {"harness": "0.1.0"}}))
    rng = np.random.default_rng([fold, seed, len(sampler)])
    true = rng.choice(3, size=n, p=[0.6, 0.3, 0.1])
    train = {"uids": [f"tr{i:04d}" for i in range(480)],
             "labels": [CLASSES[i % 3] for i in range(480)]}
    plan = {"sampler": sampler, "plan": {"phases": [{"indices": list(range(480))}]},
            "train": train, "select": {"uids": [], "labels": []},
            "test": {"uids": [f"img{i:04d}" for i in range(n)],
                     "labels": [CLASSES[t] for t in true]}}
    if budget is not None:
        plan["budget"] = budget
    (run_dir / "plan.json").write_text(json.dumps(plan))
    if state != "done":
        (run_dir / "status.json").write_text(json.dumps({"state": state, "error": error}))
        return run_dir
    logits = rng.normal(size=(n, 3)) + skill * np.eye(3)[true]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    with (run_dir / "predictions.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["uid", "true", "pred"] + [f"p_{c}" for c in CLASSES])
        for i in range(n):
            writer.writerow([f"img{i:04d}", CLASSES[true[i]], CLASSES[int(proba[i].argmax())],
                             *(f"{v:.6f}" for v in proba[i])])
    if with_metrics:
        metrics = compute_metrics(read_predictions(run_dir / "predictions.csv", CLASSES),
                                  bootstrap=0)
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
    (run_dir / "status.json").write_text(json.dumps({"state": "done"}))
    return run_dir


@pytest.fixture
def runs_dir(tmp_path):
    """Two strategies × two folds, one run without metrics.json, one paper-selected
    strategy, one failed run and one with a truncated predictions file."""
    root = tmp_path / "runs" / "fixture"
    for fold in (1, 2):
        write_run(root, "none", fold, skill=1.5)
        write_run(root, "phased", fold, skill=2.5, with_metrics=fold != 2)
        write_run(root, "oversample", fold, selection="paper", budget=1000)
    write_run(root, "undersample", 1, state="failed",
              error="RuntimeError: CUDA out of memory while training phase 3")
    cut = write_run(root, "undersample", 2)
    text = (cut / "predictions.csv").read_text()
    (cut / "predictions.csv").write_text(text[: len(text) // 2].rsplit(",", 2)[0])
    (cut / "metrics.json").unlink()
    return root


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open()))


def test_report_tables_and_exports(runs_dir, tmp_path):
    index = render_report(runs_dir, tmp_path / "out")
    out = index.parent
    html = index.read_text()
    assert index.name == "index.html"
    # Self-contained: nothing fetched (SVG's namespace names are names, not addresses).
    offline = re.sub(r"xmlns(:xlink)?='http://www\.w3\.org/[\w/]+'", "", html)
    assert "http://" not in offline and "https://" not in offline
    # Confusion matrices, trade-off, curves, forest and ranks: SVG where small, else PNG.
    assert html.count("data:image/png;base64,") + html.count("data:image/svg+xml,") >= 3 + 1 + 3 + 2

    # Table 3 export equals counts recomputed from the predictions files.
    t3 = read_csv(out / "table3.csv")
    row = next(r for r in t3 if r["sampler"] == "phased" and r["fold"] == "2")
    table = read_predictions(runs_dir / row["run_id"] / "predictions.csv", CLASSES)
    m = compute_metrics(table, bootstrap=0)   # this run had no metrics.json: recomputed
    for c in CLASSES:
        assert int(row[f"{c}_correct"]) == m["per_class"][c]["correct"]
        assert int(row[f"{c}_not_detected"]) == m["per_class"][c]["not_detected"]
        assert int(row[f"{c}_wrong_detected"]) == m["per_class"][c]["wrong_detected"]
    total = next(r for r in t3 if r["sampler"] == "phased" and r["fold"] == "total")
    fold_rows = [r for r in t3 if r["sampler"] == "phased" and r["fold"] in ("1", "2")]
    assert int(total["covid19_correct"]) == sum(int(r["covid19_correct"]) for r in fold_rows)

    # Table 4 export: percent; "average" is the mean over folds of each per-fold figure.
    t4 = read_csv(out / "table4.csv")
    folds = [r for r in t4 if r["sampler"] == "none" and r["fold"] in ("1", "2")]
    avg = next(r for r in t4 if r["sampler"] == "none" and r["fold"] == "average")
    for col in ("accuracy_pct", "covid19_sensitivity_pct", "pneumonia_precision_pct"):
        assert float(avg[col]) == pytest.approx(np.mean([float(r[col]) for r in folds]), abs=1e-3)
    # ... and the page shows the same figures with two decimals.
    assert f"{float(avg['covid19_sensitivity_pct']):.2f}" in html
    assert f"{m['per_class']['covid19']['sensitivity'] * 100:.2f}" in html
    assert "Correct detected" in html and "Not detected" in html and "Wrong detected" in html
    assert ">Average<" in html

    summary = json.loads((out / "summary.json").read_text())
    assert [c["sampler"] for c in summary["combinations"]] == ["none", "phased", "oversample"]
    assert summary["combinations"][0]["budget"] == 960
    assert summary["combinations"][0]["average"]["accuracy"] == pytest.approx(
        float(avg["accuracy_pct"]) / 100, abs=1e-5)
    other = read_csv(out / "other_metrics.csv")
    assert {"balanced_accuracy", "macro_f1", "mcc", "macro_auroc"} <= set(other[0])

    # Failed runs: the recorded error and the truncated predictions file, by name.
    failed = {r["run_id"]: r for r in read_csv(out / "failed_runs.csv")}
    assert "CUDA out of memory" in failed["tiny-undersample-torch-f1-s0-0a1b2c"]["error"]
    cut = failed["tiny-undersample-torch-f2-s0-0a1b2c"]["error"]
    assert "predictions.csv: line" in cut and "truncated" in cut
    assert "CUDA out of memory while training phase 3" in html
    assert "Failed and unfinished runs" in html

    # Suite config and the comparison section (three samplers) with its exports.
    assert "suites/fixture.yaml" in html
    assert 'id="compare-table"' in html
    assert "Paired against <code>none</code>" in html
    assert "Paired against <code>phased</code>" in html
    comparison = read_csv(out / "comparison.csv")
    assert {r["strategy"] for r in comparison} == {"none", "phased", "oversample"}
    assert read_csv(out / "comparison_mcnemar.csv")

    # Two folds: effects with intervals, never a verdict or a colour.
    assert "How strategies are tested" in html and "Holm step-down" in html
    assert "too few folds/seeds to test" in html
    assert 'class="num better"' not in html and 'class="num worse"' not in html
    paired = read_csv(out / "comparison_paired.csv")
    assert {r["verdict"] for r in paired} == {"untested"}
    assert all(r["ci_low"] and r["ci_high"] for r in paired if r["metric"] == "macro_f1")
    budget = {r["strategy"]: r for r in read_csv(out / "comparison_budget.csv")}
    assert budget["oversample"]["images_seen"] == "1000" and budget["none"]["epochs"] == "2"
    assert budget["none"]["distinct_images"] == "480"
    # The pooled intervals say what they resample (no patients recorded here: images).
    assert "resamples of distinct test images" in html


def test_report_family_chooses_what_is_corrected_together(tmp_path):
    root = tmp_path / "runs" / "fixture"
    for sampler, skill in (("none", 1.0), ("phased", 2.0), ("oversample", 1.0)):
        for fold in (1, 2, 3):
            write_run(root, sampler, fold, skill=skill)
    html = render_report(root, tmp_path / "figure").read_text()
    # 3 folds: every figure testable; 3 tests per figure (2 against none, 1 against phased).
    assert ("Families (one per figure).</strong> 13 families: one per figure for 13 figures "
            "(3 tests each") in html
    assert "not for the page as a whole" in html
    paired = read_csv(tmp_path / "figure" / "comparison_paired.csv")
    row = next(r for r in paired if r["strategy"] == "phased" and r["reference"] == "none"
               and r["metric"] == "mcc")
    assert (row["family"], row["family_size"]) == ("mcc", "3")
    assert "adjusted over the 3 tests of its family" in html       # each cell's tooltip
    for cfg in root.glob("*/config.json"):
        config = json.loads(cfg.read_text())
        config["suite"]["report"]["family"] = "all"
        cfg.write_text(json.dumps(config))
    html = render_report(root, tmp_path / "all").read_text()
    assert "Families (all strategy tests together).</strong> One family: all 39 " in html
    assert "at most α for the comparison as a whole" in html
    paired = read_csv(tmp_path / "all" / "comparison_paired.csv")
    row = next(r for r in paired if r["strategy"] == "phased" and r["reference"] == "none"
               and r["metric"] == "mcc")
    # McNemar rows are never in a strategy family, whatever report.family says.
    assert (row["family"], row["family_size"]) == ("all", "39")
    mcnemar = read_csv(tmp_path / "all" / "comparison_mcnemar.csv")
    assert mcnemar and {r["family_size"] for r in mcnemar} <= {"", str(sum(
        r["verdict"] != "untested" for r in mcnemar))}


def test_exports_caption_names_the_unit_of_each_file(runs_dir, tmp_path):
    from html import unescape

    out = tmp_path / "out"
    html = unescape(render_report(runs_dir, out, bootstrap=0).read_text())
    assert ("table3.csv holds counts and table4.csv percent, as shown here; every other CSV "
            "and summary.json hold fractions") in " ".join(html.replace("<code>", "")
                                                         .replace("</code>", "").split())
    written = {p.name for p in out.iterdir() if p.name != "index.html"}
    linked = set(re.findall(r'<a href="([^"/#]+\.(?:csv|json|parquet))"', html))
    assert written == linked  # every export is listed on the page, and only what exists

    def values(name, columns=None):
        rows = read_csv(out / name)
        return [float(r[c]) for r in rows for c in (columns or r) if c in r and
                r[c] not in ("", None) and c.endswith(("_pct", "balanced_accuracy", "macro_f1",
                                                         "macro_auroc", "mean", "mean_diff"))]

    assert max(values("table4.csv")) > 1.0   # percent
    assert all(0.0 <= v <= 100.0 for v in values("table4.csv"))
    other = values("other_metrics.csv")     # fractions, balanced accuracy included
    assert other and all(0.0 <= v <= 1.0 for v in other)
    assert all(-1.0 <= float(r["mcc"]) <= 1.0 for r in read_csv(out / "other_metrics.csv"))
    assert all(-1.0 <= v <= 1.0 for v in values("comparison.csv") + values(
        "comparison_paired.csv"))
    # Two folds (df 1, t quantile 12.7): the t intervals reach past the range and are cut.
    for r in read_csv(out / "comparison_paired.csv"):
        bound = 2.0 if r["metric"] == "mcc" else 1.0
        assert -bound <= float(r["ci_low"]) <= float(r["ci_high"]) <= bound, r
    assert any(float(r["ci_low"]) == -1.0 for r in read_csv(out / "comparison_paired.csv"))
    assert "†" in html
    counts = [int(v) for r in read_csv(out / "table3.csv") for k, v in r.items()
              if k.endswith("_correct")]
    assert max(counts) > 1


def comparison_runs(root: Path, report: dict) -> Path:
    for fold in (1, 2):
        for sampler, skill in (("none", 1.0), ("focal", 2.0), ("oversample", 3.0)):
            write_run(root, sampler, fold, skill=skill, report=report)
    return root


@pytest.mark.parametrize("alpha, fewest", [(0.05, 6), (0.01, 8)])
def test_references_and_mcnemar_threshold_come_from_the_suite(tmp_path, alpha, fewest):
    root = comparison_runs(tmp_path / "runs" / "refs",
                           {"references": ["focal"], "alpha": alpha})
    out = tmp_path / "out"
    html = render_report(root, out, bootstrap=0).read_text()
    paired = read_csv(out / "comparison_paired.csv")
    assert {r["reference"] for r in paired} == {"focal"}
    assert "Paired against <code>focal</code>" in html
    assert "Paired against <code>none</code>" not in html
    assert (f"With fewer than {fewest} discordant images no p can reach α = {alpha} and the "
            "row is not tested") in html
    mcnemar = read_csv(out / "comparison_mcnemar.csv")
    assert mcnemar
    for m in mcnemar:   # the page's threshold is the one the code applies
        discordant = int(m["only_strategy_right"]) + int(m["only_reference_right"])
        assert (m["verdict"] == "untested") == (discordant < fewest)
        if m["verdict"] == "untested":
            assert m["sentence"].startswith("too few discordant images to test (")
    assert {r["sentence"] for r in paired} == {"too few folds/seeds to test"}
    assert "they show the effect and its interval and say “too few folds/seeds to test”" in html
    assert "no data" not in html        # every figure is defined in these runs


def test_fewest_discordant_images_for_mcnemar():
    from harness.analysis.significance import mcnemar_exact, min_discordant

    assert [min_discordant(a) for a in (0.05, 0.01, 0.0625, 0.5)] == [6, 8, 5, 2]
    for alpha in (0.05, 0.01):
        n = min_discordant(alpha)
        for k, reachable in ((n, True), (n - 1, False)):
            right = np.zeros(k, bool)
            assert (mcnemar_exact(right, ~right)["min_p"] <= alpha) is reachable


def test_paper_selection_warning(runs_dir, tmp_path):
    html = render_report(runs_dir, tmp_path / "out").read_text()
    assert 'id="paper-warning"' in html
    assert html.count("training.selection: paper") >= 2   # banner and the block itself
    for sampler in ("oversample", "undersample"):
        for run in runs_dir.glob(f"tiny-{sampler}-*"):
            shutil.rmtree(run)
    html = render_report(runs_dir, tmp_path / "out2").read_text()
    assert 'id="paper-warning"' not in html and "Optimistic" not in html


def test_no_comparison_with_one_sampler(tmp_path):
    root = tmp_path / "runs" / "one"
    write_run(root, "phased", 1)
    write_run(root, "phased", 2)
    html = render_report(root, tmp_path / "out").read_text()
    assert "Strategy comparison" not in html
    assert not (tmp_path / "out" / "comparison.csv").exists()


def test_report_command_default_out(runs_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(report_command, [str(runs_dir), "--bootstrap", "20"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "reports" / "fixture" / "index.html").is_file()
    assert "reports/fixture/index.html" in result.output


def test_report_command_missing_folder(tmp_path):
    from harness.cli.main import main

    result = CliRunner().invoke(main, ["report", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {tmp_path / 'nope'}: no such runs folder")
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["report", str(tmp_path / "empty")])
    assert result.exit_code == 2 and result.stderr.startswith("error: ")
    assert "no run folders" in result.stderr and len(result.stderr.splitlines()) == 1


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_in_headless_chromium(runs_dir, tmp_path):
    from PIL import Image

    index = render_report(runs_dir, tmp_path / "out", bootstrap=20)
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]
    url = index.resolve().as_uri()
    # The comparison table sits below the per-combination blocks: a tall window shows it.
    shot = tmp_path / "report.png"
    done = subprocess.run(flags + [f"--user-data-dir={tmp_path / 'profile1'}",
                                   f"--screenshot={shot}", "--window-size=1280,9000", url],
                          check=False, capture_output=True, text=True, timeout=120)
    assert shot.is_file(), done.stderr[-2000:]
    image = np.asarray(Image.open(shot).convert("L"))
    assert image.shape == (9000, 1280)
    assert image.std() > 10                      # not blank
    rows_with_ink = np.nonzero((image < 200).any(axis=1))[0]
    assert rows_with_ink.max() > 4000            # content well past the first screen
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line
               or "Uncaught" in line]
    assert not console, console
    dom = subprocess.run(flags + [f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom", url],
                         check=False, capture_output=True, text=True, timeout=120)
    assert 'id="compare-table"' in dom.stdout
    assert "Uncaught" not in dom.stderr and "CONSOLE" not in dom.stderr


def _cut_metrics(run_dir: Path) -> None:
    text = (run_dir / "metrics.json").read_text()
    (run_dir / "metrics.json").write_text(text[: len(text) // 2])


def _drop_last_prediction(run_dir: Path) -> None:
    lines = (run_dir / "predictions.csv").read_text().splitlines()
    (run_dir / "predictions.csv").write_text("\n".join(lines[:-1]) + "\n")


def _plan_not_json(run_dir: Path) -> None:
    (run_dir / "plan.json").write_text("{'sampler': 'phased', ")


def _metrics_without_a_class(run_dir: Path) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    del metrics["per_class"]["covid19"]   # valid JSON, count and accuracy still agree
    (run_dir / "metrics.json").write_text(json.dumps(metrics))


DAMAGE = {  # run (sampler, fold, seed) -> how it is damaged, what the report says
    ("none", 1, 1): (_cut_metrics, "metrics.json: not valid JSON"),
    ("phased", 1, 1): (_drop_last_prediction,
                       "predictions.csv: 119 rows where plan.json has 120 test images"),
    ("phased", 2, 1): (_plan_not_json, "plan.json: not valid JSON"),
    ("none", 2, 1): (_metrics_without_a_class,
                     ("metrics.json: per_class: expected the figures of each of "
                      "['normal', 'pneumonia', 'covid19']")),
}


def test_damaged_runs_are_named_and_left_out_of_every_figure(tmp_path):
    """Damaged finished runs: one line each (file and problem), no traceback, and the
    report's figures are those of the same suite without them."""
    root, clean = tmp_path / "runs" / "fixture", tmp_path / "clean" / "fixture"
    for sampler in ("none", "phased"):
        for fold in (1, 2):
            write_run(root, sampler, fold, skill=1.5 if sampler == "none" else 2.5)
            write_run(root, sampler, fold, seed=1, skill=1.5 if sampler == "none" else 2.5)
    shutil.copytree(root, clean)
    damaged = {}
    for (sampler, fold, seed), (damage, message) in DAMAGE.items():
        run_id = f"tiny-{sampler}-torch-f{fold}-s{seed}-0a1b2c"
        damage(root / run_id)
        shutil.rmtree(clean / run_id)
        damaged[run_id] = message

    result = CliRunner().invoke(report_command, [str(root), "--out", str(tmp_path / "out"),
                                                 "--bootstrap", "0"])
    assert result.exit_code == 0 and result.exception is None, result.output
    assert "Traceback" not in result.output
    out = tmp_path / "out"
    listed = {r["run_id"]: r for r in read_csv(out / "failed_runs.csv")}
    assert set(listed) == set(damaged)
    from html import unescape

    html = unescape((out / "index.html").read_text())
    for run_id, message in damaged.items():
        assert listed[run_id]["state"] == "damaged"
        error = listed[run_id]["error"]
        assert "\n" not in error and message in error, error
        assert error.startswith(str(root / run_id)), error   # the file, by its full path
        assert message in html

    # Left out of every figure: the tables and statistics equal those without the runs.
    render_report(clean, tmp_path / "out-clean", bootstrap=0)
    figures = json.loads((out / "summary.json").read_text())
    expected = json.loads((tmp_path / "out-clean" / "summary.json").read_text())
    assert [len(c["runs"]) for c in figures["combinations"]] == [2, 2]
    assert figures["combinations"] == expected["combinations"]
    assert figures["comparisons"] == expected["comparisons"]
    for name in ("table3.csv", "table4.csv", "comparison_paired.csv", "results.csv"):
        assert (out / name).read_text() == (tmp_path / "out-clean" / name).read_text(), name

    import harness

    assert set(harness.load_results(root)["run_id"]) == set(
        harness.load_results(clean)["run_id"])


def test_mcnemar_has_its_own_section_and_seed_spread_sits_by_the_differences(tmp_path):
    from harness.analysis.metrics import pct

    root = tmp_path / "runs" / "seeds"
    for fold in (1, 2, 3):
        for seed in (0, 1):
            write_run(root, "none", fold, seed=seed, skill=1.0)
            write_run(root, "phased", fold, seed=seed, skill=1.4)
    out = tmp_path / "out"
    html = render_report(root, out, bootstrap=0).read_text()
    compare_at = html.index('id="compare-tiny-torch"')
    compare_end = html.index("</section>", compare_at)
    mcnemar_at = html.index('id="mcnemar-tiny-torch"')
    assert mcnemar_at > compare_end                # not inside the strategy comparison
    section = html[mcnemar_at:html.index("</section>", mcnemar_at)]
    assert "Two trained networks on one test set (McNemar)" in section
    assert "not a verdict on two strategies" in section
    assert "better" not in section and "worse" not in section
    assert len(re.findall(r"<tr><td class=\"label\">phased</td>", section)) == 6
    assert "McNemar" not in html[compare_at:compare_end].split("Families")[1].split(
        "</div>")[0].replace("McNemar's test of two trained networks", "")
    # The seed spread: pooled within-fold sd of balanced accuracy over the two seeds.
    ba = {}
    for run in root.glob("tiny-phased-*"):
        config = json.loads((run / "config.json").read_text())["run"]
        ba.setdefault(config["fold"], []).append(
            json.loads((run / "metrics.json").read_text())["balanced_accuracy"])
    sd = float(np.sqrt(np.mean([np.var(v, ddof=1) for v in ba.values()])))
    spread = html[html.index('id="seed-spread-tiny-torch"'):compare_end]
    assert f"{pct(sd)}<span" in spread
    assert "Against <code>none</code>" in spread and "noise ±" in spread
    assert html.index('id="seed-spread-tiny-torch"') < compare_end
    # No minus zero anywhere on the page.
    assert not re.search(r"[-−]0\.0+(?![0-9]*[1-9])", html)
