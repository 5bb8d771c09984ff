"""``harness metrics`` and ``harness report``: figures and pages from files on disk."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.analysis.metrics import compute_metrics, format_text
from harness.config.suite import ReportConfig
from harness.rundir.predictions import read_predictions


@click.command("metrics")
@click.argument("predictions", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON (fractions).")
@click.option("--classes", default=None,
              help="Class names in probability-column order, comma-separated "
                   "(default: from the p_<class> columns).")
@click.option("--bootstrap", default=ReportConfig.bootstrap, show_default=True, type=click.IntRange(min=0),
              help="Bootstrap resamples for the 95% intervals (0: none).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the bootstrap.")
def metrics_command(predictions: Path, as_json: bool, classes: str | None, bootstrap: int,
                    seed: int) -> None:
    """Tables 3 and 4 and other figures of any PREDICTIONS.csv (uid,true,pred,p_<class>...)."""
    names = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    table = read_predictions(predictions, names)
    result = compute_metrics(table, bootstrap=bootstrap, seed=seed)
    click.echo(json.dumps(result, indent=2) if as_json else format_text(result))


@click.command("report")
@click.argument("runs_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for index.html and the exports (default: reports/<suite name>).")
@click.option("--bootstrap", default=None, type=click.IntRange(min=0),
              help="Bootstrap resamples (default: the suite's report.bootstrap).")
def report_command(runs_dir: Path, out_dir: Path | None, bootstrap: int | None) -> None:
    """Render reports/<suite>/index.html from the run folders in RUNS_DIR (runs/<suite>)."""
    from harness.analysis.report import (
        render_report,  # matplotlib and jinja2 only when a report is made
    )

    index = render_report(runs_dir, out_dir, bootstrap=bootstrap)
    click.echo(f"report: {index}")


@click.command("optimism")
@click.argument("optimistic_runs", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.argument("clean_runs", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the gap as JSON (fractions).")
def optimism_command(optimistic_runs: Path, clean_runs: Path, as_json: bool) -> None:
    """How much selecting on test images flatters each figure: OPTIMISTIC_RUNS (e.g.
    runs/paper) minus CLEAN_RUNS (runs/paper-clean), paired run by run."""
    from harness.analysis.optimism import format_gap, optimism_gap

    gap = optimism_gap(optimistic_runs, clean_runs)
    click.echo(json.dumps(gap, indent=2) if as_json else format_gap(gap))
