"""What a dead MLflow server costs a suite: the same fake-engine suite without a tracker and
with the ``mlflow`` tracker pointed at a port nobody listens on, run alternately (A B B A ...)
so both see the same load; prints each pair and the ratio of the medians.

    python docs/simulations/dead_tracker.py [--pairs 4] [--runs 4]

Needs MLflow (``pip install -e '.[mlflow]'``); reaches no network (127.0.0.1 only).
"""

from __future__ import annotations

import argparse
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.testing import write_suite


def dead_port() -> int:
    with socket.socket() as s:  # bound, then closed: nobody listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one(root: Path, name: str, trackers: list) -> tuple[float, float]:
    """Wall seconds and CPU seconds (the process and its workers) of one `harness run`."""
    suite = write_suite(root / f"{name}.yaml", name, plugins=["harness.testing.fakes"],
                        matrix={"seed": list(range(max(1, RUNS // 2)))},
                        cache_dir=str(root / "cache"), trackers=trackers)
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()  # a fresh `harness run` process, as a user starts it
    done = subprocess.run([sys.executable, "-m", "harness.cli.main", "-q", "run", str(suite),
                           "--runs-dir", str(root / name / "runs"), "--no-report"],
                          check=False, capture_output=True, text=True)
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 0, done.stdout + done.stderr
    return seconds, (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime)


def main() -> None:
    global RUNS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()
    RUNS = args.runs
    dead = [{"name": "mlflow", "options": {"tracking_uri": f"http://127.0.0.1:{dead_port()}",
                                           "artifacts": False}}]
    plain, tracked = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        one(root, "warm", [])  # fills the image cache both share
        for i in range(args.pairs):
            order = [("plain", []), ("dead", dead)]
            for label, trackers in (order if i % 2 == 0 else order[::-1]):
                seconds = one(root, f"{label}{i}", trackers)
                (plain if label == "plain" else tracked).append(seconds)
            print(f"pair {i + 1}: no tracker {plain[-1][0]:.2f} s ({plain[-1][1]:.2f} CPU s), "
                  f"dead MLflow {tracked[-1][0]:.2f} s ({tracked[-1][1]:.2f} CPU s)")
    for what, k in (("wall", 0), ("CPU", 1)):
        a = statistics.median(p[k] for p in plain)
        b = statistics.median(t[k] for t in tracked)
        print(f"median {what}: no tracker {a:.2f} s, dead MLflow {b:.2f} s, ratio {b / a:.3f} "
              f"({args.runs} runs per suite, {args.pairs} pairs)")


RUNS = 4

if __name__ == "__main__":
    main()
