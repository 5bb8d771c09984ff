"""The ``ray`` executor: spread runs over a Ray cluster, one GPU (or CPU slot) per run.

Each run is still a ``harness.runs.worker`` process on some node; the run folders must live on
storage every node sees (a shared file system), as the image cache must. The runner reads
each run's outcome from its folder afterwards, so nothing has to travel back from a node.
``--fail-fast`` stops only the runs not yet scheduled.
"""

from __future__ import annotations

from harness import ExecutorSpec, Option, hookimpl
from harness.errors import HarnessError


def execute(runs, work, options) -> None:
    try:
        import ray
    except ImportError as exc:
        raise HarnessError("executor 'ray' needs Ray: pip install 'cxr-harness[ray]'") from exc
    ray.init(address=options.get("address", "auto"), ignore_reinit_error=True)
    gpus = float(options.get("gpus_per_run", 1))
    remote = ray.remote(num_gpus=gpus, num_cpus=float(options.get("cpus_per_run", 2)))(
        lambda run: work(run))
    ray.get([remote.remote(run) for run in runs])


@hookimpl
def register_executors(register):
    register(ExecutorSpec(
        name="ray",
        description="A Ray cluster: one run per GPU on any node (shared file system needed)",
        execute=execute,
        options=(Option("address", "Ray cluster address", "auto"),
                 Option("gpus_per_run", "GPUs per run", 1),
                 Option("cpus_per_run", "CPUs per run", 2)),
    ))
