"""The ``ray`` executor: spread runs over a Ray cluster, one GPU (or CPU slot) per run.

Each run is still a ``harness.runs.worker`` process on some node; the run folders must live on
storage every node sees (a shared file system), as the image cache must. The runner reads
each run's outcome from its folder afterwards, so nothing has to travel back from a node.
``--fail-fast`` stops only the runs not yet scheduled.
"""

from __future__ import annotations

from pydantic import Field

from harness import ExecutorSpec, HarnessError, Options, hookimpl


class RayOptions(Options):
    address: str = Field("auto", description="Ray cluster address")
    gpus_per_run: float = Field(1, ge=0, description="GPUs per run")
    cpus_per_run: float = Field(2, gt=0, description="CPUs per run")


def execute(runs, work, options: RayOptions) -> None:
    try:
        import ray
    except ImportError as exc:
        raise HarnessError("executor 'ray' needs Ray: pip install 'cxr-harness[ray]'") from exc
    ray.init(address=options.address, ignore_reinit_error=True)
    remote = ray.remote(num_gpus=options.gpus_per_run, num_cpus=options.cpus_per_run)(
        lambda run: work(run))
    ray.get([remote.remote(run) for run in runs])


@hookimpl
def register_executors(register):
    register(ExecutorSpec(
        name="ray",
        description="A Ray cluster: one run per GPU on any node (shared file system needed)",
        execute=execute,
        options=RayOptions,
    ))
