"""``harness track SUITE``: tell the suite's trackers about its finished runs, training none.

What ``harness run`` does at its start, on its own: after a tracking server was down, it
records the finished runs a tracker lacks from their run folders (``Tracker.recorded``),
then closes the suite's parent record with the states of all its runs.
"""

from __future__ import annotations

import click


@click.command("track")
@click.argument("suite", type=click.Path(dir_okay=False))
@click.option("--runs-dir", default="runs", show_default=True, help="Where run folders are.")
def track_command(suite, runs_dir):
    """Record SUITE's finished runs in its trackers (those they lack); trains nothing."""
    from pathlib import Path

    from harness import store
    from harness.config.suite import expand, load_suite
    from harness.errors import HarnessError
    from harness.plugin.check import check_suite
    from harness.plugin.registry import build_registry
    from harness.rundir.folder import RunFolder
    from harness.runs import tracking
    from harness.runs.runner import run_dir_for, start_trackers

    loaded = load_suite(suite)
    if not loaded.trackers:
        raise HarnessError(f"{suite}: trackers: the suite names no tracker")
    registry = build_registry(loaded.plugins)
    check_suite(loaded, registry, backbones=False)
    runs = expand(loaded)
    states = {r.run_id: RunFolder(run_dir_for(Path(runs_dir), r)).state() for r in runs}
    done = [r for r in runs if states[r.run_id] == "done"]
    suite_runs = store.child(runs_dir, loaded.name)
    trackers = start_trackers(loaded, registry, suite_runs, [], done, click.echo)
    report = store.child("reports", loaded.name)
    tracking.refresh(suite_runs, trackers)
    trackers.suite_end(tracking.suite_end(suite_runs, loaded.name, states,
                                          report if report.is_dir() else None))
    trackers.close()
    off = trackers.off
    click.echo(f"suite {loaded.name!r}: {len(done)} of {len(runs)} runs done; trackers "
               + ", ".join(f"{lane.name} ({'off' if lane.name in off else 'up to date'})"
                           for lane in trackers.lanes))
