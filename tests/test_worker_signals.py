"""A worker turns SIGTERM into an interruption from its first line on, not only once its
training loop runs: a SIGTERM to the whole process group that reaches a worker still
importing its framework (TensorFlow takes seconds) ends in an ``interrupted`` record."""

from __future__ import annotations

import signal
import subprocess
import sys

STARTING = """
import time
from harness.runs import launch
launch.worker_signals()
try:  # the signal may arrive as soon as the line is out: inside the try from then on
    print("importing", flush=True)
    time.sleep(120)  # a framework import that takes long
except KeyboardInterrupt as exc:
    print("interrupted by", getattr(exc, "signum", None), flush=True)
"""


def test_sigterm_to_a_starting_worker_raises_an_interruption():
    proc = subprocess.Popen([sys.executable, "-c", STARTING], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "importing"
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, (proc.returncode, out)  # not killed by the signal
    assert out.strip() == f"interrupted by {int(signal.SIGTERM)}"
