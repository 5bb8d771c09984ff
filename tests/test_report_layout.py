"""The report of many strategies: the answer first, strategies as rows, the page small, and
nothing wider than a 1,400 px window in a real browser."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from test_report import write_run

from harness.analysis.ranks import cliques, mean_ranks, nemenyi_cd
from harness.analysis.report import render_report

STRATEGIES = ["none", "phased", "undersample", "oversample", "class-weighted", "class-balanced",
              "class-balanced-sampling", "balanced-batch", "sqrt", "progressive", "two-stage",
              "focal"]
#: The page's order: the suite's references (none, phased), then the others by name.
ORDER = STRATEGIES[:2] + sorted(STRATEGIES[2:])
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """12 strategies × 3 folds × 1 seed of 60 test images, rendered once; ``focal`` has
    three more folds (unpaired: no other strategy has them), so that the page shows what
    one combination's block grows by per run."""
    root = tmp_path_factory.mktemp("many") / "runs" / "fixture"
    for i, s in enumerate(STRATEGIES):
        for fold in (1, 2, 3, 4, 5, 6) if s == "focal" else (1, 2, 3):
            write_run(root, s, fold, skill=1.0 + 0.25 * i, n=60)
    index = render_report(root, root.parent.parent / "out", bootstrap=0)
    return index, index.read_text()


def test_page_leads_with_the_answer(many):
    _, html = many
    where = {name: html.index(marker) for name, marker in (
        ("answer", 'id="answer-tiny-torch"'), ("forest", 'id="forest-tiny-torch"'),
        ("ranks", 'id="ranks-tiny-torch"'), ("table", 'id="compare-table"'),
        ("tests", 'id="compare-tiny-torch"'), ("combinations", 'id="combinations"'),
        ("config", 'id="config"'))}
    assert list(where) == sorted(where, key=where.get)
    # Every per-combination block is folded; Table 3 is still there, inside.
    assert html.count('<details class="combination"') == len(STRATEGIES)
    first_block = html.index('<details class="combination"')
    assert html.index("Correct detected") > first_block
    # Strategies are rows: the table's header names figures, each strategy opens a row.
    table = html[where["table"]:html.index("</table>", where["table"])]
    assert "<th>balanced accuracy</th><th>covid19 sensitivity</th><th>macro AUROC</th>" in table
    assert [m for m in re.findall(r'<td class="label">([^<]+)</td>', table)] == ORDER
    # The navigation wraps (flex) rather than running off the page.
    assert re.search(r"nav\.toc \{[^}]*flex-wrap: wrap", html)
    # Forest and rank charts are embedded; small line charts as SVG.
    assert html.count("data:image/svg+xml,") >= 2 + len(STRATEGIES)
    # Confusion matrices are tables (one per run: 11 strategies x 3 folds, focal x 6).
    assert html.count('<table class="confusion">') == 11 * 3 + 6
    assert "Demšar" in html and "Friedman" in html and "Nemenyi" in html


def test_forest_rows_are_the_paired_tests(many):
    """The forest's differences and flags are the paired comparison's, not new statistics."""
    from harness.analysis import answer, compare
    from harness.analysis.loading import group, load_runs

    index, html = many
    runs = [r for c in group(load_runs(index.parent.parent / "runs" / "fixture", bootstrap=0))
            for r in c.runs]
    data = compare.compare_strategies(runs, ["normal", "pneumonia", "covid19"], bootstrap=0)
    section = answer.answer_section(runs, data, ["sensitivity:focus", "mcc"], 0.05)
    assert [m["key"] for m in section["metrics"]] == ["sensitivity:covid19", "mcc"]
    paired = {(r["strategy"], r["metric"]): r for r in
              csv.DictReader((index.parent / "comparison_paired.csv").open())
              if r["reference"] == "none"}
    mcc = section["metrics"][1]
    assert [f["strategy"] for f in mcc["forest"]] == ORDER[1:]
    for f in mcc["forest"]:
        row = paired[(f["strategy"], "mcc")]
        assert f["diff"] == pytest.approx(float(row["mean_diff"]), abs=1e-6)
        assert f["verdict"] == row["verdict"]
    # 3 folds: testable; the page names the strategies flagged better, per headline figure.
    assert any(f["verdict"] == "better" for f in mcc["forest"])
    balanced = answer.answer_section(runs, data, ["balanced_accuracy"], 0.05)["metrics"][0]
    assert balanced["better"] and balanced["better"] == [
        f["strategy"] for f in balanced["forest"] if f["verdict"] == "better"]
    assert (f'<li><strong>balanced accuracy</strong>:\n<span class="up">▲ better than '
            f'<code>none</code>: {", ".join(balanced["better"])}</span>') in html


