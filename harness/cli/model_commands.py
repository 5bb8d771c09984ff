"""``harness describe`` and ``harness bench``: model facts and speeds, per engine.

The work happens in ``harness.cli.describe``, run in a child process per engine so that
TensorFlow and torch never share a process; this module imports neither.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import click

from harness.errors import HarnessError


def run_child(task: str, timeout: float | None = None, **kwargs: Any) -> dict[str, Any]:
    """Run ``harness.cli.describe`` ``task`` in a fresh Python and return its JSON result."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    cmd = [sys.executable, "-m", "harness.cli.describe", task, json.dumps(kwargs)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise HarnessError(f"{task} did not finish within {timeout:.0f} s") from exc
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    try:
        result = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise HarnessError(f"{task} failed (exit {proc.returncode}):\n{tail}") from None
    if "error" in result:
        raise HarnessError(result["error"])
    return result["ok"]


def _check_backbone(name: str, engine: str | None, plugins: tuple[str, ...], registry=None):
    """Fail early, without a framework, on an unknown backbone or a missing build; returns
    the backbone's description (``harness.plugin.info``) and the engine to build it with."""
    from harness.plugin.info import default_engine, framework_missing, spec_info
    from harness.plugin.registry import build_registry

    registry = registry or build_registry(plugins)
    info = spec_info(registry, "backbones", name, schema=False)
    engine = engine or default_engine(registry, name)
    missing = framework_missing(registry.get("engines", engine))
    if missing:
        raise HarnessError(missing)
    if registry.get("engines", engine).builder not in info["engines"]:
        raise HarnessError(f"backbone {name!r} has no {engine} build; it supports: "
                           f"{', '.join(info['engines'])}")
    return info, engine


def _n(value: int) -> str:
    return f"{value:,}"


@click.command("describe")
@click.argument("kind")
@click.argument("name")
@click.option("--engine", default=None,
              help="Backbones: the engine that builds it (default: an installed one).")
@click.option("--image-size", type=int, default=300, show_default=True,
              help="Backbones: input size.")
@click.option("--head", type=click.Choice(["paper", "gap"]), default="paper", show_default=True)
@click.option("--classes", "n_classes", type=int, default=3, show_default=True,
              help="Number of classes of the head.")
@click.option("--weights", default="none", show_default=True,
              help="random, a source the backbone declares (listed with --no-build), "
                   "or a weights file.")
@click.option("--no-build", is_flag=True, help="Backbones: options only, build nothing.")
@click.option("--plugin", "plugins", multiple=True, help="Also load this plugin module.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def describe_command(kind, name, engine, image_size, head, n_classes, weights, no_build,
                     plugins, as_json):
    """What KIND NAME is: description, plugin and version, options (type, default, help).

    KIND is dataset, backbone, sampler, splitter, engine, executor or tracker. A backbone is
    also built (in a child process) for its feature-map shape and parameter counts with the
    shared head. Example: harness describe backbone tiny --engine torch --image-size 64.
    """
    from harness.plugin.info import kind_of, render, spec_info
    from harness.plugin.registry import build_registry

    kind = kind_of(kind)
    if kind != "backbones" or no_build:
        info = spec_info(build_registry(plugins), kind, name)
        click.echo(json.dumps(info, indent=2) if as_json else "\n".join(render(info)))
        return
    spec, engine = _check_backbone(name, engine, plugins)
    info = run_child("describe", engine=engine, backbone=name, image_size=image_size, head=head,
                     weights=weights, n_classes=n_classes, plugins=list(plugins))
    if as_json:
        click.echo(json.dumps({**spec, **info}, indent=2))
        return
    click.echo("\n".join(render(spec)))
    h, w, c = info["feature_shape"]
    click.echo(f"backbone {name} ({engine}), input {image_size}x{image_size}x3, head {head}")
    click.echo(f"feature map: {h}x{w}x{c}")
    click.echo(f"{'parameters':<12}{'total':>14}{'trainable':>14}{'non-trainable':>16}")
    for part in ("backbone", "model"):
        p = info["params"][part]
        click.echo(f"{part:<12}{_n(p['total']):>14}{_n(p['trainable']):>14}"
                   f"{_n(p['non_trainable']):>16}")


def bench_backbones(registry, backbones: tuple[str, ...]) -> list[str]:
    """The backbones given, or else those whose spec says ``bench_default``."""
    if backbones:
        return list(backbones)
    found = [name for name, entry in registry.entries["backbones"].items()
             if entry.spec.bench_default]
    if not found:
        raise HarnessError("no installed backbone is a bench default (BackboneSpec."
                           "bench_default); name one with --backbone")
    return found


