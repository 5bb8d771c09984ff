"""``harness bench --study``: the strategy study at full size, timed with the fake engine.

The study is ``suites/sampling.yaml`` (12 strategies × 5 folds × 3 seeds = 180 runs, its
split, budget, samplers and report settings) with the data and network swapped for ones
that cost nothing: 15,000 built-in synthetic images (the paper's data size) and the
framework-free ``centroid`` engine (``harness.testing.fakes``). What remains is the
harness's own cost, which is what this measures:

* ``prepare``: ``harness data prepare`` (records, image cache), once per study;
* ``run``: ``harness run --no-report``, and how much of it the engine's ``train_epoch`` and
  ``predict`` calls took (a plugin module written next to the suite times them); the rest,
  per run, is the harness's overhead (planning, writing, scoring, bookkeeping);
* ``report``: ``harness report`` of the finished study;
* ``rerun``: ``harness run`` again on the finished study (nothing to train, report current);
* peak resident memory of each command (the largest process of its tree, ``wait4``) and
  the bytes of the run folders.

Every command runs as a subprocess of ``--python`` (default: this interpreter), so one
driver times two versions of the harness in the same conditions. Fewer runs (``--runs``
45 or 90) keep the first 3 or 6 strategies, all folds and seeds, to show how costs grow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from harness.errors import HarnessError

#: Strategies per study size (all 5 folds × 3 seeds each).
SIZES = {45: 3, 90: 6, 180: 12}

#: The plugin module the study's workers load: it wraps the fake engine's ``train_epoch``
#: and ``predict`` with a clock and appends the seconds of each call to the file named by
#: ``HARNESS_STUDY_CLOCK``. Written next to the suite (not imported from this package) so
#: an older harness being compared runs it unchanged.
CLOCK_PLUGIN = '''\
"""Seconds in the fake engine's train_epoch and predict calls, per process."""
import atexit
import os
import time

from harness.testing import fakes

_spent = [0.0, 0.0]  # wall, CPU


def _timed(method):
    def wrapper(self, *args, **kwargs):
        start, cpu = time.perf_counter(), time.process_time()
        try:
            return method(self, *args, **kwargs)
        finally:
            _spent[0] += time.perf_counter() - start
            _spent[1] += time.process_time() - cpu
    return wrapper


if not getattr(fakes.CentroidModel, "_study_clock", False):
    fakes.CentroidModel.train_epoch = _timed(fakes.CentroidModel.train_epoch)
    fakes.CentroidModel.predict = _timed(fakes.CentroidModel.predict)
    fakes.CentroidModel._study_clock = True


def _write():
    path = os.environ.get("HARNESS_STUDY_CLOCK")
    if path and _spent[0]:
        with open(path, "a") as fh:
            fh.write(f"{os.getpid()} {_spent[0]:.6f} {_spent[1]:.6f}\\n")
        _spent[0] = _spent[1] = 0.0


atexit.register(_write)
_end = fakes.CentroidModel.predict


def _predict_and_flush(self, *args, **kwargs):
    out = _end(self, *args, **kwargs)
    _write()  # after every predict call: warm workers leave through os._exit (no atexit)
    return out


