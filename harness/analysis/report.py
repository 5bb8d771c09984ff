"""The HTML report of a suite, rendered from its run folders alone.

``render_report`` reads ``runs/<suite>/*/`` (config.json, predictions.csv, metrics.json,
status.json, plan.json), groups runs by backbone / sampler / engine, and writes a single
self-contained ``index.html`` (figures embedded as PNG data) plus CSV/JSON exports of every
table next to it. Nothing is trained or fetched; re-rendering is cheap and repeatable.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from jinja2 import Environment, PackageLoader, select_autoescape

from harness.analysis import compare
from harness.analysis.dropped import dropped_images
from harness.analysis.metrics import (
    TABLE4_FIGURES,
    Predictions,
    compute_metrics,
    fmt,
    pct,
    read_predictions,
)
from harness.errors import HarnessError
from harness.runs import store

OTHER_FIGURES = (("balanced_accuracy", "Balanced accuracy", "pct"),
                 ("macro_f1", "Macro F1", "fmt"), ("mcc", "MCC", "fmt"),
                 ("macro_auroc", "Macro AUROC", "fmt"))


@dataclass
class RunResult:
    """One run folder as the report sees it."""

    run_id: str
    path: Path
    config: dict[str, Any]
    state: str
    error: str = ""
    metrics: dict[str, Any] | None = None
    predictions: Predictions | None = None
    budget: int | None = None

    @property
    def run(self) -> dict[str, Any]:
        return self.config.get("run", {})

    backbone = property(lambda self: str(self.run.get("backbone", "?")))
    sampler = property(lambda self: str(self.run.get("sampler", "?")))
    engine = property(lambda self: str(self.run.get("engine", "?")))
    fold = property(lambda self: self.run.get("fold", 0))
    seed = property(lambda self: self.run.get("seed", 0))

    @property
    def combination(self) -> tuple[str, str, str]:
        return self.backbone, self.sampler, self.engine

    @property
    def selection(self) -> str:
        return str(self.run.get("training", {}).get("selection", ""))


@dataclass
class Combination:
    """The finished runs of one backbone / sampler / engine, ordered by fold and seed."""

    backbone: str
    sampler: str
    engine: str
    runs: list[RunResult] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.backbone} / {self.sampler} / {self.engine}"

    @property
    def slug(self) -> str:
        return f"{self.backbone}-{self.sampler}-{self.engine}"


def _budget(plan: dict[str, Any], training: dict[str, Any]) -> int | None:
    """Images seen in training: plan.json's ``budget``, else counted from its phases."""
    if plan.get("budget") is not None:
        return int(plan["budget"])
    phases = plan.get("plan", {}).get("phases")
    if not phases:
        return None
    epochs = int(training.get("epochs_per_phase", 1))
    total = 0
    for p in phases:
        per_epoch = len(p.get("indices", []))
        if p.get("sample_weights") is not None and p.get("draws") is not None:
            per_epoch = int(p["draws"])
        total += per_epoch * int(p.get("epochs") or epochs)
    return total


def load_run(path: Path, bootstrap: int = 1000) -> RunResult:
    """Read one run folder; problems become a failed run with the reason, never a crash."""
    try:
        config = store.read_json(path / store.CONFIG)
    except (OSError, json.JSONDecodeError) as exc:
        return RunResult(path.name, path, {}, "failed", f"{path / store.CONFIG}: unreadable ({exc})")
    status = {}
    if (path / store.STATUS).exists():
        try:
            status = store.read_json(path / store.STATUS)
        except (OSError, json.JSONDecodeError):
            status = {"state": "running"}
    run_id = config.get("run", {}).get("run_id", path.name)
    result = RunResult(run_id, path, config, status.get("state", "pending"),
                       status.get("error", ""))
    if result.state != "done":
        return result
    classes = config.get("suite", {}).get("classes")
    try:
        result.predictions = read_predictions(path / store.PREDICTIONS, classes)
        if (path / store.METRICS).exists():
            result.metrics = store.read_json(path / store.METRICS)
        else:
            result.metrics = compute_metrics(result.predictions, bootstrap=bootstrap)
    except (HarnessError, OSError, json.JSONDecodeError) as exc:
        result.state, result.error = "failed", str(exc)
        return result
    if (path / store.PLAN).exists():
        try:
            result.budget = _budget(store.read_json(path / store.PLAN),
                                    result.run.get("training", {}))
        except (OSError, json.JSONDecodeError, TypeError, ValueError):
            result.budget = None
    return result