def bench_engines(registry, engine: str, backbones: list[str]
                  ) -> tuple[list[str], dict[str, str]]:
    """The engines to time, and those ``all`` skips with the reason.

    ``all`` is every registered engine whose framework is installed and that builds every
    backbone; a named engine must be both, or the command fails.
    """
    from harness.plugin.info import framework_installed, framework_missing

    if engine != "all":
        missing = framework_missing(registry.get("engines", engine))
        if missing:
            raise HarnessError(missing)
        return [engine], {}
    chosen, skipped = [], {}
    for name in registry.names("engines"):
        spec = registry.get("engines", name)
        lacking = [b for b in backbones
                   if spec.builder not in registry.get("backbones", b).builders]
        if not framework_installed(spec.framework):
            skipped[name] = f"{spec.framework} is not installed"
        elif lacking:
            skipped[name] = f"no {name} build of {', '.join(lacking)}"
        else:
            chosen.append(name)
    if not chosen:
        raise HarnessError("no engine can time " + ", ".join(backbones) + ": "
                           + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    return chosen, skipped


@click.command("bench")
@click.option("--engine", default="all", show_default=True,
              help="An engine (harness list engines), or all: every engine whose framework "
                   "is installed.")
@click.option("--backbone", "backbones", multiple=True,
              help="Backbone to time (repeatable); default: the backbones whose plugin marks "
                   "them as bench defaults (harness describe backbone NAME).")
@click.option("--image-size", type=int, default=300, show_default=True)
@click.option("--batch-size", type=int, default=None,
              help="Default: each backbone's published batch size, else 30.")
@click.option("--steps", type=int, default=10, show_default=True,
              help="Timed steps per measurement (after one warm-up step).")
@click.option("--head", type=click.Choice(["paper", "gap"]), default="paper", show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or a GPU.")
@click.option("--plugin", "plugins", multiple=True, help="Also load this plugin module.")
@click.option("--overhead", is_flag=True,
              help="Also measure the per-epoch work outside training steps (selection, "
                   "checkpoint copies, history, progress) and project the paper protocol.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
              default="auto", show_default=True,
              help="As training.precision: auto is bf16 (fp16 where bf16 is missing) on a GPU, "
                   "fp32 on the CPU.")
@click.option("--compile", "compile_modes", type=click.Choice(["off", "on", "both"]),
              default="off", show_default=True,
              help="As training.compile (torch.compile; XLA in Keras); both: time each "
                   "network with and without.")
@click.option("--peak-tflops", type=float, default=None,
              help="The device's peak TFLOP/s at the precision timed, for the %-of-peak "
                   "columns (default: a datasheet figure for H100, H200 and A100 GPUs).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--study", is_flag=True,
              help="Instead: the harness's own costs on suites/sampling.yaml's study with the "
                   "fake engine on 15,000 synthetic images (run, report, re-run; seconds, "
                   "peak memory, run-folder bytes).")
@click.option("--runs", "study_runs", type=click.Choice(["45", "90", "180"]), multiple=True,
              help="--study: study size(s) to time (3, 6 or 12 strategies x 5 folds x 3 "
                   "seeds); default 180.")
@click.option("--out", "study_out", type=click.Path(file_okay=False), default="bench-study",
              show_default=True, help="--study: where its suites, runs and reports go.")
@click.option("--epochs", "study_epochs", type=click.IntRange(min=1), default=25,
              show_default=True, help="--study: epochs per phase (suites/sampling.yaml: 25).")
@click.option("--python", "study_python", default=None,
              help="--study: the Python whose harness is timed (default: this one), e.g. "
                   "an older checkout's virtualenv, to compare versions.")
def bench_command(engine, backbones, image_size, batch_size, steps, head, device, plugins,
                  overhead, precision, compile_modes, peak_tflops, as_json, study, study_runs,
                  study_out, study_epochs, study_python):
    """Training, inference and input-pipeline images/s, vs the paper's input pipeline.

    Every engine runs in its own process and is timed through the primitives the training
    loop calls. The pipeline figure is uint8 cache → augmented batch on the device; the
    baseline is Keras ImageDataGenerator(...).flow with the paper's Table 2 settings, timed
    on the same machine in the same run.
    """
    from harness.plugin.info import framework_installed
    from harness.plugin.registry import build_registry

    if study:
        return study_bench(study_runs or ("180",), study_out, study_python, as_json,
                           study_epochs)
    if steps < 1:
        raise HarnessError(f"--steps must be >= 1; got {steps}")
    registry = build_registry(plugins)
    backbones = bench_backbones(registry, backbones)
    engines, skipped = bench_engines(registry, engine, backbones)
    for e in engines:
        for b in backbones:
            _check_backbone(b, e, plugins, registry)
    results: dict[str, Any] = {"image_size": image_size, "steps": steps, "engines": {},
                               "skipped_engines": skipped}
    compiles = {"off": [False], "on": [True], "both": [False, True]}[compile_modes]
    for e in engines:
        for compiled in compiles:  # one process each: a compiled model never times the other
            child = run_child(
                "bench", engine=e, backbones=backbones, image_size=image_size,
                batch_size=batch_size, steps=steps, device=device, plugins=list(plugins),
                head=head, overhead=overhead, precision=precision, compile=compiled)
            results["engines"][e + ("+compile" if compiled else "")] = child
    _add_utilisation(results, peak_tflops)
    if overhead:
        _add_projections(results)
    # The baseline is Keras's ImageDataGenerator: without TensorFlow there is none.
    results["paper_pipeline"] = (
        run_child("paper-pipeline", image_size=image_size, batch_size=batch_size, steps=steps)
        if framework_installed("tensorflow") else None)
    paper_rate = (results["paper_pipeline"] or {}).get("images_per_s")
    for r in results["engines"].values():
        rate = r["pipeline"]["images_per_s"]
        r["pipeline"]["ratio_vs_paper"] = round(rate / paper_rate, 2) if paper_rate else None
        slowest_train = min((m["train_images_per_s"] for m in r["models"]), default=0)
        r["pipeline"]["ratio_vs_slowest_training"] = (
            round(rate / slowest_train, 2) if slowest_train else None)
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    click.echo(f"image size {image_size}, {steps} timed steps per figure")
    click.echo(f"{'engine':<15}{'device':<10}{'precision':<16}{'backbone':<18}{'batch':>6}"
               f"{'train img/s':>13}{'infer img/s':>13}{'GFLOP/img':>11}{'train %peak':>13}"
               f"{'infer %peak':>13}")
    for e, r in results["engines"].items():
        for m in r["models"]:
            click.echo(f"{e:<15}{r['device'][:9]:<10}{r['precision']:<16}{m['backbone']:<18}"
                       f"{m['batch_size']:>6}{m['train_images_per_s']:>13.1f}"
                       f"{m['infer_images_per_s']:>13.1f}{_fmt(m['forward_flops'], 1e-9, 11, 2)}"
                       f"{_fmt(m['train_peak_frac'], 100, 13, 1)}"
                       f"{_fmt(m['infer_peak_frac'], 100, 13, 1)}")
    peaks = {r["peak_flops"] for r in results["engines"].values()}
    click.echo("%peak: model FLOPs (3 forward passes per trained image, 1 per predicted "
               "image) x rate / the device's peak "
               + (f"({', '.join(f'{p / 1e12:.1f}' for p in sorted(peaks) if p)} TFLOP/s)"
                  if any(peaks) else "(not known for this device: --peak-tflops N gives it)"))
    for e, reason in skipped.items():
        click.echo(f"skipped engine {e}: {reason}")
    click.echo("paper pipeline (ImageDataGenerator.flow, Table 2): "
               + (f"{paper_rate:.1f} img/s" if results["paper_pipeline"] else
                  "not measured: tensorflow is not installed"))
    for e, r in results["engines"].items():
        p = r["pipeline"]
        ratio = f"{p['ratio_vs_paper']:.2f}x" if p["ratio_vs_paper"] is not None else "n/a"
        margin = (f"; {p['ratio_vs_slowest_training']:.2f}x the slowest training rate"
                  if p["ratio_vs_slowest_training"] is not None else "")
        click.echo(f"{e} pipeline (cache -> augmented device batch): "
                   f"{p['images_per_s']:.1f} img/s = {ratio} the paper's{margin}")
    if overhead:
        _echo_overhead(results)


def study_bench(sizes, out: str, python: str | None, as_json: bool, epochs: int = 25) -> None:
    """``harness bench --study``: see ``harness.testing.study_bench``."""
    from pathlib import Path

    from harness.testing.study_bench import run_study

    out_dir = Path(out)
    results = [run_study(out_dir / f"study-{n}", int(n), python or sys.executable,
                         cache_dir=out_dir / "cache", echo=lambda m: click.echo(m, err=True),
                         epochs_per_phase=epochs)
               for n in sizes]
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    click.echo(f"{'runs':>5}{'run s':>9}{'engine s':>10}{'overhead s/run':>16}{'report s':>10}"
               f"{'report MB':>11}{'rerun s':>9}{'KB/run':>9}{'folders MB':>12}  load")
    for r in results:
        click.echo(f"{r['runs']:>5}{r['run']['seconds']:>9.1f}{r['run']['engine_seconds']:>10.1f}"
                   f"{r['run']['overhead_s_per_run']:>16.3f}{r['report']['seconds']:>10.1f}"
                   f"{r['report']['peak_rss_mb']:>11.0f}{r['rerun']['seconds']:>9.1f}"
                   f"{r['bytes']['per_run'] / 1024:>9.0f}{r['bytes']['total'] / 1e6:>12.1f}"
                   f"  {r['load_before']}")


def _fmt(value: float | None, scale: float, width: int, digits: int) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value * scale:>{width}.{digits}f}"


def _add_utilisation(results: dict[str, Any], peak_tflops: float | None) -> None:
    """Each rate as a share of the device's peak. One network has the same FLOPs in every
    engine, so a count from one engine (torch counts them) serves the others too."""
    from harness.training.peaks import peak_flops, utilisation

    flops = {m["backbone"]: m["forward_flops"] for r in results["engines"].values()
             for m in r["models"] if m.get("forward_flops")}
    for r in results["engines"].values():
        peak = (peak_tflops * 1e12 if peak_tflops
                else peak_flops(r["device"], r["precision"]))
        r["peak_flops"] = peak
        for m in r["models"]:
            m["forward_flops"] = m.get("forward_flops") or flops.get(m["backbone"])
            for kind, training in (("train", True), ("infer", False)):
                m[f"{kind}_peak_frac"] = (
                    utilisation(m["forward_flops"], m[f"{kind}_images_per_s"], peak, training)
                    if peak and m["forward_flops"] else None)


def _add_projections(results: dict[str, Any]) -> None:
    """Per engine and backbone: the overhead fractions and protocol hours, measured on this
    device and, without a GPU, on the modelled one."""
    from harness.training.overhead import modelled_gpu, project

    for r in results["engines"].values():
        book = r["bookkeeping_s_per_epoch"]
        on_gpu = r["device"] not in ("cpu", "CPU")
        for m in r["models"]:
            c = m["copies"]
            m["projection"] = {"device": project(
                m["train_images_per_s"], m["infer_images_per_s"], c["state_copy_s"],
                c["best_copy_s"], book)}
            if not on_gpu:
                m["projection"]["modelled_gpu"] = modelled_gpu(c, book)


def _echo_overhead(results: dict[str, Any]) -> None:
    from harness.training.overhead import (
        EPOCH_IMAGES,
        EPOCHS_PER_PHASE,
        FOLDS,
        GPU_MODEL,
        PHASES,
        SELECT_IMAGES,
    )

    click.echo(f"\nper-epoch overhead, % of a paper-sized epoch ({EPOCH_IMAGES} training images; "
               f"selection on {SELECT_IMAGES} images after every epoch; a checkpoint per "
               f"phase end and per 10 minutes); protocol: {FOLDS} folds x {PHASES} phases x "
               f"{EPOCHS_PER_PHASE} epochs")
    click.echo(f"{'engine':<15}{'backbone':<12}{'on':<10}{'epoch s':>9}{'select':>8}"
               f"{'ckpt':>7}{'loop':>7}{'total':>8}{'no-sel':>8}{'hours':>8}")
    modelled = False
    for e, r in results["engines"].items():
        for m in r["models"]:
            for where, p in m["projection"].items():
                modelled |= where == "modelled_gpu"
                label = r["device"] if where == "device" else "GPU*"
                click.echo(f"{e:<15}{m['backbone']:<12}{label[:9]:<10}{p['epoch_s']:>9.3f}"
                           f"{100 * p['select_frac']:>7.1f}%{100 * p['checkpoint_frac']:>6.2f}%"
                           f"{100 * p['bookkeeping_frac']:>6.2f}%{100 * p['overhead_frac']:>7.1f}%"
                           f"{100 * p['overhead_frac_without_selection']:>7.2f}%"
                           f"{p['protocol_hours']:>8.2f}")
        for m in r["models"]:
            c = m["copies"]
            click.echo(f"  {e} {m['backbone']}: checkpoint {c['state_bytes'] / 1e6:.0f} MB "
                       f"(fast copy {c['state_copy_s']:.3f} s, background write "
                       f"{c['write_s']:.2f} s), best-model copy {c['best_copy_s']:.3f} s; "
                       f"loop bookkeeping {1000 * r['bookkeeping_s_per_epoch']:.2f} ms/epoch")
    if modelled:
        click.echo(f"* no GPU here: GPU rows are modelled, not measured: "
                   f"{GPU_MODEL['train_images_per_s']:.0f} training img/s (the goal rate), "
                   f"inference {GPU_MODEL['infer_factor']:.0f}x that, copies at "
                   f"{GPU_MODEL['copy_bytes_per_s'] / 1e9:.0f} GB/s; selection and "
                   "bookkeeping as measured here")
