"""The ``slurm`` executor: one Slurm job per run (or one job array), submitted with submitit.

Each job runs ``python -m harness.runs.worker RUN_DIR`` on the node Slurm picks, so the run
folders and the image cache must live on the cluster's shared file system. A job that is
preempted or reaches its time limit is requeued by submitit (Slurm signals it ahead of the
kill) and its worker resumes the run from its last checkpoint. The runner reads each run's
outcome back from its folder; submitit's own files (scripts, logs) go to ``logs``.

``cluster: local`` runs the same jobs as processes on this machine through submitit's local
executor: a suite can be tried, and the executor tested, without Slurm.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from harness import ExecutorSpec, HarnessError, Options, hookimpl


class SlurmOptions(Options):
    partition: str | None = Field(None, description="Slurm partition")
    account: str | None = Field(None, description="Slurm account")
    time_min: int = Field(240, ge=1, description="time limit per job in minutes (a run that "
                          "needs longer is requeued and resumes)")
    gpus_per_run: int = Field(1, ge=0, description="GPUs per job (0: CPU only)")
    cpus_per_run: int = Field(4, ge=1, description="CPUs per job")
    mem_gb: float | None = Field(None, gt=0, description="memory per job in GB (default: the "
                                 "partition's)")
    array: bool = Field(True, description="submit the runs as one job array")
    parallel: int | None = Field(None, ge=1, description="at most this many jobs at once "
                                 "(Slurm limits an array; otherwise, and on cluster: local, "
                                 "the harness holds back the rest)")
    max_requeues: int = Field(10, ge=0, description="times a job is requeued after a timeout")
    job_name: str = Field("harness", description="Slurm job name")
    logs: str | None = Field(None, description="folder for submitit's scripts and logs "
                             "(default: runs/<suite>/slurm)")
    parameters: dict[str, Any] = Field(default_factory=dict, description="any other submitit "
                                       "parameter, e.g. {slurm_qos: high, slurm_setup: "
                                       "['module load cuda']}")
    cluster: Literal["slurm", "local"] = Field("slurm", description="'slurm', or 'local' to "
                                               "run the jobs on this machine")
    poll_seconds: float = Field(10, gt=0, description="seconds between checks of the jobs' "
                                "states")


class RunJob:
    """What one job runs: the worker of one run folder. Checkpointable the way submitit
    expects (a ``checkpoint`` method): on preemption or timeout the same call is requeued,
    and the run resumes from its own checkpoint."""

    def __call__(self, run_dir: str, env: dict[str, str]) -> int:
        from harness import run_worker

        return run_worker(run_dir, env)

    def checkpoint(self, run_dir: str, env: dict[str, str]):
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, run_dir, env)


def parameters(options: SlurmOptions) -> dict:
    """submitit parameters from the executor's options (``parameters`` may add any other)."""
    slurm = {"slurm_partition": options.partition,
             "slurm_account": options.account,
             "slurm_array_parallelism": options.parallel}
    generic = {"name": options.job_name,
               "timeout_min": options.time_min,
               "gpus_per_node": options.gpus_per_run,
               "cpus_per_task": options.cpus_per_run,
               "mem_gb": options.mem_gb}
    return {k: v for k, v in {**generic, **slurm, **options.parameters}.items()
            if v is not None}


def execute(runs, work, options: SlurmOptions) -> None:
    try:
        import submitit
    except ImportError as exc:
        raise HarnessError("executor 'slurm' needs submitit: "
                           "pip install 'cxr-harness[slurm]'") from exc
    cluster = options.cluster
    missing = [f"{c} not found" for c in ("sbatch", "srun") if shutil.which(c) is None]
    if cluster == "slurm" and missing:
        raise HarnessError(f"executor 'slurm': no Slurm on this machine ({', '.join(missing)}); "
                           "run from a login node, or set executor.options.cluster: local "
                           "to try the suite here")
    run_dirs = {run.run_id: work.run_dir(run).resolve() for run in runs}
    logs = Path(options.logs or next(iter(run_dirs.values())).parent / "slurm")
    executor = submitit.AutoExecutor(folder=logs / "%j", cluster=cluster,
                                     slurm_max_num_timeout=options.max_requeues)
    params = parameters(options)
    if cluster != "slurm":
        params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
    executor.update_parameters(**params)
    env = {"CUDA_VISIBLE_DEVICES": ""} if options.gpus_per_run == 0 else {}
    detach = bool(getattr(work, "detach", False))
    if detach and cluster != "slurm":
        raise HarnessError("executor 'slurm': --detach needs cluster: slurm (the jobs of "
                           "cluster: local are children of this process)")
    # Slurm limits a job array itself (slurm_array_parallelism); otherwise the harness
    # holds back the jobs beyond ``parallel`` and submits each as another one ends.
    throttle = options.parallel if not (cluster == "slurm" and options.array) else None
    if detach and throttle:
        raise HarnessError("executor 'slurm': --detach with parallel needs array: true "
                           "(Slurm then limits the array)")

    def submit(batch: list) -> list:
        if options.array and len(batch) > 1:
            with executor.batch():
                jobs = [executor.submit(RunJob(), str(run_dirs[r.run_id]), env) for r in batch]
        else:
            jobs = [executor.submit(RunJob(), str(run_dirs[r.run_id]), env) for r in batch]
        for run, job in zip(batch, jobs):
            work.started(run, f"submitted as job {job.job_id}")
            if hasattr(work, "submitted"):
                work.submitted(run, f"slurm job {job.job_id}")
        return list(zip(batch, jobs))

    waiting = list(runs)
    first, waiting = waiting[:throttle or len(waiting)], waiting[throttle or len(waiting):]
    pending = submit(first)
    if detach:
        return
    wait(pending, work, options.poll_seconds,
         lambda n: submit([waiting.pop(0) for _ in range(min(n, len(waiting)))]))


def wait(pending, work, poll: float, more=lambda n: []) -> None:
    """Read each run's outcome as its job ends (``more(n)`` submits up to ``n`` held-back
    runs in the freed places); on a stop, cancel the unfinished jobs."""
    try:
        while pending:
            still = []
            for run, job in pending:
                if not job.done():
                    still.append((run, job))
                    continue
                try:
                    code, error = job.result(), ""
                except Exception as exc:  # noqa: BLE001 - failed, cancelled, out of requeues
                    text = str(exc).strip().splitlines()
                    code, error = None, f"job {job.job_id}: {text[-1] if text else exc!r}"
                work.finished(run, code, 0.0, error)
            pending = still + more(len(pending) - len(still))
            if pending:
                time.sleep(poll)
    except BaseException:
        for _, job in pending:
            try:
                job.cancel(check=False)
            except Exception:  # noqa: BLE001,S110 - cancel what can be cancelled
                pass
        raise


@hookimpl
def register_executors(register):
    register(ExecutorSpec(
        name="slurm",
        description="A Slurm cluster through submitit: a job (array) per run, requeued on "
                    "preemption or timeout (shared file system needed)",
        execute=execute,
        options=SlurmOptions,
        detach=True,
    ))
