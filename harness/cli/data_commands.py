"""``harness data``: look at, prepare and fetch the datasets a suite uses.

``summary`` shows Table 1 (images per source and class), every excluded row by reason and
each fold's composition, without decoding any image. ``prepare`` fills the image cache.
``fetch`` runs the dataset's own fetch step (``DatasetSpec.fetch``). Plugins add their own subcommands to this group (``harness.cli.main.COMMANDS_GROUP``;
the built-in DICOM reader adds ``bench-decode``).
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import click
import numpy as np

from harness.cli.main import PluginCommandGroup
from harness.config.suite import DEFAULT_CLASSES
from harness.errors import HarnessError
from harness.interrupts import exit_code


@click.group("data", cls=PluginCommandGroup)
def data_group():
    """Inspect, prepare and fetch datasets."""


# --- summary -------------------------------------------------------------------------------

def counts(labels, classes) -> dict[str, int]:
    values, n = np.unique(np.asarray(labels, dtype=str), return_counts=True)
    found = dict(zip(values.tolist(), n.tolist()))
    return {c: int(found.get(c, 0)) for c in classes}


def summarize(records, classes, exclusions, folds=None, notes=()) -> dict[str, Any]:
    """Everything ``data summary`` shows, as plain data (the ``--json`` output)."""
    table = {str(source): counts(group["label"], classes)
             for source, group in records.groupby("source", sort=False)}
    out: dict[str, Any] = {
        "classes": list(classes),
        "table1": table,
        "total": counts(records["label"], classes),
        "images": len(records),
        "patients": int(records["patient_id"].nunique()),
        "exclusions": exclusions,
        "notes": list(notes),
    }
    if folds is not None:
        labels = records["label"].to_numpy()
        out["folds"] = [{
            "fold": k,
            "train": counts(labels[f.train], classes),
            "select": counts(labels[f.select], classes),
            "test": counts(labels[f.test], classes),
            "phases": [len(p) for p in f.phases] if f.phases is not None else None,
            "first_phase": counts(labels[f.phases[0]], classes) if f.phases else None,
        } for k, f in enumerate(folds, start=1)]
    return out


def render(summary: dict[str, Any]) -> str:
    classes = summary["classes"]
    width = max(10, *(len(c) + 2 for c in classes))

    def row(name, values) -> str:
        return f"  {name:<22}" + "".join(f"{v:>{width}}" for v in values)

    lines = ["Table 1: images per source and class",
             row("source", [*classes, "total"])]
    for source, c in summary["table1"].items():
        lines.append(row(source, [*(c[k] for k in classes), sum(c.values())]))
    total = summary["total"]
    lines.append(row("total", [*(total[k] for k in classes), sum(total.values())]))
    lines.append(f"  ({summary['images']} images of {summary['patients']} patient groups)")
    lines.append("")
    lines.append("Excluded rows by reason")
    if not any(summary["exclusions"].values()):
        lines.append("  none")
    for dataset, reasons in summary["exclusions"].items():
        for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {dataset:<12} {reason:<40} {n:>7}")
    if summary.get("folds"):
        lines.append("")
        lines.append("Folds (" + " / ".join(classes) + ")")
        for f in summary["folds"]:
            parts = [f"{part} " + "/".join(str(f[part][c]) for c in classes)
                     for part in ("train", "select", "test")]
            line = f"  fold {f['fold']}: " + "  ".join(parts)
            if f["phases"]:
                sizes = sorted(set(f["phases"]))
                line += (f"  phases {len(f['phases'])} x "
                         f"{sizes[0] if len(sizes) == 1 else f'{sizes[0]}..{sizes[-1]}'}")
            lines.append(line)
    if "near_duplicates" in summary:
        from harness.data.duplicates import describe

        lines.append("")
        lines.append("Near-duplicate images across patient ids")
        if summary["near_duplicates"] is None:
            lines.append("  not checked: the images are not decoded yet "
                         "(run `harness data prepare` on the suite first)")
        else:
            lines += describe(summary["near_duplicates"])
    for note in summary["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def near_duplicates(suite, records, registry, checked):
    """Records with near-duplicate patients merged, or None when the cache is not filled."""
    from harness.data.duplicates import merge_near_duplicates, searched_datasets
    from harness.data.prepare import filled_cache

    found = filled_cache(suite, records, registry, checked)
    if found is None:
        return None
    cache, unreadable = found
    kept = records[~records["uid"].isin(unreadable)].reset_index(drop=True)
    kept.attrs = dict(records.attrs)
    return merge_near_duplicates(kept, cache, searched_datasets(suite, registry))


@data_group.command("summary")
@click.argument("suite_file", required=False, type=click.Path(dir_okay=False))
@click.option("--dataset", help="Summarise one dataset without a suite (with --root).")
@click.option("--root", type=click.Path(), help="The dataset folder (with --dataset).")
@click.option("--mapping", help="The dataset's 'mapping' option, for --dataset (its presets: "
              "harness describe dataset NAME).")
@click.option("--verify", is_flag=True, help="Set the dataset's 'verify' option, for datasets "
              "that have one (open every image header, count unreadable files).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def summary_command(suite_file, dataset, root, mapping, verify, as_json):
    """Table 1, exclusions by reason, near-duplicate images across patients and the per-fold
    composition. No image is decoded: near-duplicates are found in the filled cache (after
    `harness data prepare` or a run)."""
    from harness.plugin.registry import build_registry

    notes: list[str] = []
    if suite_file:
        from harness.config.suite import load_suite
        from harness.data.prepare import load_records, make_folds
        from harness.plugin.check import check_data_options

        suite = load_suite(suite_file)
        registry = build_registry(suite.plugins)
        checked = check_data_options(suite, registry)
        records = load_records(suite, registry, checked)
        near = near_duplicates(suite, records, registry, checked)
        if near is not None:
            records = near
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            folds = make_folds(suite, records, registry, checked)
        notes = [str(w.message) for w in caught]
        result = summarize(records, suite.classes, records.attrs.get("exclusions", {}), folds,
                           notes)
        result["near_duplicates"] = None if near is None else near.attrs["near_duplicates"]
    else:
        if not dataset or not root:
            raise HarnessError("give a suite file, or --dataset NAME --root DIR")
        registry = build_registry()
        spec = registry.get("datasets", dataset)
        options: dict[str, Any] = {"root": str(Path(root).resolve())}
        if mapping:
            options["mapping"] = mapping
        if verify:
            options["verify"] = True
        from harness.plugin.options import validate_options
        from harness.plugin.specs import DatasetContext, OptionsContext

        typed = validate_options(spec.options, options, "options", f"dataset {dataset!r}",
                                 OptionsContext(classes=DEFAULT_CLASSES, datasets=(dataset,)))
        records = spec.records(typed, DatasetContext(classes=DEFAULT_CLASSES,
                                                     suite_dir=Path.cwd(), name=dataset))
        result = summarize(records, DEFAULT_CLASSES,
                           {dataset: dict(records.attrs.get("exclusions", {}))})
    click.echo(json.dumps(result, indent=2) if as_json else render(result))


# --- prepare -------------------------------------------------------------------------------

@data_group.command("prepare")
@click.argument("suite_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--quiet", is_flag=True, help="No progress bar.")
def prepare_command(suite_file, quiet):
    """Decode every image of a suite into the cache (parallel, resumable)."""
    from harness.config.suite import load_suite
    from harness.data.prepare import load_records, prepare_cache
    from harness.plugin.check import check_data_options
    from harness.plugin.registry import build_registry

    suite = load_suite(suite_file)
    registry = build_registry(suite.plugins)
    checked = check_data_options(suite, registry)
    records = load_records(suite, registry, checked)
    started, wall_ns = time.perf_counter(), time.time_ns()
    try:
        cache, kept = prepare_cache(suite, records, registry, checked, show_progress=not quiet)
    except KeyboardInterrupt as exc:
        click.secho("interrupted: every image decoded so far is kept in the cache; run the "
                    "same command to decode the rest", fg="yellow", err=True)
        sys.exit(exit_code(exc))
    seconds = time.perf_counter() - started
    fill = cache.path / "last_fill.json"  # written by the cache only when it decoded images
    fresh = fill.is_file() and fill.stat().st_mtime_ns >= wall_ns
    decoded = json.loads(fill.read_text())["images"] if fresh else 0
    click.echo(f"cache: {cache.path}")
    click.echo(f"{len(kept)} images ready ({suite.image_size}x{suite.image_size}); "
               f"{decoded} decoded now in {seconds:.1f} s"
               + (f" ({decoded / max(seconds, 1e-9):.1f} images/s)" if decoded else
                  " (all were cached already)"))
    unreadable = kept.attrs.get("unreadable", {})
    if unreadable:
        click.echo(f"{len(unreadable)} unreadable image(s) skipped:")
        for message in list(unreadable.values())[:20]:
            click.echo(f"  {message}")
        if len(unreadable) > 20:
            click.echo(f"  ... and {len(unreadable) - 20} more")


# --- fetch ---------------------------------------------------------------------------------

@data_group.command("fetch")
@click.argument("dataset")
@click.argument("dest", type=click.Path(file_okay=False))
@click.option("--commit", help="Version to check out where the dataset is a git repository "
              "(a commit id, or 'latest'); default: the dataset's documented one.")
@click.option("--url", help="Fetch from here instead of the dataset's home (a mirror).")
def fetch_command(dataset, dest, commit, url):
    """Get a copy of DATASET into DEST, or print how: the dataset's own fetch step
    (`DatasetSpec.fetch`). A dataset kept in git is checked out at its documented commit
    unless --commit says otherwise; others print the steps to follow."""
    from harness.plugin.registry import build_registry

    spec = build_registry().get("datasets", dataset)
    if spec.fetch is None:
        raise HarnessError(f"dataset {dataset!r} has no fetch step; get its files yourself "
                           "and point the suite's 'root' option at them")
    click.echo(spec.fetch(Path(dest), {"commit": commit, "url": url}))
