"""The ``ray`` executor: spread runs over a Ray cluster, one GPU (or a share, or none) per run.

Each run is a Ray task that starts ``python -m harness.runs.worker RUN_DIR`` on the node Ray
picks, so the run folders and the image cache must live on storage every node sees (a
shared file system). A task carries nothing but the run folder's path; the runner reads
each run's outcome back from its folder.

A task whose node dies, or whose worker is killed (out of memory), is retried by Ray up to
``max_retries`` times, on any node; the retried worker resumes the run from its last
checkpoint. ``--fail-fast`` and Ctrl-C cancel the tasks that have not finished: those not
started never start, running ones are interrupted (their workers record ``interrupted`` and
resume on the next ``harness run``).
"""

from __future__ import annotations

import signal
import time
from typing import Any

from pydantic import Field

from harness import ExecutorSpec, HarnessError, Options, hookimpl

#: Seconds the runs interrupted by a cancel get to record it before Ray is left.
CANCEL_GRACE = 40.0


class WorkerKilled(RuntimeError):
    """A run's worker was killed by a signal (out of memory, node trouble): Ray retries it."""


def run_task(run_dir: str, env: dict[str, str]) -> int:
    """One Ray task: the run's worker process on this node; returns its exit code."""
    from harness import run_worker

    code = run_worker(run_dir, env)
    if code < 0 and -code != signal.SIGINT:
        raise WorkerKilled(f"the worker of {run_dir} was killed by signal {-code}")
    return code


class RayOptions(Options):
    address: str | None = Field(None, description="Ray cluster address ('auto': the running "
                                "cluster; default: RAY_ADDRESS, a cluster on this machine, "
                                "else a new local one)")
    gpus_per_run: float = Field(1, ge=0, description="GPUs per run: 1, a fraction (0.5: two "
                                "runs per GPU), or 0 for CPU-only runs")
    cpus_per_run: float = Field(1, gt=0, description="CPUs per run")
    max_retries: int = Field(3, ge=0, description="times a run is retried when its node or "
                             "worker dies")
    runtime_env: dict[str, Any] | None = Field(None, description="Ray runtime_env when the "
                                               "harness starts Ray itself")


def execute(runs, work, options: RayOptions) -> None:
    try:
        import ray
    except ImportError as exc:
        raise HarnessError("executor 'ray' needs Ray: pip install 'cxr-harness[ray]'") from exc
    gpus, cpus, retries = options.gpus_per_run, options.cpus_per_run, options.max_retries
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=options.address, runtime_env=options.runtime_env,
                 ignore_reinit_error=True)
    try:
        have = ray.cluster_resources().get("GPU", 0)
        if gpus > have:
            raise HarnessError(
                f"executor 'ray': each run asks for gpus_per_run={gpus:g} GPU but the Ray "
                f"cluster has {have:g}; set executor.options.gpus_per_run: 0 to train on "
                "CPUs, or a fraction (0.5) to share a GPU between runs")
        # A CPU-only run must not grab a GPU that Ray gave to another task on its node.
        env = {"CUDA_VISIBLE_DEVICES": ""} if gpus == 0 else {}
        task = ray.remote(run_task).options(
            num_cpus=cpus, num_gpus=gpus, max_retries=retries, retry_exceptions=[WorkerKilled])
        submitted = {}
        for run in runs:
            ref = task.remote(str(work.run_dir(run).resolve()), env)
            submitted[ref] = run
            work.started(run, "queued on Ray")
        wait(ray, submitted, work)
    finally:
        if started_here:
            ray.shutdown()


def wait(ray, submitted: dict, work) -> None:
    """Read each run's outcome as its task ends; on a stop, cancel the unfinished tasks."""
    pending = list(submitted)
    try:
        while pending:
            # In slices: a Ctrl-C reaches Python only between them.
            ready, pending = ray.wait(pending, num_returns=1, timeout=1.0)
            for ref in ready:
                run = submitted[ref]
                try:
                    code, error = ray.get(ref), ""
                except ray.exceptions.RayError as exc:  # retries used up, or cancelled
                    code, error = None, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
                work.finished(run, code, 0.0, error)
    except BaseException:
        for ref in pending:
            ray.cancel(ref)
        deadline = time.monotonic() + CANCEL_GRACE
        while pending and time.monotonic() < deadline:
            _, pending = ray.wait(pending, num_returns=len(pending),
                                  timeout=max(0.1, deadline - time.monotonic()))
        raise


@hookimpl
def register_executors(register):
    register(ExecutorSpec(
        name="ray",
        description="A Ray cluster: one task per run on any node, retried where a node "
                    "dies (shared file system needed)",
        execute=execute,
        options=RayOptions,
    ))
