"""What every hostile-input case checks, and a small trained suite to attack.

A case runs the ``harness`` command in this process (the runs' workers are real processes)
and asserts: the documented exit code, exactly one ``error:`` line naming the thing that is
wrong, no traceback, and no finished run lost. The suite uses the ``hostile`` plugins of
``harness.testing.hostile``, which behave until ``HARNESS_HOSTILE`` names a fault.
"""

from __future__ import annotations

import shutil
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import yaml
from click.testing import CliRunner

from harness.cli.main import VERBOSE, main
from harness.errors import HarnessWarning
from harness.rundir.folder import RunFolder
from harness.testing import small_suite

PLUGINS = ["harness.testing.fakes", "harness.testing.hostile"]
SUITE = "h"


def suite_data(**overrides) -> dict:
    """Two runs (two folds) over the hostile dataset and splitter, the centroid engine."""
    data = small_suite(SUITE, plugins=PLUGINS,
                       datasets=[{"name": "hostile", "options": {"n": 90, "seed": 1}}],
                       split={"kind": "hostile", "folds": 2, "seed": 0},
                       training={"epochs_per_phase": 1}, report={"bootstrap": 20},
                       cache_dir="cache")
    for key, value in overrides.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(
            data.get(key), dict) else value
    return data


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def errors(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("error:")]

    @property
    def warnings(self) -> list[str]:
        return [line for line in (self.out + self.err).splitlines()
                if line.startswith("warning:")]


def harness(*args, cwd: Path | None = None) -> Result:
    """``harness ARGS`` in this process; an uncaught exception shows as a traceback."""
    VERBOSE[0] = False
    with warnings.catch_warnings(record=True) as caught:  # shown as the CLI shows them
        warnings.simplefilter("always", HarnessWarning)
        result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)
    err = result.stderr + "".join(f"warning: {w.message}\n" for w in caught
                                  if issubclass(w.category, HarnessWarning))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        err += "".join(traceback.format_exception(result.exception))
    return Result(result.exit_code, result.stdout, err)


def refused(result: Result, *names: str, code: int = 2) -> str:
    """Exit ``code``, one ``error:`` line naming every one of ``names``, no traceback."""
    assert "Traceback" not in result.out + result.err, result.err
    assert result.code == code, (result.code, result.out, result.err)
    assert len(result.errors) == 1, result.err
    line = result.errors[0]
    for name in names:
        assert name in line, (name, line)
    return line


def no_traceback(result: Result) -> None:
    assert "Traceback" not in result.out + result.err, result.err


class Workspace:
    """A folder with ``h.yaml``, its filled cache and two finished runs."""

    def __init__(self, root: Path):
        self.root = root
        self.suite = root / "h.yaml"
        self.runs = root / "runs"
        self.reports = root / "reports"

    def write_suite(self, **overrides) -> Path:
        self.suite.write_text(yaml.safe_dump(suite_data(**overrides), sort_keys=False))
        return self.suite

    def run(self, *extra: str) -> Result:
        return harness("run", self.suite, "--runs-dir", self.runs, "--reports-dir",
                       self.reports, *extra)

    def folders(self) -> list[RunFolder]:
        return [RunFolder(p) for p in sorted((self.runs / SUITE).iterdir()) if p.is_dir()]

    def cache_dir(self) -> Path:
        (found,) = [p for p in (self.root / "cache").iterdir() if p.is_dir()]
        return found

    def finished(self) -> dict[str, float]:
        """Run id -> the time it started, for every run whose files verify."""
        return {f.name: f.status().started for f in self.folders() if f.verified() is None}

    def copy_to(self, root: Path) -> Workspace:
        shutil.copytree(self.root, root)
        for config in root.glob("runs/*/*/config.json"):  # the cache moved with the copy
            config.write_text(config.read_text().replace(str(self.root), str(root)))
        return Workspace(root)
