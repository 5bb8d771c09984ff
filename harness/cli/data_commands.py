"""``harness data``: look at, prepare and fetch the datasets a suite uses.

``summary`` shows Table 1 (images per source and class), every excluded row by reason and
each fold's composition, without decoding any image. ``prepare`` fills the image cache.
``fetch`` clones ieee8023 or prints the Kaggle steps for RSNA. ``bench-decode`` measures the
cache against a plain pydicom + Pillow loop on RSNA-like DICOMs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import click
import numpy as np

from harness.errors import HarnessError
from harness.plugin.specs import DEFAULT_CLASSES

IEEE8023_URL = "https://github.com/ieee8023/covid-chestxray-dataset"
#: Overrides the clone URL (a mirror, or a local repository in tests).
URL_ENV = "HARNESS_IEEE8023_URL"

RSNA_STEPS = """\
The RSNA Pneumonia Detection Challenge data needs a Kaggle account and the competition's
rules accepted (https://www.kaggle.com/c/rsna-pneumonia-detection-challenge/rules). Then:

  pip install kaggle
  # put your API token in ~/.kaggle/kaggle.json (Kaggle > Settings > API > Create New Token)
  chmod 600 ~/.kaggle/kaggle.json
  kaggle competitions download -c rsna-pneumonia-detection-challenge -p {dest}
  cd {dest} && unzip -q rsna-pneumonia-detection-challenge.zip

{dest} then holds stage_2_train_labels.csv, stage_2_detailed_class_info.csv and
stage_2_train_images/ (26,684 DICOMs, about 3.5 GB). Use it in a suite as:

  datasets:
    - name: rsna
      options: {{root: {dest}}}
"""


@click.group("data")
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
    for note in summary["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)


@data_group.command("summary")
@click.argument("suite_file", required=False, type=click.Path(dir_okay=False))
@click.option("--dataset", help="Summarise one dataset without a suite (with --root).")
@click.option("--root", type=click.Path(), help="The dataset folder (with --dataset).")
@click.option("--mapping", help="Label mapping preset for --dataset (ieee8023: paper, current).")
@click.option("--verify", is_flag=True, help="Also open every image header (counts unreadable "
              "files; ieee8023).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def summary_command(suite_file, dataset, root, mapping, verify, as_json):
    """Table 1, exclusions by reason and the per-fold composition (no image is decoded)."""
    from harness.plugin.registry import build_registry

    notes: list[str] = []
    if suite_file:
        from harness.config.suite import load_suite
        from harness.data.prepare import load_records, make_folds

        suite = load_suite(suite_file)
        registry = build_registry(suite.plugins)
        records = load_records(suite, registry)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            folds = make_folds(suite, records, registry)
        notes = [str(w.message) for w in caught]
        result = summarize(records, suite.classes, records.attrs.get("exclusions", {}), folds,
                           notes)
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
        from harness.plugin.specs import DatasetContext

        typed = validate_options(spec.options, options, "options", f"dataset {dataset!r}")
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
    from harness.plugin.registry import build_registry

    suite = load_suite(suite_file)
    registry = build_registry(suite.plugins)
    records = load_records(suite, registry)
    started, wall_ns = time.perf_counter(), time.time_ns()
    cache, kept = prepare_cache(suite, records, registry, show_progress=not quiet)
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
@click.argument("dataset", type=click.Choice(["ieee8023", "rsna"]))
@click.argument("dest", type=click.Path(file_okay=False))
@click.option("--commit", help="Check out this commit after cloning (ieee8023).")
@click.option("--url", help=f"Clone from here instead of {IEEE8023_URL} (or set ${URL_ENV}).")
def fetch_command(dataset, dest, commit, url):
    """Clone ieee8023 (optionally at a pinned commit), or print the Kaggle steps for RSNA.

    No commit of ieee8023 from the paper's time (early April 2020) is recorded by the
    authors, so the default is the latest version; the paper's exact images are in their
    split files (split kind 'files'). The 2020-06-22 version, the last with flat findings
    like the paper's, is commit 584034aa7fbf06496741f11008d72fd791c8e443.
    """
    if dataset == "rsna":
        click.echo(RSNA_STEPS.format(dest=dest))
        return
    fetch_ieee8023(Path(dest), url or os.environ.get(URL_ENV) or IEEE8023_URL, commit)
    click.echo(f"ieee8023 is in {dest}" + (f" at commit {commit}" if commit else " (latest)"))
    click.echo(f"use it with: datasets: [{{name: ieee8023, options: {{root: {dest}}}}}]")


def fetch_ieee8023(dest: Path, url: str, commit: str | None = None) -> None:
    if shutil.which("git") is None:
        raise HarnessError("'git' is not installed; install git, or download "
                           f"{IEEE8023_URL}/archive/master.zip and unzip it")
    if dest.exists() and any(dest.iterdir()):
        raise HarnessError(f"{dest} exists and is not empty; choose a new folder")
    _git(["clone", "--quiet", url, str(dest)], f"cloning {url}")
    if commit:
        _git(["-C", str(dest), "checkout", "--quiet", "--detach", commit],
             f"checking out commit {commit}")


def _git(args: list[str], what: str) -> None:
    result = subprocess.run(["git", *args], check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise HarnessError(f"{what} failed: {result.stderr.strip() or result.stdout.strip()}")


# --- bench-decode --------------------------------------------------------------------------

@data_group.command("bench-decode")
@click.option("--n", "n_images", default=200, show_default=True, help="DICOMs to write.")
@click.option("--size", default=1024, show_default=True, help="Side of each DICOM.")
@click.option("--image-size", default=300, show_default=True, help="Cache image side.")
@click.option("--workers", type=int, default=None, help="Cache workers (default: CPU count).")
@click.option("--json", "as_json", is_flag=True)
def bench_decode_command(n_images, size, image_size, workers, as_json):
    """Time the cache on RSNA-like JPEG DICOMs against a plain pydicom + Pillow loop."""
    result = bench_decode(n_images, size, image_size, workers)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"{n_images} JPEG-baseline DICOMs {size}x{size} -> {image_size}x{image_size}")
    click.echo(f"  plain loop (pydicom + Pillow, 1 process): {result['plain_s']:.2f} s "
               f"({result['plain_images_per_s']:.1f} images/s)")
    click.echo(f"  cache, 1 worker:  {result['cache1_s']:.2f} s  ratio "
               f"{result['ratio_1_worker']:.2f} (1.00 = no overhead)")
    click.echo(f"  cache, {result['workers']} workers: {result['cache_s']:.2f} s "
               f"({result['cache_images_per_s']:.1f} images/s)  ratio "
               f"{result['ratio_workers']:.2f}")


def bench_decode(n_images: int = 200, size: int = 1024, image_size: int = 300,
                 workers: int | None = None) -> dict[str, Any]:
    import pandas as pd
    import pydicom
    from harness_plugins.datasets import rsna
    from harness_plugins.datasets.dicom import chest_like, write_jpeg_dicom
    from PIL import Image

    from harness.data.cache import fill_cache

    workers = workers or os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        picture = chest_like(size)
        paths = []
        for i in range(n_images):
            paths.append(folder / f"{i:05d}.dcm")
            write_jpeg_dicom(paths[-1], np.roll(picture, i, axis=1))
        records = pd.DataFrame({"uid": [f"bench/{i}" for i in range(n_images)],
                                "path": [str(p) for p in paths], "_dataset": "rsna"})

        started = time.perf_counter()
        for p in paths:
            pixels = pydicom.dcmread(p).pixel_array
            np.asarray(Image.fromarray(pixels).resize((image_size, image_size), Image.BILINEAR))
        plain = time.perf_counter() - started

        timings = {}
        for name, w in (("one", 1), ("many", workers)):
            started = time.perf_counter()
            fill_cache(Path(tmp) / f"cache-{name}", records, {"rsna": rsna.read_image},
                       {"rsna": {}}, [name], image_size, workers=w, show_progress=False)
            timings[name] = time.perf_counter() - started
    return {
        "images": n_images, "size": size, "image_size": image_size, "workers": workers,
        "plain_s": plain, "plain_images_per_s": n_images / plain,
        "cache1_s": timings["one"], "cache_s": timings["many"],
        "cache_images_per_s": n_images / timings["many"],
        "ratio_1_worker": timings["one"] / plain, "ratio_workers": timings["many"] / plain,
    }