def current_run_ids(runs_dir: Path) -> set[str] | None:
    """Run ids of the suite as last run (``manifest.json``); ``None`` when there is none."""
    try:
        return set(store.read_json(runs_dir / store.MANIFEST)["run_ids"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return None


def load_runs(runs_dir: str | Path, bootstrap: int = 1000) -> list[RunResult]:
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise HarnessError(f"{runs_dir}: no such runs folder; give runs/<suite> as written by "
                           "'harness run'")
    folders = sorted(p for p in runs_dir.iterdir()
                     if p.is_dir() and ((p / store.CONFIG).exists() or (p / store.STATUS).exists()))
    current = current_run_ids(runs_dir)
    if current is not None:
        folders = [p for p in folders if p.name in current]
    if not folders:
        raise HarnessError(f"{runs_dir}: no run folders (folders with config.json) inside; "
                           "run 'harness run SUITE' first")
    return [load_run(p, bootstrap) for p in folders]


def group(runs: list[RunResult]) -> list[Combination]:
    """Finished runs by combination: by backbone and engine, references (none, phased) first."""
    combos: dict[tuple[str, str, str], Combination] = {}
    for r in runs:
        if r.state == "done":
            combos.setdefault(r.combination, Combination(*r.combination)).runs.append(r)
    for c in combos.values():
        c.runs.sort(key=lambda r: (r.fold, r.seed))
    order = {name: i for i, name in enumerate(compare.REFERENCES)}
    return sorted(combos.values(), key=lambda c: (c.backbone, c.engine,
                                                  order.get(c.sampler, len(order)), c.sampler))


def _mean(values: list[float | None]) -> float | None:
    a = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(a)) if a else None


def _row_label(run: RunResult, several_seeds: bool) -> str:
    return f"{run.fold} (seed {run.seed})" if several_seeds else str(run.fold)


def combination_tables(combo: Combination, classes: list[str]) -> dict[str, Any]:
    """Table 3 rows (counts) and Table 4 rows (fractions) per fold plus the summary rows."""
    several = len({r.seed for r in combo.runs}) > 1
    t3, t4, other = [], [], []
    for r in combo.runs:
        m, pc = r.metrics, r.metrics["per_class"]
        label = _row_label(r, several)
        t3.append({"label": label, "run_id": r.run_id,
                   "cells": [pc[c][k] for c in classes
                             for k in ("correct", "not_detected", "wrong_detected")]})
        t4.append({"label": label, "run_id": r.run_id, "accuracy": m["accuracy"],
                   "cells": [pc[c][f] for f in TABLE4_FIGURES for c in classes]})
        other.append({"label": label, "run_id": r.run_id,
                      "cells": [m.get(k) for k, _, _ in OTHER_FIGURES]})
    t3_total = [int(sum(row["cells"][i] for row in t3)) for i in range(len(t3[0]["cells"]))]
    t4_avg = {"accuracy": _mean([row["accuracy"] for row in t4]),
              "cells": [_mean([row["cells"][i] for row in t4]) for i in range(len(t4[0]["cells"]))]}
    other_avg = [_mean([row["cells"][i] for row in other]) for i in range(len(OTHER_FIGURES))]
    return {"table3": t3, "table3_total": t3_total, "table4": t4, "table4_average": t4_avg,
            "other": other, "other_average": other_avg}


def pooled_metrics(combo: Combination, classes: list[str], bootstrap: int) -> dict[str, Any]:
    """Figures with bootstrap intervals on the predictions of all folds together."""
    preds = [r.predictions for r in combo.runs]
    table = Predictions(classes=list(classes), uids=[u for p in preds for u in p.uids],
                        true=np.concatenate([p.true for p in preds]),
                        pred=np.concatenate([p.pred for p in preds]),
                        proba=None if any(p.proba is None for p in preds)
                        else np.concatenate([p.proba for p in preds]))
    return compute_metrics(table, bootstrap=bootstrap)


def confusion_figure(combo: Combination, classes: list[str], folds: list[int]):
    """The paper's Figure 4: one confusion matrix per drawn fold (rows true, columns predicted)."""
    from matplotlib.figure import Figure

    runs = [r for r in combo.runs if not folds or r.fold in folds] or combo.runs
    cols = min(len(runs), 3)
    rows = math.ceil(len(runs) / cols)
    fig = Figure(figsize=(3.3 * cols, 3.1 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, r in zip(axes, runs):
        cm = np.asarray(r.metrics["confusion"])
        share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=10,
                        color="white" if share[i, j] > 0.6 else "black")
        ax.set_xticks(range(len(classes)), classes, fontsize=8)
        ax.set_yticks(range(len(classes)), classes, fontsize=8, rotation=90, va="center")
        ax.set(xlabel="predicted", ylabel="true", title=f"fold {r.fold}" +
               (f", seed {r.seed}" if len({x.seed for x in combo.runs}) > 1 else ""))
    for ax in axes[len(runs):]:
        ax.axis("off")
    return fig


def png_data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("harness.analysis", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["pct"] = pct
    env.filters["fmt"] = fmt
    env.filters["pvalue"] = lambda p: "n/a" if p is None else ("< 0.001" if p < 0.001
                                                              else f"{p:.3f}")
    return env


def _suite_config(runs_dir: Path) -> dict[str, Any]:
    """The suite section of the first readable config.json (all runs of a suite share it)."""
    for path in sorted(runs_dir.glob(f"*/{store.CONFIG}")):
        try:
            suite = store.read_json(path).get("suite")
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
        if suite:
            return suite
    return {}


def render_report(runs_dir: str | Path, out_dir: str | Path | None = None, *,
                  bootstrap: int | None = None, title: str | None = None) -> Path:
    """Render ``index.html`` and the exports; returns the path of ``index.html``."""
    runs_dir = Path(runs_dir)
    suite = _suite_config(runs_dir)
    report_cfg = suite.get("report") or {}
    n_boot = bootstrap if bootstrap is not None else int(report_cfg.get("bootstrap", 1000))
    runs = load_runs(runs_dir, bootstrap=n_boot)
    suite = suite or next((r.config["suite"] for r in runs if r.config.get("suite")), {})
    suite_name = suite.get("name") or runs_dir.name
    out = Path(out_dir) if out_dir is not None else Path("reports") / suite_name
    classes = list(suite.get("classes") or
                   next((r.metrics["classes"] for r in runs if r.metrics), []))
    combos = group(runs)
    blocks = []
    for c in combos:
        blocks.append({
            "combo": c, **combination_tables(c, classes),
            "pooled": pooled_metrics(c, classes, n_boot),
            "confusion": png_data_uri(confusion_figure(
                c, classes, list(report_cfg.get("confusion_folds") or []))),
            "paper_selection": any(r.selection == "paper" for r in c.runs),
            "training": c.runs[0].run.get("training", {}),
            "budget": c.runs[0].budget,
        })
    comparisons = []
    for (backbone, engine) in dict.fromkeys((c.backbone, c.engine) for c in combos):
        done = [r for c in combos if (c.backbone, c.engine) == (backbone, engine) for r in c.runs]
        if len({r.sampler for r in done}) > 1:
            figs = compare.comparison_figures(done, classes)
            comparisons.append({"backbone": backbone, "engine": engine,
                                "data": compare.compare_strategies(done, classes),
                                "figures": {k: png_data_uri(f) for k, f in figs.items()}})
    not_done = [r for r in runs if r.state != "done"]
    context = {
        "title": title or report_cfg.get("title") or f"cxr-harness report: {suite_name}",
        "suite_name": suite_name, "classes": classes, "blocks": blocks,
        "comparisons": comparisons, "not_done": not_done,
        "paper_selection": any(b["paper_selection"] for b in blocks),
        "suite_yaml": yaml.safe_dump(suite, sort_keys=False, default_flow_style=None),
        "versions": next((r.config.get("versions") for r in runs if r.config.get("versions")), {}),
        "n_runs": len(runs), "n_done": len(runs) - len(not_done), "bootstrap": n_boot,
        "generated": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "figures4": TABLE4_FIGURES, "other_figures": OTHER_FIGURES,
        "runs_dir": str(runs_dir),
        "dropped": dropped_images(r.config for r in runs),
    }
    out.mkdir(parents=True, exist_ok=True)
    html = _environment().get_template("report.html.j2").render(**context)
    store.write_text(out / "index.html", html)
    write_exports(out, blocks, comparisons, not_done, classes, suite_name)
    return out / "index.html"


def _csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    store.write_text(path, buf.getvalue())


def _p100(v: float | None) -> float | None:
    return None if v is None else round(v * 100, 4)


def write_exports(out: Path, blocks: list[dict], comparisons: list[dict],
                  not_done: list[RunResult], classes: list[str], suite_name: str) -> None:
    """Every table of the page as CSV (percent, as shown) and all of it as summary.json."""
    key = ["backbone", "sampler", "engine", "fold", "seed", "run_id"]
    t3_head = key + [f"{c}_{k}" for c in classes
                     for k in ("correct", "not_detected", "wrong_detected")]
    t4_head = key + ["accuracy_pct"] + [f"{c}_{f}_pct" for f in TABLE4_FIGURES for c in classes]
    other_head = key + [k for k, _, _ in OTHER_FIGURES]
    t3, t4, other, summary_blocks = [], [], [], []
    for b in blocks:
        c = b["combo"]
        for r, row3, row4, row_o in zip(c.runs, b["table3"], b["table4"], b["other"]):
            ident = [c.backbone, c.sampler, c.engine, r.fold, r.seed, r.run_id]
            t3.append(ident + row3["cells"])
            t4.append(ident + [_p100(row4["accuracy"])] + [_p100(v) for v in row4["cells"]])
            other.append(ident + row_o["cells"])
        avg = [c.backbone, c.sampler, c.engine, "average", "", ""]
        t4.append(avg + [_p100(b["table4_average"]["accuracy"])]
                  + [_p100(v) for v in b["table4_average"]["cells"]])
        other.append(avg + b["other_average"])
        t3.append([c.backbone, c.sampler, c.engine, "total", "", ""] + b["table3_total"])
        summary_blocks.append({
            "backbone": c.backbone, "sampler": c.sampler, "engine": c.engine,
            "paper_selection": b["paper_selection"], "budget": b["budget"],
            "runs": [{"run_id": r.run_id, "fold": r.fold, "seed": r.seed, "metrics": r.metrics}
                     for r in c.runs],
            "average": {"accuracy": b["table4_average"]["accuracy"],
                        **{f"{c_}_{f}": v for (f, c_), v in zip(
                            [(f, c_) for f in TABLE4_FIGURES for c_ in classes],
                            b["table4_average"]["cells"])},
                        **{k: v for (k, _, _), v in zip(OTHER_FIGURES, b["other_average"])}},
            "pooled": b["pooled"],
        })
    _csv(out / "table3.csv", t3_head, t3)
    _csv(out / "table4.csv", t4_head, t4)
    _csv(out / "other_metrics.csv", other_head, other)
    _csv(out / "failed_runs.csv", ["run_id", "state", "error"],
         [[r.run_id, r.state, r.error] for r in not_done])
    for i, cmp in enumerate(comparisons):
        suffix = "" if len(comparisons) == 1 else f"_{cmp['backbone']}_{cmp['engine']}"
        d = cmp["data"]
        _csv(out / f"comparison{suffix}.csv",
             ["strategy", "metric", "mean", "sd", "ci_low", "ci_high", "n_folds", "budget"],
             [[s, k, e["mean"], e["sd"], e["ci"][0], e["ci"][1], e["n"], d["budget"][s]]
              for s in d["strategies"] for k, _ in d["metrics"] for e in [d["table"][s][k]]])
        _csv(out / f"comparison_paired{suffix}.csv",
             ["strategy", "reference", "metric", "n_pairs", "mean_diff", "t_p", "wilcoxon_p",
              "direction"],
             [[p["strategy"], p["reference"], p["metric"], p["n_pairs"], p["mean_diff"],
               p["t_p"], p["wilcoxon_p"], p["direction"]] for p in d["paired"]])
        _csv(out / f"comparison_mcnemar{suffix}.csv",
             ["strategy", "reference", "folds", "n", "both_right", "only_strategy_right",
              "only_reference_right", "both_wrong", "p_exact", "chi2", "p_chi2", "direction"],
             [[m[k] for k in ("strategy", "reference", "folds", "n", "both_right",
                              "only_strategy_right", "only_reference_right", "both_wrong",
                              "p_exact", "chi2", "p_chi2", "direction")] for m in d["mcnemar"]])
    store.write_json(out / "summary.json", {
        "suite": suite_name, "classes": classes, "note": "figures are fractions (0-1)",
        "combinations": summary_blocks,
        "comparisons": [{"backbone": c["backbone"], "engine": c["engine"], **c["data"]}
                        for c in comparisons],
        "not_done": [{"run_id": r.run_id, "state": r.state, "error": r.error,
                      "path": str(r.path)} for r in not_done],
    })