fakes.CentroidModel.predict = _predict_and_flush
'''


def sampling_suite() -> dict[str, Any]:
    """``suites/sampling.yaml`` as shipped with this checkout."""
    here = Path(__file__).resolve().parents[2]
    for path in (here / "suites" / "sampling.yaml",
                 here / "harness" / "suites" / "sampling.yaml"):
        if path.is_file():
            return yaml.safe_load(path.read_text())
    raise HarnessError(f"suites/sampling.yaml: not found under {here}; the study benchmark "
                       "derives its suite from it")


def study_suite(runs: int, cache_dir: Path, images: int = 15_000, image_size: int = 32,
                epochs_per_phase: int = 25) -> dict[str, Any]:
    """The sampling study with synthetic images and the fake engine (see module docstring)."""
    if runs not in SIZES:
        raise HarnessError(f"--runs {runs}: expected one of {', '.join(map(str, SIZES))}")
    suite = sampling_suite()
    strategies = list(suite["matrix"]["sampler"])
    if len(strategies) < SIZES[runs]:
        raise HarnessError(f"suites/sampling.yaml has {len(strategies)} strategies; "
                           f"--runs {runs} needs {SIZES[runs]}")
    suite.update(
        name=f"study-{runs}", description=f"suites/sampling.yaml, {runs} runs, fake engine",
        plugins=["harness.testing.fakes", "study_clock"], image_size=image_size,
        cache_dir=str(cache_dir),
        datasets=[{"name": "synthetic",
                   "options": {"n": images, "seed": 0, "images_per_patient": 2}}])
    suite["matrix"].update(backbone=["pixels"], engine=["centroid"],
                           sampler=strategies[:SIZES[runs]])
    suite["training"].update(weights="none", head="gap", device="cpu", threads=1,
                             epochs_per_phase=epochs_per_phase)
    return suite


def _timed(cmd: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    """Wall seconds, exit code and peak RSS (largest process of the tree) of ``cmd``."""
    start = time.perf_counter()
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=log.parent)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise HarnessError(f"{' '.join(cmd)}: exit code {proc.returncode}; see {log}")
    return {"seconds": round(seconds, 3),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def _folder_bytes(path: Path) -> dict[str, Any]:
    """Bytes of every run folder, in all and by file name."""
    total, by_name, folders = 0, {}, 0
    for run in path.iterdir():
        if not run.is_dir():
            continue
        folders += 1
        for f in run.rglob("*"):
            if f.is_file():
                size = f.stat().st_size
                total += size
                key = f.relative_to(run).parts[0]
                by_name[key] = by_name.get(key, 0) + size
    return {"total": total, "folders": folders,
            "per_run": round(total / max(folders, 1)),
            "by_file_per_run": {k: round(v / max(folders, 1))
                                for k, v in sorted(by_name.items(), key=lambda kv: -kv[1])}}


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def run_study(out: Path, runs: int = 180, python: str = sys.executable,
              cache_dir: Path | None = None, echo=print, **suite_options: Any) -> dict[str, Any]:
    """Run, report and re-run the study under ``out``; the measurements as a dict."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(cache_dir).resolve() if cache_dir else out / "cache"
    suite_file = out / f"study-{runs}.yaml"
    suite_file.write_text(yaml.safe_dump(study_suite(runs, cache_dir, **suite_options),
                                         sort_keys=False))
    (out / "study_clock.py").write_text(CLOCK_PLUGIN)
    clock = out / f"study-{runs}.clock"
    clock.unlink(missing_ok=True)
    env = {**os.environ, "HARNESS_STUDY_CLOCK": str(clock),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(out),
                                                       os.environ.get("PYTHONPATH")]))}
    harness = [python, "-c", "from harness.cli import main; main()"]
    runs_dir, reports_dir = out / "runs", out / "reports"
    log = out / f"study-{runs}.log"
    result: dict[str, Any] = {"runs": runs, "python": python, "load_before": _load()}

    def step(name: str, *args: str) -> dict[str, Any]:
        echo(f"study-{runs}: {name} (load {_load()})")
        figures = _timed([*harness, *args], env, log)
        figures["load_after"] = _load()
        result[name] = figures
        echo(f"study-{runs}: {name} {figures['seconds']:.1f} s, "
             f"peak {figures['peak_rss_mb']:.0f} MB")
        return figures

    step("prepare", "-q", "data", "prepare", str(suite_file))
    step("run", "-q", "run", str(suite_file), "--no-report", "--runs-dir", str(runs_dir),
         "--reports-dir", str(reports_dir))
    lines = [line.split() for line in clock.read_text().splitlines()] if clock.exists() else []
    engine, engine_cpu = (sum(float(f[i]) for f in lines) for i in (1, 2))
    figures = result["run"]
    figures["engine_seconds"], figures["engine_cpu_seconds"] = round(engine, 3), round(engine_cpu, 3)
    # The harness's own cost per run: everything outside the engine's calls. CPU seconds
    # are the figure to compare on a shared machine (waiting for a core is not work).
    figures["overhead_s_per_run"] = round((figures["seconds"] - engine) / runs, 4)
    figures["overhead_cpu_s_per_run"] = round((figures["cpu_seconds"] - engine_cpu) / runs, 4)
    step("report", "-q", "report", str(runs_dir / f"study-{runs}"), "--out",
         str(reports_dir / f"study-{runs}"))
    step("rerun", "-q", "run", str(suite_file), "--runs-dir", str(runs_dir),
         "--reports-dir", str(reports_dir))
    result["bytes"] = _folder_bytes(runs_dir / f"study-{runs}")
    html = reports_dir / f"study-{runs}" / "index.html"
    result["report_html_bytes"] = html.stat().st_size if html.exists() else None
    (out / f"study-{runs}.json").write_text(json.dumps(result, indent=2))
    return result
