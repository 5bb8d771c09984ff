"""The committed example report reproduces from a fresh clone: ``harness run suites/demo.yaml``
into an empty folder gives every value of ``reports/example/results.csv`` within 1e-6.

The demo pins ``training.threads: 1``, so the numbers do not depend on the machine's cores
or load; a busy-loop process runs alongside to show it. Run ids are left out of the
comparison: they hash the settings, not the numbers.
"""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "reports" / "example" / "results.csv"
KEY = ("backbone", "sampler", "engine", "fold", "seed", "class", "metric")


def values(path: Path) -> dict[tuple, str]:
    with path.open(newline="") as fh:
        return {tuple(r[k] for k in KEY): r["value"] for r in csv.DictReader(fh)}


def differ(a: str, b: str) -> bool:
    try:
        x, y = float(a), float(b)
    except ValueError:
        return a != b
    return not (math.isclose(x, y, rel_tol=0, abs_tol=1e-6) or (math.isnan(x) and math.isnan(y)))


@pytest.mark.slow
@pytest.mark.torch
def test_the_demo_reproduces_the_committed_example_report(tmp_path):
    pytest.importorskip("torch")
    if not COMMITTED.is_file():
        pytest.skip("reports/example/results.csv is not in this checkout")
    env = {**os.environ, "HARNESS_QUIET": "1", "HARNESS_CACHE": str(tmp_path / "cache")}
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        done = subprocess.run(
            [sys.executable, "-c", "from harness.cli import main; main()", "run",
             str(ROOT / "suites" / "demo.yaml"), "--runs-dir", str(tmp_path / "runs"),
             "--reports-dir", str(tmp_path / "reports")],
            capture_output=True, text=True, env=env, timeout=900, check=False, cwd=tmp_path)
    finally:
        busy.kill()
        busy.wait()
    assert done.returncode == 0, done.stdout + done.stderr
    ours, committed = values(tmp_path / "reports" / "demo" / "results.csv"), values(COMMITTED)
    assert ours.keys() == committed.keys()
    wrong = [(k, committed[k], ours[k]) for k in committed if differ(ours[k], committed[k])]
    assert not wrong, f"{len(wrong)} of {len(committed)} values differ, e.g. {wrong[:3]}"
