"""The HTML report of a suite, rendered from its run folders alone.

``render_report`` reads ``runs/<suite>/*/`` (``loading``), builds one block per backbone /
sampler / engine (``tables``, ``figures``) and one strategy comparison per backbone / engine
(``compare``) that opens with the answer (``answer``: differences from the reference and
mean ranks of the headline figures), renders ``index.html`` (self-contained: figures
embedded as SVG or PNG data, whichever is smaller) and writes the same tables as CSV/JSON
next to it (``exports``). With several strategies the page leads with the answer and folds
the per-combination blocks; with one it reads like the paper's Tables 3 and 4. Nothing is trained or fetched;
re-rendering is cheap and repeatable. A new report section is a module of its own under
``harness/analysis/``, a template partial, and one call here.
"""

from __future__ import annotations

import datetime as dt
import gc
import importlib.util
import math
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, PackageLoader, select_autoescape

from harness import store
from harness.analysis import compare, figures
from harness.analysis.answer import answer_section
from harness.analysis.calibration import calibration_block, write_calibration_exports
from harness.analysis.cost import suite_cost
from harness.analysis.data_section import data_section
from harness.analysis.dropped import dropped_images
from harness.analysis.exports import write_exports
from harness.analysis.loading import (  # noqa: F401  (re-exported: the report's inputs)
    Combination,
    RunResult,
    current_run_ids,
    group,
    load_run,
    load_runs,
    suite_run,
)
from harness.analysis.metrics import TABLE4_FIGURES, fmt, pct, signed
from harness.analysis.optimism import optimism_section
from harness.analysis.results import write_results
from harness.analysis.sources import source_block
from harness.analysis.tables import OTHER_FIGURES, combination_tables, pooled_metrics
from harness.config.frozen import thaw
from harness.config.suite import ReportConfig


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("harness.analysis", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["pct"] = pct
    env.filters["fmt"] = fmt
    env.filters["signed"] = signed
    env.filters["pvalue"] = lambda p: "n/a" if p is None else ("< 0.001" if p < 0.001
                                                              else f"{p:.3f}")
    return env


def combination_block(combo: Combination, classes: list[str], report_cfg: ReportConfig,
                      n_boot: int) -> dict[str, Any]:
    """Everything the page shows of one backbone / sampler / engine."""
    return {
        "combo": combo, **combination_tables(combo, classes),
        "pooled": pooled_metrics(combo, classes, n_boot),
        "confusion": figures.confusion_grid(
            combo, classes, list(report_cfg.confusion_folds)),
        "paper_selection": any(r.selection == "paper" for r in combo.runs),
        "training": combo.runs[0].run.get("training", {}),
        "budget": combo.runs[0].budget,
        "determinism": determinism_line([r.run.get("training", {}) for r in combo.runs]),
    }


def determinism_line(trainings: list[dict[str, Any]]) -> str:
    """Which runs were deterministic: a recorded thread count and ``training.deterministic``
    (runs planned before both were recorded were not)."""
    sure = [t for t in trainings if t.get("deterministic") and int(t.get("threads") or 0) > 0]
    threads = sorted({int(t["threads"]) for t in sure})
    counts = "/".join(map(str, threads))
    if len(sure) == len(trainings):
        return (f"deterministic (all {len(sure)} runs, {counts} "
                f"thread{'s' if threads != [1] else ''})")
    return f"deterministic: {len(sure)} of {len(trainings)} runs"


def columns(data: dict[str, Any], headline: list[str]) -> dict[str, Any]:
    """The comparison's figures as table columns, strategies being the rows: whole-table
    figures (the headline ones first) in one table, per-class figures grouped by class in
    another, so that neither runs wider than a window however many strategies there are."""
    labels = dict(data["metrics"])
    summary = [k for k in headline if k in labels] + [
        k for k, _ in data["metrics"] if ":" not in k and k not in headline]
    per_class = {c: [(f"{fig}:{c}", fig) for fig in compare.PER_CLASS]
                 for c in data["classes"]}
    return {"summary": [(k, labels[k]) for k in summary], "per_class": per_class}


def best_means(data: dict[str, Any]) -> dict[str, list[str]]:
    """Per figure, the strategies with the highest mean (every compared figure is better
    high), ties included."""
    best = {}
    for key, _ in data["metrics"]:
        means = {s: data["table"][s][key]["mean"] for s in data["strategies"]}
        means = {s: m for s, m in means.items() if m is not None and not math.isnan(m)}
        if len(means) > 1:
            top = max(means.values())
            best[key] = [s for s, m in means.items() if m == top]
    return best


def comparison_sections(combos: list[Combination], classes: list[str],
                        report_cfg: ReportConfig, n_boot: int) -> list[dict[str, Any]]:
    """One strategy comparison per backbone / engine that has more than one sampler."""
    out = []
    focus = report_cfg.focus_class or None
    alpha = report_cfg.alpha
    headline = list(report_cfg.headline)
    for (backbone, engine) in dict.fromkeys((c.backbone, c.engine) for c in combos):
        done = [r for c in combos if (c.backbone, c.engine) == (backbone, engine) for r in c.runs]
        if len({r.sampler for r in done}) > 1:
            figs = figures.comparison_figures(done, classes, focus)
            data = compare.compare_strategies(
                done, classes, alpha=alpha,
                correction=report_cfg.correction, focus=focus,
                bootstrap=n_boot, family=report_cfg.family)
            answer = answer_section(done, data, headline, alpha)
            data_columns = columns(data, [m["key"] for m in answer["metrics"]])
            figs["forest"] = figures.forest_figure(answer)
            figs["ranks"] = figures.rank_figure(answer)
            out.append({"backbone": backbone, "engine": engine, "data": data,
                        "answer": answer, "slug": f"{backbone}-{engine}",
                        "columns": data_columns, "best": best_means(data),
                        "figures": {k: figures.image_src(f) for k, f in figs.items()}})
    return out


def render_report(runs_dir: str | Path, out_dir: str | Path | None = None, *,
                  bootstrap: int | None = None, title: str | None = None) -> Path:
    """Render ``index.html`` and the exports; returns the path of ``index.html``."""
    runs_dir = Path(runs_dir)
    first = suite_run(runs_dir)
    suite = thaw(first.suite_section()) if first is not None else {}
    report_cfg = first.report if first is not None else ReportConfig()
    n_boot = bootstrap if bootstrap is not None else report_cfg.bootstrap
    runs = load_runs(runs_dir, bootstrap=n_boot)
    # The loaded runs live until the page is written: leave them out of the garbage
    # collector's full passes, which otherwise walk them again and again while the
    # comparison and the figures allocate (a tenth of the 180-run report's time).
    gc.freeze()
    try:
        return _render(runs_dir, out_dir, suite, report_cfg, n_boot, runs, title)
    finally:
        gc.unfreeze()


def _render(runs_dir: Path, out_dir, suite: dict[str, Any], report_cfg: ReportConfig,
            n_boot: int, runs: list[RunResult], title: str | None) -> Path:
    suite = suite or next((r.config["suite"] for r in runs if r.config.get("suite")), {})
    suite_name = suite.get("name") or runs_dir.name
    out = Path(out_dir) if out_dir is not None else store.child("reports", suite_name)
    classes = list(suite.get("classes") or
                   next((r.metrics["classes"] for r in runs if r.metrics), []))
    combos = group(runs)
    blocks = [combination_block(c, classes, report_cfg, n_boot) for c in combos]
    for b in blocks:  # calibration and the per-source (shortcut) check, per combination
        b["calibration"] = calibration_block(b["combo"], n_boot)
        b["sources"] = source_block(b["combo"], classes)
    comparisons = comparison_sections(combos, classes, report_cfg, n_boot)
    not_done = [r for r in runs if r.state != "done"]
    context = {
        "title": title or report_cfg.title or f"cxr-harness report: {suite_name}",
        "suite_name": suite_name, "classes": classes, "blocks": blocks,
        "comparisons": comparisons, "not_done": not_done,
        "paper_selection": any(b["paper_selection"] for b in blocks),
        "suite_yaml": yaml.safe_dump(suite, sort_keys=False, default_flow_style=None),
        "versions": next((r.config.get("versions") for r in runs if r.config.get("versions")), {}),
        "n_runs": len(runs), "n_done": len(runs) - len(not_done), "bootstrap": n_boot,
        "generated": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "figures4": TABLE4_FIGURES, "other_figures": OTHER_FIGURES,
        "runs_dir": str(runs_dir),
        "data": data_section(runs),
        "optimism": optimism_section(runs_dir, report_cfg.optimism_against),
        "dropped": dropped_images(r.config for r in runs),
        "cost": suite_cost(runs),
    }
    context["parquet"] = importlib.util.find_spec("pyarrow") is not None  # as write_results
    out.mkdir(parents=True, exist_ok=True)
    html = _environment().get_template("report.html.j2").render(**context)
    store.write_text(out / "index.html", html)
    write_exports(out, blocks, comparisons, not_done, classes, suite_name)
    write_calibration_exports(out, blocks)
    write_results(out, runs_dir, runs)
    return out / "index.html"
