"""The ``local`` executor: one run per visible GPU at a time, or one after another on a CPU."""

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


def execute(runs, work, options: LocalOptions) -> None:
    gpus = [str(g) for g in (options.gpus if options.gpus is not None else visible_gpus())]
    if len(gpus) <= 1:
        env = {"CUDA_VISIBLE_DEVICES": gpus[0]} if gpus else None
        for run in runs:
            work(run, env)
        return
    # One worker thread per GPU; each pulls the next run when its GPU is free.
    queue = list(runs)

    def lane(gpu: str) -> None:
        while queue:
            try:
                run = queue.pop(0)
            except IndexError:
                return
            try:
                work(run, {"CUDA_VISIBLE_DEVICES": gpu})
            except BaseException:  # --fail-fast or Ctrl-C: the other lanes take no new run
                queue.clear()
                raise

    with ThreadPoolExecutor(max_workers=len(gpus)) as pool:
        for future in [pool.submit(lane, g) for g in gpus]:
            future.result()


@hookimpl
def register_executors(register):
    register(ExecutorSpec(
        name="local",
        description="This machine: one run per visible GPU at a time, sequential on CPU",
        execute=execute,
        options=LocalOptions,
    ))
