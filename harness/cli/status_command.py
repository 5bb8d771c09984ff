"""``harness status SUITE``: where every run of a suite stands, from its run folders alone.

Nothing is asked of an executor or a scheduler: each run folder's ``status.json`` says
whether the run waits (and in which job), trains, finished or failed, how many attempts it
took and their time together. So it works for every executor, after ``harness run
--detach`` from another login as well as beside a running ``harness run``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import click

from harness import store
from harness.errors import HarnessError
from harness.rundir.folder import DamagedFile, RunFolder, SuiteRuns


def suite_folder(suite: str, runs_dir: str) -> Path:
    """``runs/<name>`` of a suite given by its file, its name, or its run folder."""
    path = Path(suite)
    if path.is_dir():
        return path
    if path.suffix in (".yaml", ".yml") and path.is_file():
        from harness.config.suite import load_suite

        suite = load_suite(path).name
    folder = store.child(runs_dir, suite)
    if not folder.is_dir():
        raise HarnessError(f"no runs of suite {suite!r} in {runs_dir}/ (expected the folder "
                           f"{folder}); give --runs-dir, the suite file or the suite's name")
    return folder


def run_row(folder: RunFolder) -> dict[str, Any]:
    row: dict[str, Any] = {"run_id": folder.name, "state": folder.state(), "attempts": 0,
                           "seconds": 0.0, "job": "", "error": ""}
    try:
        status = folder.status() if folder.status_path.exists() else None
    except DamagedFile as exc:
        return {**row, "error": str(exc)}
    if status is not None:
        row.update(attempts=status.attempts or (0 if status.state == "pending" else 1),
                   seconds=round(status.total_seconds or status.seconds, 1), job=status.job,
                   error=(status.error.strip().splitlines() or [""])[0])
    return row


def suite_status(folder: Path) -> dict[str, Any]:
    runs = SuiteRuns(folder)
    known = runs.run_ids()
    names = sorted(known) if known is not None else [f.name for f in runs.folders()]
    rows = [run_row(runs.run(name)) for name in names]
    return {"suite": folder.name, "runs_dir": str(folder), "runs": rows,
            "counts": dict(Counter(r["state"] for r in rows))}


def shown_state(row: dict[str, Any]) -> str:
    return "queued" if row["state"] == "pending" and row["job"] else row["state"]


@click.command("status")
@click.argument("suite")
@click.option("--runs-dir", default="runs", show_default=True, help="Where run folders are.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status_command(suite, runs_dir, as_json):
    """Where every run of SUITE stands (a suite file, its name, or its run folder).

    Read from the run folders alone, so it works for any executor, e.g. after
    `harness run SUITE --detach` submitted the runs to Slurm.
    """
    found = suite_status(suite_folder(suite, runs_dir))
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    rows = found["runs"]
    width = max([len(r["run_id"]) for r in rows] + [6]) + 2
    click.echo(f"{'run':<{width}}{'state':<13}{'attempts':>8}{'seconds':>10}  where / why")
    for r in rows:
        click.echo(f"{r['run_id']:<{width}}{shown_state(r):<13}{r['attempts']:>8}"
                   f"{r['seconds']:>10.0f}  {r['error'] or r['job']}")
    counts = Counter(shown_state(r) for r in rows)
    click.echo(f"suite {found['suite']!r}: {len(rows)} runs: "
               + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))


def echo_detached(result: Any, runs_dir: str, as_json: bool) -> None:
    """``harness run --detach``: the job of every submitted run, and how to follow them."""
    if as_json:
        click.echo(json.dumps({"suite": result.suite.name, "source": result.suite.source,
                               "submitted": [{"run_id": k, "job": v}
                                             for k, v in result.jobs.items()],
                               "done": result.count("done")}, indent=2))
        return
    for run_id, job in result.jobs.items():
        click.echo(f"{run_id}  {job}")
    click.echo(f"submitted {len(result.jobs)} of {len(result.runs)} runs "
               f"({result.count('done')} done already); follow them with: harness status "
               f"{result.suite.source or result.suite.name} --runs-dir {runs_dir}")
