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

import os
import signal
import socket
import threading
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
    parallel: int | None = Field(None, ge=1, description="at most this many runs at once "
                                 "(default: as many as the cluster's CPUs and GPUs allow)")
    connect_timeout: float = Field(15, gt=0, description="seconds to reach the cluster before "
                                   "the run stops with an error")


def host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of an address such as ``10.0.0.5:6379`` or ``ray://head:10001``."""
    rest = address.split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":")
    return (host or "127.0.0.1", int(port)) if port.isdigit() else None


def connect(ray, options: RayOptions) -> None:
    """``ray.init`` within ``connect_timeout`` seconds, or one line saying what is wrong.

    A closed port is found by a plain TCP connect first (Ray itself retries for about 30 s);
    anything else (token authentication refused, a version mismatch, no answer) is
    whatever ``ray.init`` raised, or its silence, within the same time.
    """
    address = options.address or os.environ.get("RAY_ADDRESS")
    where = f"the Ray cluster at {address}" if address else "a local Ray instance"
    fix = "; set executor.options.address (or RAY_ADDRESS) to a running cluster"
    target = host_port(address) if address else None
    if target is not None:
        try:
            socket.create_connection(target, timeout=options.connect_timeout).close()
        except OSError as exc:
            raise HarnessError(f"executor 'ray': cannot reach {where}: "
                               f"{exc.strerror or exc}{fix}") from None
    outcome: dict[str, BaseException] = {}

    def init() -> None:
        try:
            ray.init(address=options.address, runtime_env=options.runtime_env,
                     ignore_reinit_error=True)
        except BaseException as exc:  # noqa: BLE001 - reported below, in one line
            outcome["error"] = exc

    thread = threading.Thread(target=init, name="ray-init", daemon=True)
    thread.start()
    thread.join(options.connect_timeout)
    if thread.is_alive():
        raise HarnessError(f"executor 'ray': no answer from {where} within "
                           f"{options.connect_timeout:g} s (executor.options.connect_timeout)"
                           f"{fix}")
    if "error" in outcome:
        exc = outcome["error"]
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise HarnessError(f"executor 'ray': cannot connect to {where}: "
                           f"{type(exc).__name__}: {first}{fix}") from None


def execute(runs, work, options: RayOptions) -> None:
    try:
        import ray
    except ImportError as exc:
        raise HarnessError("executor 'ray' needs Ray: pip install 'cxr-harness[ray]'") from exc
    gpus, cpus, retries = options.gpus_per_run, options.cpus_per_run, options.max_retries
    started_here = not ray.is_initialized()
    if started_here:
        connect(ray, options)
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
        waiting = list(runs)

        def submit() -> tuple[Any, Any]:
            run = waiting.pop(0)
            work.started(run, "queued on Ray")
            return task.remote(str(work.run_dir(run).resolve()), env), run

        wait(ray, submit, len(waiting), options.parallel or len(waiting), work)
    finally:
        if started_here:
            ray.shutdown()


def wait(ray, submit, total: int, parallel: int, work) -> None:
    """Keep ``parallel`` tasks in flight (``submit()`` starts the next one) and read each
    run's outcome as its task ends; on a stop, cancel the unfinished tasks."""
    submitted: dict[Any, Any] = {}
    pending: list[Any] = []
    try:
        while total or pending:
            while total and len(pending) < parallel:
                ref, run = submit()
                submitted[ref] = run
                pending.append(ref)
                total -= 1
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
