"""``harness data bench-decode``: the image cache against a plain loop, on RSNA-like DICOMs.

A benchmark of the DICOM reader this package registers (``rsna``'s ``read_image``), so it
lives with that reader and reaches the CLI through the ``harness.commands`` entry-point
group (name ``data.bench-decode``: a subcommand of the core's ``data`` group).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from harness import HarnessError


@click.command("bench-decode")
@click.option("--n", "n_images", default=600, show_default=True,
              help="DICOMs to write. Starting the workers costs about 0.1 s per fill, which "
                   "weighs on small fills only (a real dataset has thousands of images).")
@click.option("--size", default=1024, show_default=True, help="Side of each DICOM.")
@click.option("--image-size", default=300, show_default=True, help="Cache image side.")
@click.option("--workers", type=int, default=2, show_default=True, help="Cache workers.")
@click.option("--repeats", default=3, show_default=True, help="Paired measurements.")
@click.option("--json", "as_json", is_flag=True)
def bench_decode_command(n_images, size, image_size, workers, repeats, as_json):
    """Time the cache fill on RSNA-like JPEG DICOMs against a plain loop, side by side."""
    result = bench_decode(n_images, size, image_size, workers, repeats)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"{n_images} JPEG-baseline DICOMs {size}x{size} -> {image_size}x{image_size}, "
               f"{repeats} paired repeats")
    click.echo(f"  decoder: {result['decoder_ms']:.1f} ms per image (Pillow); pydicom's default "
               f"plugin {result['default_decoder_ms']:.1f} ms "
               f"({result['decoder_speedup']:.2f}x, {result['decoder_images']} images)")
    click.echo("  plain loop, same decoder and output, 1 process: "
               + ", ".join(f"{t:.2f}" for t in result["plain_s"]) + " s")
    click.echo(f"  cache, {workers} workers:  "
               + ", ".join(f"{t:.2f}" for t in result["cache_s"]) + " s")
    click.echo("  speed-up over the plain loop: "
               + ", ".join(f"{r:.2f}x" for r in result["speedups"])
               + f" (median {result['speedup']:.2f}x)")
    click.echo("  CPU seconds, plain / cache (parent + workers): "
               + ", ".join(f"{p:.2f}/{c:.2f}" for p, c in
                           zip(result["plain_cpu_s"], result["cache_cpu_s"]))
               + f" (cache {100 * result['cpu_overhead']:+.1f} %, so "
               f"{result['cpu_speedup']:.2f}x if each worker had a core to itself at these "
               "CPU costs; contention inflates both)")
    click.echo(f"  load average before/after: {result['load_before']:.2f} / "
               f"{result['load_after']:.2f} on {result['cores']} cores")
    click.echo(f"  verdict: {result['verdict']}")


def bench_decode(n_images: int = 600, size: int = 1024, image_size: int = 300,
                 workers: int = 2, repeats: int = 3, target: float = 1.8) -> dict[str, Any]:
    """Plain loop and cache fill, interleaved ``repeats`` times on the same files.

    Both do the same work with the decoder the cache uses: decode, resize and write every
    image into an on-disk uint8 array (the plain loop into a bare memory map), so the ratio
    is what the pool gives; the decoder itself is compared with pydicom's default plugin on a few
    images. On a shared machine the paired ratios spread; the verdict says when they are
    too noisy to tell.
    """
    import pandas as pd
    import pydicom

    from harness import fill_cache, to_square_uint8, usable_cores

    from . import rsna
    from .dicom import chest_like, read_image_file, write_jpeg_dicom

    if n_images < 1 or repeats < 1 or workers < 1:
        raise HarnessError("bench-decode: --n, --repeats and --workers must be >= 1")
    load_before = os.getloadavg()[0]
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

        few = paths[:min(n_images, 20)]
        decoder = _seconds(lambda: [read_image_file(p) for p in few]) / len(few)
        default = _seconds(lambda: [pydicom.dcmread(p).pixel_array for p in few]) / len(few)

        def plain(k: int) -> None:  # the same output as the cache: an on-disk uint8 array
            out = np.memmap(Path(tmp) / f"plain-{k}.u8", dtype=np.uint8, mode="w+",
                            shape=(n_images, image_size, image_size))
            for i, p in enumerate(paths):
                out[i] = to_square_uint8(read_image_file(p), image_size)
            del out

        def cache(k: int) -> None:
            fill_cache(Path(tmp) / f"cache-{k}", records, {"rsna": rsna.read_image},
                       {"rsna": {}}, [str(k)], image_size, workers=workers,
                       show_progress=False)

        plain_s, cache_s, plain_cpu, cache_cpu = [], [], [], []
        for k in range(repeats):  # alternate the order so that a drift in load hits both
            if k % 2 == 0:
                plain_s.append(_seconds(lambda k=k: plain(k), plain_cpu))
                cache_s.append(_seconds(lambda k=k: cache(k), cache_cpu))
            else:
                cache_s.append(_seconds(lambda k=k: cache(k), cache_cpu))
                plain_s.append(_seconds(lambda k=k: plain(k), plain_cpu))
    load_after = os.getloadavg()[0]
    speedups = [p / c for p, c in zip(plain_s, cache_s)]
    speedup = float(np.median(speedups))
    cores = usable_cores()
    spread = max(speedups) / min(speedups)
    # The load average counts our own busy processes too (up to ``workers`` of them).
    others = max(load_before, load_after - workers)
    contended = others + workers > cores + 0.25
    if min(speedups) >= target:
        verdict = f"at least {target}x in every pair"
    elif contended or spread >= 1.15:
        verdict = (f"inconclusive: other work was running (load average {others:.2f} besides "
                   f"this bench on {cores} cores) or the ratios spread {spread:.2f}x; "
                   "repeat on an idle machine")
    else:
        verdict = f"below {target}x on a quiet machine"
    return {
        "images": n_images, "size": size, "image_size": image_size, "workers": workers,
        "repeats": repeats, "cores": cores,
        "decoder_images": len(few), "decoder_ms": decoder * 1000,
        "default_decoder_ms": default * 1000, "decoder_speedup": default / decoder,
        "plain_s": plain_s, "cache_s": cache_s, "speedups": speedups, "speedup": speedup,
        # CPU seconds barely depend on other load: the pool's own extra work.
        "plain_cpu_s": plain_cpu, "cache_cpu_s": cache_cpu,
        "cpu_overhead": float(np.median([c / p for p, c in zip(plain_cpu, cache_cpu)])) - 1,
        # The wall ratio with a free core per worker, perfect balance and the CPU costs
        # measured here (which themselves grow with other load: cache and memory contention).
        "cpu_speedup": float(np.median([workers * p / c for p, c in zip(plain_cpu, cache_cpu)])),
        "load_before": load_before, "load_after": load_after, "verdict": verdict,
    }


def _seconds(fn, cpu: list[float] | None = None) -> float:
    """Wall seconds of ``fn()``; appends its CPU seconds (this process and the child
    processes it waited for) to ``cpu`` when given."""
    import resource

    def used() -> float:
        return sum(u.ru_utime + u.ru_stime for u in
                   (resource.getrusage(resource.RUSAGE_SELF),
                    resource.getrusage(resource.RUSAGE_CHILDREN)))

    started, cpu_started = time.perf_counter(), used()
    fn()
    wall = time.perf_counter() - started
    if cpu is not None:
        cpu.append(used() - cpu_started)
    return wall
