"""The ``local`` executor: one run per visible GPU at a time, or one after another on a CPU
(``parallel`` sets how many at once)."""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

from pydantic import Field

from harness import ExecutorSpec, Options, hookimpl


def visible_gpus() -> list[str]:
    """GPU ids without importing a framework (``CUDA_VISIBLE_DEVICES`` or ``nvidia-smi``)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip() not in ("", "-1")]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


class LocalOptions(Options):
    gpus: list[str | int] | None = Field(None, description="GPU ids to use, one run per GPU "
                                         "at a time (default: all visible)")
    parallel: int | None = Field(None, ge=1, description="at most this many runs at once "
                                 "(default: one per GPU, one at a time on a CPU); runs "
                                 "beyond the GPUs share them in turn")


def execute(runs, work, options: LocalOptions) -> None:
    gpus = [str(g) for g in (options.gpus if options.gpus is not None else visible_gpus())]
    lanes = options.parallel or max(len(gpus), 1)
    # Each lane its own environment (HARNESS_LANE): the runner keeps one warm host per
    # environment, and a host trains one run at a time.
    envs = [{**({"CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]} if gpus else {}),
             **({"HARNESS_LANE": str(i)} if lanes > 1 else {})} or None for i in range(lanes)]
    if lanes == 1:
        for run in runs:
            work(run, envs[0])
        return
    # One worker thread per lane; each pulls the next run when its lane is free.
    queue = list(runs)

    def lane(env) -> None:
        while queue:
            try:
                run = queue.pop(0)
            except IndexError:
                return
            try:
                work(run, env)
            except BaseException:  # --fail-fast or Ctrl-C: the other lanes take no new run
                queue.clear()
                raise

    with ThreadPoolExecutor(max_workers=lanes) as pool:
        for future in [pool.submit(lane, env) for env in envs]:
            future.result()


@hookimpl
def register_executors(register):
    register(ExecutorSpec(
        name="local",
        description="This machine: one run per visible GPU at a time, sequential on CPU",
        execute=execute,
        options=LocalOptions,
    ))
