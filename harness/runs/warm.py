"""Warm workers: one host process per engine framework imports it once and forks a child
per run, so a run's fixed cost is a fork instead of a fresh interpreter.

Each run still trains in its own process (a child of the host): a crash, a leak or GPU memory
ends with the run, and frameworks never share a process (one host per framework; TensorFlow
never runs in a forked child, see ``FORKABLE``). The child runs exactly what
``python -m harness.runs.worker RUN_DIR`` runs (``worker.main``), then leaves through
``os._exit`` after flushing: no interpreter teardown. Measured on the demo (2-core CPU,
8 torch runs): a fresh worker costs ~6 s before training (torch 1.8 s, ``torch._dynamo``
1.5 s at the first NAdam step, scikit-learn/scipy 1.4 s, teardown 1.3 s); a forked one
~0.1 s.

Protocol (host side: ``python -m harness.runs.warm MODULE...``): the runner writes one JSON
line ``{"run_dir", "env"}`` per run on the host's stdin; the host answers ``{"pid"}`` when
the child starts and ``{"code"}`` when it ends, on its stdout (children write their output
to stderr). The host ignores SIGINT (Ctrl-C goes to the child, which checkpoints and records
``interrupted``), dies with the runner (``launch.die_with_parent``) and exits at EOF.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path

from harness.runs import launch

#: Frameworks whose import leaves a process safe to fork (no threads, no device context):
#: torch (CUDA initialises lazily, in the child) and the framework-free test engines.
#: TensorFlow starts threads at import, so its runs start fresh processes.
FORKABLE = {"torch": ["torch", "torch._dynamo", "torch.optim"], "numpy": []}

#: What every run imports besides its framework: the worker, the loop, the metrics.
COMMON = ["harness.runs.worker", "harness.training.loop", "harness.analysis.metrics",
          "harness.analysis.calibration", "sklearn.metrics", "harness.plugin.registry"]


def preload_for(framework: str, engine_module: str) -> list[str] | None:
    """Modules a host imports for ``framework``; ``None`` when it must not fork."""
    if framework not in FORKABLE:
        return None
    return [*FORKABLE[framework], *COMMON, engine_module]


# ------------------------------------------------------------------------------- host side

def _child(request: dict) -> None:
    """In the forked child: become a plain worker for one run, then leave at once."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.dup2(2, 1)  # the host's stdout carries the protocol
    os.environ.update(request.get("env") or {})
    os.environ[launch.PARENT_ENV] = str(os.getppid())
    code = 1
    try:
        from harness.runs import worker

        code = worker.main([request["run_dir"]])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _warm_registry() -> None:
    """Import every installed plugin and read the installed distributions once, here, so
    each child builds its registry from modules already imported instead of scanning the
    installed distributions again. A plugin that fails to import is left to the child,
    which reports it as every worker does."""
    from harness.plugin.registry import _packages_distributions, build_registry

    try:
        _packages_distributions()
        build_registry()
    except Exception:  # noqa: BLE001, S110 - the child raises it again, with the run's name
        pass


def serve(modules: list[str]) -> int:
    launch.die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in modules:
        importlib.import_module(name)
    _warm_registry()
    # What the host imported is shared with every child until written to; a garbage
    # collection in the child walks (and so copies) all of it. Frozen objects are never
    # collected: measured 0.1 CPU s a run on the study (``harness bench --study``).
    gc.freeze()
    out = os.fdopen(os.dup(1), "w", buffering=1)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        out.write(json.dumps({"pid": pid}) + "\n")
        _, status = os.waitpid(pid, 0)
        out.write(json.dumps({"code": os.waitstatus_to_exitcode(status)}) + "\n")
    return 0


# ------------------------------------------------------------------------------ runner side

class Host:
    """The runner's handle on one warm host (one run at a time)."""

    def __init__(self, modules: list[str], env: dict[str, str] | None = None):
        full_env = {**os.environ, **(env or {}), launch.PARENT_ENV: str(os.getpid())}
        self.proc = subprocess.Popen([sys.executable, "-m", "harness.runs.warm", *modules],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=full_env, bufsize=0)
        self.buffer = b""
        self.lock = threading.Lock()

    def _read(self, timeout: float | None = None) -> dict | None:
        """The next message; ``None`` on timeout; ``{}`` when the host is gone."""
        while b"\n" not in self.buffer:
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return {}
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def run(self, run_dir: Path, env: dict[str, str] | None = None, grace: float = 30.0
            ) -> int:
        """Train one run in a forked child; its exit code (negative: killed by a signal)."""
        with self.lock:
            return self._run(run_dir, env, grace)

    def _run(self, run_dir: Path, env: dict[str, str] | None, grace: float) -> int:
        try:
            self.proc.stdin.write((json.dumps({"run_dir": str(run_dir), "env": env or {}})
                                   + "\n").encode())
        except BrokenPipeError:
            return -9
        pid = None
        try:
            message = self._read()
            pid = message.get("pid")
            if pid is None:
                return -9
            message = self._read()
            return message.get("code", -9)
        except BaseException:
            self._stop_child(pid, grace)
            raise

    def _stop_child(self, pid: int | None, grace: float) -> None:
        """As ``launch.stop``: SIGINT (the run records ``interrupted``), SIGKILL after
        ``grace`` seconds."""
        if pid is None:
            return
        if self._read(0.5) is None:
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                return
            if self._read(grace) is None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self._read(5)

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Pool:
    """Warm hosts by (preloaded modules, environment): an executor lane with its own
    ``CUDA_VISIBLE_DEVICES`` gets its own host."""

    def __init__(self):
        self.hosts: dict[tuple, Host] = {}
        self.lock = threading.Lock()

    def run(self, modules: list[str], run_dir: Path, env: dict[str, str] | None = None) -> int:
        key = (tuple(modules), tuple(sorted((env or {}).items())))
        with self.lock:
            host = self.hosts.get(key)
            if host is None or host.proc.poll() is not None:
                host = self.hosts[key] = Host(modules, env)
        code = host.run(run_dir, env)
        if host.proc.poll() is not None:  # the host died with the run: start afresh next time
            with self.lock:
                self.hosts.pop(key, None)
        return code

    def close(self) -> None:
        with self.lock:
            hosts, self.hosts = list(self.hosts.values()), {}
        for host in hosts:
            host.close()


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1:]))
