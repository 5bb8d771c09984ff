"""The report's tables as files next to the page: CSV and summary.json. Table 3 holds counts,
Table 4 percent (as shown); every other file holds fractions (MCC from −1 to 1).

Everything here writes what ``report.render_report`` already computed; nothing is
recomputed, so the page and its exports cannot disagree.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from harness import store
from harness.analysis.loading import RunResult
from harness.analysis.metrics import TABLE4_FIGURES
from harness.analysis.tables import OTHER_FIGURES

#: A cell starting with one of these is run as a formula by spreadsheet programs (OWASP,
#: "CSV Injection"): such text is written with a leading single quote.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """``value`` as a CSV/XLSX cell that no spreadsheet runs: text that starts like a
    formula gets a leading ``'``; numbers (``-0.25`` too, as number or text) stay numbers."""
    if not isinstance(value, str) or not value.startswith(FORMULA_START):
        return value
    try:
        float(value)
    except ValueError:
        return "'" + value
    return value


def _csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([spreadsheet_safe(h) for h in header])
    writer.writerows([["" if v is None else spreadsheet_safe(v) for v in row] for row in rows])
    store.write_text(path, buf.getvalue())


def _p100(v: float | None) -> float | None:
    return None if v is None else round(v * 100, 4)


def write_exports(out: Path, blocks: list[dict], comparisons: list[dict],
                  not_done: list[RunResult], classes: list[str], suite_name: str) -> None:
    """Every table of the page as CSV and all of it as summary.json (units: module docstring)."""
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
    for cmp in comparisons:
        suffix = "" if len(comparisons) == 1 else f"_{cmp['backbone']}_{cmp['engine']}"
        write_comparison(out, suffix, cmp["data"])
    store.write_json(out / "summary.json", {
        "suite": suite_name, "classes": classes, "note": "figures are fractions (0-1)",
        "combinations": summary_blocks,
        "comparisons": [{"backbone": c["backbone"], "engine": c["engine"], **c["data"]}
                        for c in comparisons],
        "not_done": [{"run_id": r.run_id, "state": r.state, "error": r.error,
                      "path": str(r.path)} for r in not_done],
    })


def write_comparison(out: Path, suffix: str, d: dict[str, Any]) -> None:
    """The comparison's tables: strategies × metrics, budget, paired tests, McNemar."""
    _csv(out / f"comparison{suffix}.csv",
         ["strategy", "metric", "mean", "sd", "ci_low", "ci_high", "n_units", "images_seen"],
         [[s, k, e["mean"], e["sd"], e["ci"][0], e["ci"][1], e["n"],
           d["budget"][s].get("images_seen")]
          for s in d["strategies"] for k, _ in d["metrics"] for e in [d["table"][s][k]]])
    keys = ("images_seen", "epochs", "distinct_images", "selection_checkpoints")
    _csv(out / f"comparison_budget{suffix}.csv", ["strategy", *keys],
         [[s, *(d["budget"][s].get(k) for k in keys)] for s in d["strategies"]])
    _csv(out / f"comparison_paired{suffix}.csv",
         ["strategy", "reference", "metric", "n_units", "unit", "df", "mean_diff", "ci_low",
          "ci_high", "t", "p", "p_adjusted", "correction", "family", "family_size", "verdict",
          "sentence"],
         [[p["strategy"], p["reference"], p["metric"], p["n_units"], p["unit"], p["df"],
           p["mean_diff"], p["ci"][0], p["ci"][1], p["t"], p["p"], p["p_adjusted"],
           d["family"]["correction"], p.get("family"), p.get("family_size"), p["verdict"],
           p["sentence"]]
          for p in d["paired"]])
    _csv(out / f"comparison_mcnemar{suffix}.csv",
         ["strategy", "reference", "focus_class", "fold", "seed", "n", "both_right",
          "only_strategy_right", "only_reference_right", "both_wrong", "diff", "ci_low",
          "ci_high", "p_exact", "min_p", "p_adjusted", "family_size", "verdict", "sentence"],
         [[m["strategy"], m["reference"], m["focus"], m["fold"], m["seed"], m["n"],
           m["both_right"], m["only_strategy_right"], m["only_reference_right"],
           m["both_wrong"], m["diff"], m["ci"][0], m["ci"][1], m["p"], m["min_p"],
           m["p_adjusted"], m.get("family_size"), m["verdict"], m["sentence"]]
          for m in d["mcnemar"]])
