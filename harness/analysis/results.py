"""Every figure of a suite's finished runs as one long table (``harness.load_results``).

One row per run × metric, and per class for the per-class figures: ``suite``, ``run_id``,
``backbone``, ``sampler``, ``engine``, ``fold`` (an integer), ``seed``, ``class`` (missing,
NaN, for figures of the whole test set: ``table["class"].isna()``, as pandas reads an empty
cell of ``results.csv``), ``metric`` and ``value``. The value is a fraction from 0 to 1
(accuracy 0.93, never 93) for every metric but two kinds, told apart by the ``metric`` name
(there is no unit column): the counts in :data:`COUNTS` (``n``: test images of the run;
``support``: its test images of the class) and ``mcc``, from −1 to 1. The report folder holds the same table as ``results.csv`` (and
``results.parquet`` when pyarrow is installed), so a notebook and the report agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from harness import store
from harness.errors import HarnessError
from harness.rundir.folder import SuiteRuns

COLUMNS = ["suite", "run_id", "backbone", "sampler", "engine", "fold", "seed", "class",
           "metric", "value"]
#: Figures of the whole test set, and of each class, taken from ``metrics.json``.
OVERALL = ("accuracy", "balanced_accuracy", "macro_f1", "mcc", "macro_auroc", "n")
PER_CLASS = ("sensitivity", "specificity", "accuracy", "precision", "f1", "auroc", "support")
#: The metrics whose value is a count of images, not a fraction.
COUNTS = ("n", "support")


def rows_of(suite: str, run: dict[str, Any], metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """The long rows of one run's ``metrics.json``."""
    key = {"suite": suite, "run_id": run.get("run_id", ""), "backbone": run.get("backbone"),
           "sampler": run.get("sampler"), "engine": run.get("engine"),
           "fold": int(run.get("fold", 0)), "seed": int(run.get("seed", 0))}
    rows = [{**key, "class": None, "metric": m, "value": metrics.get(m)}
            for m in OVERALL if m in metrics]
    for cls, figures in (metrics.get("per_class") or {}).items():
        rows += [{**key, "class": cls, "metric": m, "value": figures.get(m)}
                 for m in PER_CLASS if m in figures]
    return rows


def suite_folders(runs_dir: Path) -> list[Path]:
    """``runs/<suite>`` itself, or every suite folder under ``runs/``."""
    if SuiteRuns(runs_dir).has_runs():
        return [runs_dir]
    return sorted(p for p in runs_dir.iterdir() if p.is_dir() and SuiteRuns(p).has_runs())


def load_results(runs_dir: str | Path) -> pd.DataFrame:
    """The finished runs under ``runs_dir`` (``runs/<suite>`` or ``runs/``) as a long table.

    Runs that are not done are left out (``harness run`` and the report list them).
    """
    from harness.analysis.loading import load_runs

    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise HarnessError(f"{runs_dir}: no such runs folder; give runs/<suite> or runs/")
    return results_table([(folder.name, load_runs(folder, bootstrap=0))
                          for folder in suite_folders(runs_dir)])


def results_table(suites) -> pd.DataFrame:
    """The long table of ``(suite folder name, loaded runs)`` pairs."""
    rows: list[dict[str, Any]] = []
    for name, runs in suites:
        for run in runs:
            if run.state == "done" and run.metrics:
                suite = run.config.get("suite", {}).get("name") or name
                rows += rows_of(suite, {**run.run, "run_id": run.run_id}, run.metrics)
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["fold"] = table["fold"].astype("int64")
    table["seed"] = table["seed"].astype("int64")
    table["value"] = pd.to_numeric(table["value"], errors="coerce").astype("float64")
    return table


def write_results(out: Path, runs_dir: Path, runs=None) -> list[Path]:
    """``results.csv`` (and ``results.parquet`` with pyarrow) in the report folder; ``runs``:
    the suite's runs as the report loaded them (read again from ``runs_dir`` when not given)."""
    table = (load_results(runs_dir) if runs is None
             else results_table([(Path(runs_dir).name, runs)]))
    written = [Path(out) / "results.csv"]
    from harness.analysis.exports import spreadsheet_safe

    text = table.copy()  # text columns neutralised for spreadsheets; Parquet keeps the data
    for column in text.columns[text.dtypes == object]:
        text[column] = text[column].map(spreadsheet_safe)
    store.write_text(written[0], text.to_csv(index=False))
    try:
        import pyarrow  # noqa: F401 - optional: Parquet only where it is installed
    except ImportError:
        return written
    path = Path(out) / "results.parquet"
    store.atomic_write(path, lambda fh: table.to_parquet(fh, index=False), mode="wb")
    return [*written, path]
