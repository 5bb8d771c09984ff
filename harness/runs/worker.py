"""One run in its own process: ``python -m harness.runs.worker RUN_DIR``.

A process per run keeps TensorFlow and torch apart and frees every byte of GPU memory
when a run ends. The worker reads only the run folder (``config.json``, ``plan.json``) and
the image cache, so it does not depend on how the runner prepared them.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import signal
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from harness.data.cache import open_cache
from harness.errors import HarnessError, one_line_warnings
from harness.interrupts import Interrupted
from harness.plugin import guard
from harness.plugin.registry import build_registry
from harness.plugin.resolved import ResolvedRun
from harness.plugin.specs import Phase, Plan
from harness.rundir.folder import DamagedFile, RunFolder, RunLock
from harness.rundir.predictions import predictions_csv
from harness.runs import attempts, launch, tracking
from harness.training.job import Job

#: Exit code of a worker that found its run already done by another process.
ALREADY_DONE = 3
#: Exit code of a worker told not to wait (``HARNESS_LOCK_WAIT=0``) for a busy run folder.
BUSY = 4
#: ``0``: a worker whose run folder is locked by another process exits with ``BUSY`` at once
#: (the runner comes back to the run after the others); anything else: it waits.
LOCK_WAIT_ENV = "HARNESS_LOCK_WAIT"


def load_job(run_dir: Path) -> tuple[Job, object]:
    """The run of ``run_dir`` as the loop trains it, and its engine: the resolved run read
    back from ``config.json``, the plan and the cache rows of its images."""
    folder = RunFolder(run_dir)
    config = folder.config()
    plan_file = folder.plan()
    plan_data = plan_file.to_json()
    registry = build_registry(config.suite.get("plugins", []))
    resolved = ResolvedRun.read(config, registry, folder.config_path)
    run = resolved.run
    engine = registry.get("engines", run.engine)
    backbone = registry.get("backbones", run.backbone)
    if engine.builder not in backbone.builders:
        raise HarnessError(f"backbone {run.backbone!r} has no build for engine {run.engine!r}; "
                           f"it supports: {', '.join(sorted(backbone.builders))}")
    # The blocks of this run's images are checked against their digests before training.
    cache = open_cache(resolved.cache, rows_of=[
        u for part in (plan_file.train, plan_file.select, plan_file.test) for u in part.uids])
    classes = list(resolved.classes)
    labels = np.full(len(cache.uids), -1, dtype=np.int64)
    parts = {}
    for part in ("train", "select", "test"):
        p = getattr(plan_file, part)
        rows = cache.rows(p.uids)
        try:
            labels[rows] = [classes.index(c) for c in p.labels]
        except ValueError as exc:
            raise DamagedFile(folder.plan_path, f"{part}: {exc}") from None
        parts[part] = rows
    plan_json = plan_file.plan
    try:
        plan = Plan(phases=[Phase(**p) for p in plan_json["phases"]],
                    class_weights=plan_json["class_weights"], loss=plan_json["loss"],
                    loss_options=plan_json["loss_options"], notes=plan_json["notes"])
    except (KeyError, TypeError) as exc:
        raise DamagedFile(folder.plan_path, f"unexpected plan ({exc})") from None
    training = resolved.training
    if plan_data.get("select_evaluations") is not None:
        # what planning fixed (harness.runs.runner.selection_evaluations)
        training = dataclasses.replace(training, select_evaluations=plan_data["select_evaluations"])
    # Every call into the engine and backbone plugins is guarded (harness.plugin.guard).
    backbone = dataclasses.replace(backbone, builders={
        name: functools.partial(guard.call, guard.who(registry, "backbones", run.backbone),
                                f"build ({name})", fn, run=run.run_id)
        for name, fn in backbone.builders.items()})
    engine = dataclasses.replace(engine, build=guard.guarded_build(
        engine.build, guard.who(registry, "engines", run.engine), run.run_id))
    job = Job(run=run, run_dir=run_dir, classes=classes, image_size=resolved.image_size,
              images=cache.images, labels=labels, train=parts["train"], select=parts["select"],
              test=parts["test"], plan=plan, training=training, backbone=backbone,
              resolved=resolved)
    return job, engine


def run(run_dir: Path, trackers: tracking.Trackers | None = None,
        attempt: attempts.Attempt | None = None) -> None:
    folder = RunFolder(run_dir)
    attempt = attempt or attempts.begin(folder, time.time())
    started = attempt.started
    trackers = trackers if trackers is not None else tracking.Trackers()
    folder.write_status("running", started=started, **attempt.fields(started))
    job, engine = load_job(run_dir)
    if trackers:
        job.tracker = trackers
        trackers.run_start(tracking.run_info(run_dir, folder.config().to_json()))
    from harness.config.suite import available_cores
    from harness.training.loop import train

    # Planning resolves ``threads: 0`` (config.json records the count); only a run folder
    # written before that has 0 here.
    threads = job.training.threads or available_cores()
    probs = guard.check_probabilities(train(job, engine.build, threads=threads),
                                      len(job.test), job.n_classes,
                                      f"engine {job.run.engine!r}", "predict", job.run.run_id)
    plan_file = folder.plan()
    folder.write_predictions(predictions_csv(plan_file.test.uids, plan_file.test.labels, probs,
                                             job.classes))
    from harness.analysis.calibration import run_calibration
    from harness.analysis.metrics import compute_metrics

    table = folder.predictions(job.classes)
    patients = plan_file.test.patients  # bootstrap clusters: a patient's images
    n_boot = job.resolved.report.bootstrap
    metrics = compute_metrics(table, job.classes, bootstrap=n_boot, clusters=patients,
                              resampled="patients" if patients else "images")
    # Computed once here, so no report recomputes a run's figures (it reads them back).
    metrics["calibration"] = run_calibration(table.true, table.proba, n_boot,
                                             seed=int(job.run.fold))
    device = job.device or ("cpu" if str(job.training.device).lower() == "cpu" else "")
    now = time.time()
    folder.write_done(metrics, started=started, finished=now, seconds=now - started,
                      device=device, **attempt.fields(now))
    # Recorded done first: a crash before this line leaves a finished run with its
    # checkpoint, never an unfinished one without.
    folder.drop_checkpoints()
    if trackers:
        trackers.run_end(tracking.run_end(run_dir, "done", time.time() - started))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    run_dir = Path(argv[0])
    launch.worker_signals()
    one_line_warnings()
    started = time.time()
    lock = RunFolder(run_dir).lock()
    trackers = tracking.Trackers()
    attempt = None
    try:
        try:
            lock.acquire(timeout=0)
        except RunLock.Busy as exc:
            if os.environ.get(LOCK_WAIT_ENV, "1") == "0":
                print(f"{exc}; coming back to it later", file=sys.stderr, flush=True)
                return BUSY
            print(f"{exc}; waiting for it", file=sys.stderr, flush=True)
            lock.acquire()
        if RunFolder(run_dir).verified() is None:
            print(f"run {run_dir.name}: already done by another process", file=sys.stderr)
            return ALREADY_DONE
        attempt = attempts.begin(RunFolder(run_dir), started)
        trackers = tracking.for_run(run_dir)
        run(run_dir, trackers, attempt)
        return 0
    except BaseException as exc:  # noqa: BLE001 - record why; the runner goes on
        if isinstance(exc, KeyboardInterrupt):  # a second signal must not cut the record short
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        message = (str(exc) if isinstance(exc, HarnessError)
                   else f"{type(exc).__name__}: {exc}")
        if isinstance(exc, KeyboardInterrupt):  # the loop says where it stopped, if it did
            message = exc.detail if isinstance(exc, Interrupted) and exc.detail else "interrupted"
        state = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        if lock.is_held:  # a worker still waiting for the lock owns nothing to record in
            # A Ctrl-C or SIGTERM is no bug: its record says where it stopped, no traceback.
            now = time.time()
            RunFolder(run_dir).write_status(state, error=message, seconds=now - started,
                                            traceback=traceback.format_exc()
                                            if state == "failed" else "",
                                            **(attempt.fields(now) if attempt else {}))
        print(f"run {run_dir.name} {state}: {message}", file=sys.stderr)
        if trackers:
            trackers.run_end(tracking.run_end(run_dir, state, time.time() - started, message))
        return 130 if isinstance(exc, KeyboardInterrupt) else 1
    finally:
        tracking.worker_close(run_dir, trackers)
        lock.release()


if __name__ == "__main__":
    # The stdout of `harness run` (inherited) is for its results (--json): what plugins and
    # libraries print in a worker goes to stderr (a warm host's child does the same).
    os.dup2(2, 1)
    code = main()
    # Everything is on disk (the loop waited for its checkpoint writer, trackers closed):
    # skip the interpreter's teardown of torch/TensorFlow, which takes seconds.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