def test_mean_ranks_friedman_and_critical_difference():
    """Hand-checked: 3 strategies, 4 blocks, a strict order, then ties."""
    class Run:
        def __init__(self, sampler, fold, v):
            self.sampler, self.fold, self.seed = sampler, fold, 0
            self.metrics = {"balanced_accuracy": v}

    runs = [Run(s, f, v) for f in range(4) for s, v in (("a", 0.9), ("b", 0.8), ("c", 0.7))]
    r = mean_ranks(runs, ["a", "b", "c"], "balanced_accuracy")
    assert r["ranks"] == {"a": 1.0, "b": 2.0, "c": 3.0} and r["blocks"] == 4
    # Friedman: 12N/(k(k+1)) Σ R_j² − 3N(k+1) = 4·14 − 48 = 8 on k − 1 = 2 df.
    assert r["friedman"] == pytest.approx(8.0)
    assert r["p"] == pytest.approx(stats.chi2.sf(8.0, 2)) and r["rejects"]
    # Demšar's Table 5: q_0.05 = 2.343 for k = 3; CD = q √(k(k+1)/(6N)).
    assert r["cd"] == pytest.approx(2.343 * math.sqrt(12 / 24), abs=1e-3)
    assert nemenyi_cd(10, 30, 0.05) == pytest.approx(3.164 * math.sqrt(110 / 180), abs=1e-3)
    assert r["groups"] == [["a", "b"], ["b", "c"]]   # 1 apart < CD 1.66; a–c 2 apart
    runs[1].metrics["balanced_accuracy"] = 0.9        # block 0: a and b tie
    r = mean_ranks(runs + [Run("a", 9, math.nan)], ["a", "b", "c"], "balanced_accuracy")
    assert r["ranks"]["a"] == pytest.approx((1.5 + 3) / 4) and r["blocks"] == 4
    assert cliques({"a": 1.0, "b": 1.2, "c": 3.0}, 1.0) == [["a", "b"]]


def test_headline_is_a_typed_suite_option():
    from harness.config.suite import parse_suite
    from harness.config.validate import SuiteError

    base = {"name": "s", "datasets": [{"name": "synthetic"}]}
    assert parse_suite(base, "s.yaml").report.headline == [
        "balanced_accuracy", "sensitivity:focus", "macro_auroc"]
    ok = parse_suite({**base, "report": {"headline": ["mcc", "precision:covid19"]}}, "s.yaml")
    assert ok.report.headline == ["mcc", "precision:covid19"]
    for bad, message in ((["recall:covid19"], (r"s\.yaml: report\.headline\[0\]: expected "
                                               r"one of .* got 'recall:covid19'")),
                         (["mcc", "auc"], r"report\.headline\[1\]: .* got 'auc'"),
                         ([], r"report\.headline: expected at least one figure")):
        with pytest.raises(SuiteError, match=message):
            parse_suite({**base, "report": {"headline": bad}}, "s.yaml")


def test_page_stays_small(many):
    """≤ 2 MB at the study's 180 runs (12 strategies × 15 runs), extrapolated from this page:
    each folded per-combination block grows by what ``focal``'s (6 runs) has over the
    others' (3 runs) per run; the McNemar rows grow with the runs; the rest is fixed."""
    _, html = many
    blocks = {m.group(1): len(m.group(0).encode()) for m in re.finditer(
        r'<details class="combination" id="tiny-([\w-]+)-torch">.*?</details>\n', html,
        flags=re.DOTALL)}
    assert len(blocks) == len(STRATEGIES)
    start = html.index('id="mcnemar-')
    mcnemar = len(html[start:html.index("</section>", start)].encode())
    fixed = len(html.encode()) - sum(blocks.values()) - mcnemar
    typical = float(np.median([v for k, v in blocks.items() if k != "focal"]))
    per_run = (blocks["focal"] - typical) / 3
    assert per_run > 0
    at_180 = fixed + mcnemar * 15 / 3 + len(STRATEGIES) * (typical + 12 * per_run)
    assert at_180 <= 2_000_000, (fixed, typical, per_run, mcnemar, at_180)


