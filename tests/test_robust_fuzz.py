"""Fuzz: 200 seeded mutations of a suite file and a small dataset never give a traceback.

Each mutation is checked the way a user meets it: ``harness run --dry-run`` for the suite
(settings are checked before anything trains) and ``harness data summary`` for the dataset
(its metadata and images are read). The exit code is 0 or 2, no exception escapes, and no
file appears outside ``runs/``, ``reports/`` and the cache.
"""

from __future__ import annotations

import copy
import random
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from fixtures_data import write_ieee8023

from harness.cli.main import main
from harness.testing import small_suite

SEED = 0
N_SUITE, N_DATA = 160, 40
ALLOWED = ("runs", "reports", "cache")

VALUES = [-1, 0, 1, 2, 7, 10**20, -(10**20), 0.5, 1e300, "x", "", None, [], {}, True, False,
          "../../escape", "/tmp", "1e20", float("nan"), float("inf"), "a" * 200, {"k": "v"},
          ["a", "a"], [0, 0], [-3], "no such thing", "phased", "none", "tiny", "\x00", "é"]


def paths(data, prefix=()):
    """Every key path of a nested mapping/list (the places a mutation can hit)."""
    out = [prefix] if prefix else []
    if isinstance(data, dict):
        for k, v in data.items():
            out += paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += paths(v, (*prefix, i))
    return out


def parent_and_key(data, path):
    for step in path[:-1]:
        data = data[step]
    return data, path[-1]


def mutate_suite(base: dict, rng: random.Random) -> str:
    """A mutated suite as YAML text: a value, a key or the text itself goes wrong."""
    data = copy.deepcopy(base)
    for _ in range(rng.choice([1, 1, 2, 3])):
        targets = [p for p in paths(data) if p[0] != "cache_dir"]
        path = rng.choice(targets)
        parent, key = parent_and_key(data, path)
        how = rng.random()
        if how < 0.55:
            parent[key] = copy.deepcopy(rng.choice(VALUES))
        elif how < 0.7 and isinstance(parent, dict):
            del parent[key]
        elif how < 0.85 and isinstance(parent, dict):
            parent[str(key)[:-1] + rng.choice("sxe_")] = parent.pop(key)  # a typo
        elif isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))  # a duplicate
        else:
            data["name"] = rng.choice(["../../../outside", "", "a/b", "..", ".", "ok name",
                                       "-dash", "x" * 80, "runs", "reports"])
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    if rng.random() < 0.2:  # the text itself: a character dropped, doubled or replaced
        i = rng.randrange(len(text))
        text = text[:i] + rng.choice(["", text[i] * 2, ":", "\t", "[", "'", "- "]) + text[i + 1:]
    return text


def mutate_dataset(root: Path, rng: random.Random) -> None:
    """Damage the metadata or an image of an ieee8023 copy, as a bad download would."""
    meta = root / "metadata.csv"
    images = sorted((root / "images").iterdir())
    how = rng.randrange(9)
    if how == 0:
        lines = meta.read_text().splitlines(keepends=True)
        del lines[rng.randrange(1, len(lines))]
        meta.write_text("".join(lines))
    elif how == 1:
        text = meta.read_bytes()
        meta.write_bytes(text[: rng.randrange(len(text))])
    elif how == 2:
        text = meta.read_bytes()
        i = rng.randrange(len(text))
        meta.write_bytes(text[:i] + bytes(rng.randrange(256) for _ in range(8)) + text[i:])
    elif how == 3:
        meta.write_text("")
    elif how == 4:
        lines = meta.read_text().splitlines()
        lines[0] = ",".join(reversed(lines[0].split(",")))
        meta.write_text("\n".join(lines) + "\n")
    elif how == 5 and images:
        victim = rng.choice(images)
        victim.write_bytes(victim.read_bytes()[: rng.randrange(1, 64)])
    elif how == 6 and images:
        rng.choice(images).unlink()
    elif how == 7 and images:
        victim = rng.choice(images)
        victim.unlink()
        victim.symlink_to("/etc/hostname")
    else:
        meta.write_text(meta.read_text().replace("COVID-19", rng.choice(["", "??", "COVID"])))


def snapshot(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


@pytest.mark.filterwarnings("ignore")
def test_mutated_suites_and_datasets_fail_cleanly(tmp_path, monkeypatch):
    work = tmp_path / "work"
    pristine = write_ieee8023(tmp_path / "pristine")
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HARNESS_CACHE", str(work / "cache"))
    base = small_suite("fuzz", datasets=[
        {"name": "synthetic", "options": {"n": 60, "seed": 1}},
        {"name": "ieee8023", "options": {"root": "data"}}],
        matrix={"sampler": ["none", "phased"]}, budget="natural",
        training={"epochs_per_phase": 1, "max_steps_per_epoch": 2})
    base["cache_dir"] = str(work / "cache")
    rng = random.Random(SEED)
    runner = CliRunner()
    before = snapshot(tmp_path)
    codes = {0: 0, 2: 0}
    for i in range(N_SUITE + N_DATA):
        data = work / "data"
        if data.exists():
            shutil.rmtree(data)
        shutil.copytree(pristine, data, symlinks=True)
        suite = work / "suite.yaml"
        if i < N_SUITE:
            suite.write_text(mutate_suite(base, rng))
            args = ["run", str(suite), "--dry-run"]
        else:
            suite.write_text(yaml.safe_dump(base, sort_keys=False))
            mutate_dataset(data, rng)
            args = ["data", "summary", str(suite)]
        result = runner.invoke(main, args, catch_exceptions=True)
        exc = result.exception
        assert exc is None or isinstance(exc, SystemExit), (
            f"mutation {i}: {type(exc).__name__}: {exc}\n{suite.read_text()}")
        assert result.exit_code in (0, 2), f"mutation {i}: exit {result.exit_code}\n" \
                                           f"{result.output}\n{suite.read_text()}"
        if result.exit_code == 2:  # one line that names the file (or the dataset) and key
            message = result.output.split("error:", 1)[-1].strip()
            assert message and "\n" not in message, f"mutation {i}: {result.output}"
        codes[result.exit_code] += 1
        written = snapshot(tmp_path) - before
        outside = [p for p in written if not p.is_relative_to(tmp_path / "pristine")
                   and not p.is_relative_to(work / "data") and p != suite
                   and not any(p.is_relative_to(work / root) for root in ALLOWED)]
        assert not outside, f"mutation {i} wrote {outside}"
        assert not (tmp_path.parent / "outside").exists()
    # The mutations exercise both outcomes: clean failures and settings that still run.
    assert codes[2] > 50 and codes[0] > 20, codes