def _overflow(html: Path, tmp_path: Path, width: int = 1400) -> dict:
    """Open ``html`` in headless Chromium at ``width`` px with every <details> open; what
    runs past the window's right edge (the page, and each element's box)."""
    probe = """<script>
window.addEventListener('load', () => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const view = document.documentElement.clientWidth;
  const wide = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width && r.right > view + 0.5)
      wide.push(el.tagName.toLowerCase() + '.' + el.className + ' ' + Math.round(r.right));
  }
  document.documentElement.setAttribute('data-overflow', JSON.stringify({
    view: view, inner: window.innerWidth, scroll: document.documentElement.scrollWidth,
    images: document.images.length,
    unloaded: [...document.images].filter(i => !i.complete || !i.naturalWidth).length,
    wide: wide.slice(0, 20), n_wide: wide.length}));
});
</script>"""
    page = html.with_name(html.stem + "-probe.html")
    page.write_text(html.read_text().replace("</body>", probe + "</body>"))
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={width},900",
         "--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri()],
        check=False, capture_output=True, text=True, timeout=120)
    found = re.search(r'data-overflow="([^"]*)"', done.stdout)
    assert found, done.stderr[-2000:]
    from html import unescape

    return json.loads(unescape(found.group(1)))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install "
                    "chromium); the overflow check needs a real browser")
def test_nothing_runs_past_a_1400px_window(many, tmp_path):
    index, _ = many
    seen = _overflow(index, tmp_path)
    assert seen["images"] >= 2 + len(STRATEGIES) and seen["unloaded"] == 0, seen
    assert seen["scroll"] <= seen["inner"] and seen["scroll"] <= seen["view"], seen
    assert seen["n_wide"] == 0, seen["wide"]
    # The check can fail: one table as wide as the old strategies-as-columns one.
    wide = index.with_name("wide.html")
    wide.write_text(index.read_text().replace(
        '<h2 id="config">', '<table><tr>' + '<td class="label">class-balanced-sampling</td>' * 12
        + '</tr></table><h2 id="config">'))
    seen = _overflow(wide, tmp_path)
    assert seen["n_wide"] > 0 and any(w.startswith("table") for w in seen["wide"]), seen


def test_figures_go_as_svg_unless_png_is_smaller():
    """Matrices, dots and text (confusion, forest, ranks) as SVG; curves of thousands of
    points as PNG; each the smaller of the two for such a figure."""
    from matplotlib.figure import Figure

    from harness.analysis.figures import image_src, png_data_uri, svg_data_uri

    few = Figure(figsize=(9, 3))
    for ax in few.subplots(1, 3):
        cm = np.array([[60, 5, 2], [7, 30, 3], [1, 2, 9]])
        ax.imshow(cm / cm.sum(1, keepdims=True), cmap="Blues", interpolation="none")
        for i in range(3):
            for j in range(3):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center")
        ax.set_title("A & B: 50% #1")
    many = Figure(figsize=(6, 3))
    rng = np.random.default_rng(0)
    many.subplots().plot(np.sort(rng.random(4000)), np.sort(rng.random(4000)))
    for fig, kind in ((few, "svg"), (many, "png")):
        svg, png = svg_data_uri(fig), png_data_uri(fig)
        assert image_src(fig) == (svg if kind == "svg" else png)
        assert len(image_src(fig)) == min(len(svg), len(png)), kind
    # Text stays text, escaped only where HTML or the URL would misread it.
    svg = svg_data_uri(few)
    assert "A %26amp; B: 50%25 %231</text>" in svg and '"' not in svg   # XML's &amp;


def test_answer_does_not_claim_a_test_that_could_not_run(tmp_path):
    """Two folds cannot reach α: the answer says no strategy could be tested, not that none differs."""
    root = tmp_path / "runs" / "two"
    for i, s in enumerate(["none", "phased", "balanced-batch"]):
        for fold in (1, 2):
            write_run(root, s, fold, skill=1.0 + 0.5 * i, n=60)
    html = render_report(root, tmp_path / "out", bootstrap=0).read_text()
    answer = html[html.index('<ul class="verdicts">'):html.index("</ul>", html.index('<ul class="verdicts">'))]
    assert "no strategy could be tested against <code>none</code> (too few folds/seeds)" in answer
    assert "no strategy differs" not in answer
