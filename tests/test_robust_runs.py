"""One owner per run folder, workers that die with their parent, "done" that is verified."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.rundir.folder import RunFolder
from harness.runs.runner import run_suite
from harness.runs.worker import ALREADY_DONE, BUSY, LOCK_WAIT_ENV

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

HARNESS = [sys.executable, "-c", "import sys; from harness.cli.main import main; sys.exit(main())"]


def run(suite, tmp_path, messages=None, **kw):
    kw.setdefault("render", False)
    return run_suite(suite, runs_root=tmp_path / "runs", reports_root=tmp_path / "reports",
                     echo=(messages.append if messages is not None else lambda m: None),
                     show_progress=False, **kw)


def folders(tmp_path, name) -> list[RunFolder]:
    return [RunFolder(p) for p in sorted((tmp_path / "runs" / name).iterdir()) if p.is_dir()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in state


def wait_for(predicate, seconds=60.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


# -- damaged finished runs are verified and trained again --------------------------------

def _garble(path: Path) -> None:
    path.write_text(path.read_text()[: len(path.read_text()) // 2])


def _swap_uids(path: Path) -> None:
    lines = path.read_text().splitlines()
    a, b = lines[1].split(",", 1), lines[2].split(",", 1)
    lines[1], lines[2] = f"{b[0]},{a[1]}", f"{a[0]},{b[1]}"
    path.write_text("\n".join(lines) + "\n")


def _bad_probability(path: Path) -> None:
    lines = path.read_text().splitlines()
    cells = lines[1].split(",")
    cells[-1] = "7.5"
    lines[1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


def _other_metrics(path: Path) -> None:
    metrics = json.loads(path.read_text())
    metrics["accuracy"] = 0.999
    path.write_text(json.dumps(metrics))


DAMAGES = [
    ("metrics.json", _garble, "not valid JSON"),
    ("metrics.json", _other_metrics, "does not match predictions.csv"),
    ("config.json", _garble, "not valid JSON"),
    ("plan.json", lambda p: p.write_text(""), "empty"),
    ("status.json", lambda p: p.write_text("{"), "not valid JSON"),
    ("predictions.csv", _swap_uids, "line 2: uid"),
    ("predictions.csv", _bad_probability, "line 2: probabilities are not in [0, 1]"),
    ("predictions.csv", lambda p: p.unlink(), None),
]


def test_damaged_runs_are_named_and_trained_again(make_suite, tmp_path):
    """One run per kind of damage (seeds tell them apart) and one intact run."""
    suite = make_suite("dmg", matrix={"fold": [1], "seed": list(range(len(DAMAGES) + 1))})
    run(suite, tmp_path)
    *victims, other = folders(tmp_path, "dmg")
    assert all(f.verified() is None for f in [*victims, other])
    kept = other.file("predictions.csv").stat().st_mtime_ns
    for folder, (name, damage, _) in zip(victims, DAMAGES):
        damage(folder.file(name))
        assert folder.verified() is not None or name == "status.json"
    messages: list[str] = []
    result = run(suite, tmp_path, messages)
    assert [o.state for o in result.outcomes] == ["done"] * len(folders(tmp_path, "dmg"))
    for folder, (name, _, problem) in zip(victims, DAMAGES):
        if problem is not None:
            line = next(m for m in messages if m.startswith(folder.name + ":"))
            assert f"{name} is damaged" in line and problem in line, line
            assert line.endswith("training this run again")
        assert folder.verified() is None, name
    assert other.file("predictions.csv").stat().st_mtime_ns == kept


def test_damaged_runs_never_give_a_traceback(make_suite, tmp_path):
    suite = make_suite("cli")
    args = [*HARNESS, "run", str(suite), "--runs-dir", str(tmp_path / "runs"),
            "--reports-dir", str(tmp_path / "reports")]
    env = {**os.environ, "HARNESS_QUIET": "1"}
    assert [o.state for o in run(suite, tmp_path).outcomes] == ["done", "done"]
    first, second = folders(tmp_path, "cli")
    first.file("metrics.json").write_text("{garbled")
    second.file("config.json").write_text("[1, 2")
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert "metrics.json is damaged" in out.stdout and "config.json is damaged" in out.stdout
    assert first.verified() is None and second.verified() is None


# -- one owner per folder ------------------------------------------------------------------

def test_a_busy_run_waits_for_its_owner_then_is_not_trained_again(make_suite, tmp_path):
    suite = make_suite("busy")
    run(suite, tmp_path)
    folder = folders(tmp_path, "busy")[0]
    folder.file("status.json").unlink()  # looks unfinished, but another process holds it
    lock = folder.lock().acquire()
    try:
        impatient = subprocess.run([sys.executable, "-m", "harness.runs.worker", str(folder.path)],
                                   env={**os.environ, LOCK_WAIT_ENV: "0"}, capture_output=True,
                                   text=True, timeout=60, check=False)
        assert impatient.returncode == BUSY  # told not to wait: leaves the run to its owner
        assert "coming back to it later" in impatient.stderr
        assert not folder.file("status.json").exists()
        worker = subprocess.Popen([sys.executable, "-m", "harness.runs.worker",
                                   str(folder.path)], stderr=subprocess.PIPE, text=True)
        said = ""
        while "waiting for it" not in said:  # the event: the worker reports that it waits
            line = worker.stderr.readline()
            assert line, f"the worker exited without waiting: {said}"
            said += line
        assert worker.poll() is None  # waiting
        assert not folder.file("status.json").exists()
        folder.write_status("done", started=1.0, seconds=2.0)  # the owner finishes
    finally:
        lock.release()
    _, err = worker.communicate(timeout=60)
    err = said + err
    assert worker.returncode == ALREADY_DONE
    assert f"being trained by pid {os.getpid()}" in err
    assert "already done by another process" in err
    assert folder.status().started == 1.0  # not trained a second time


def test_stale_lock_of_a_dead_process_is_taken_over(make_suite, tmp_path):
    suite = make_suite("stale")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    runs = tmp_path / "runs" / "stale"
    run(suite, tmp_path, dry_run=True)
    # A folder left by a killed owner: its lock file and owner record remain.
    for r in run(suite, tmp_path, dry_run=True).runs:
        (runs / r.run_id).mkdir(parents=True)
        (runs / r.run_id / ".lock").write_text("")
        (runs / r.run_id / ".owner.json").write_text(json.dumps(
            {"pid": dead.pid, "host": "x", "since": 0}))
    result = run(suite, tmp_path)
    assert [o.state for o in result.outcomes] == ["done", "done"]
    assert all(not (f.file(".owner.json")).exists() for f in folders(tmp_path, "stale"))


def test_two_harness_runs_on_one_suite_train_each_run_once(make_suite, tmp_path):
    suite = make_suite("twice", matrix={"sampler": ["none", "phased"]},
                       training={"epochs_per_phase": 3}, budget="natural")
    env = {**os.environ, "HARNESS_FAKE_EPOCH_SECONDS": "0.15", "HARNESS_QUIET": "1"}
    args = [*HARNESS, "run", str(suite), "--runs-dir", str(tmp_path / "runs"), "--no-report"]
    procs = [subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    stdout = "\n".join(o for o, _ in outs)
    runs = folders(tmp_path, "twice")
    assert len(runs) == 4
    for f in runs:
        assert f.verified() is None
        trained = [line for line in stdout.splitlines() if f"{f.name}: done in" in line]
        assert len(trained) == 1, stdout  # one process trained it; the other skipped it
        epochs = f.file("history.csv").read_text().splitlines()[1:]
        assert len(epochs) == len(set(epochs))  # no epoch logged twice


def test_worker_dies_with_its_parent_and_the_run_resumes(make_suite, tmp_path):
    suite = make_suite("orphan", training={"epochs_per_phase": 40}, budget="natural",
                       matrix={"fold": [1]})
    env = {**os.environ, "HARNESS_FAKE_EPOCH_SECONDS": "0.2", "HARNESS_QUIET": "1"}
    args = [*HARNESS, "run", str(suite), "--runs-dir", str(tmp_path / "runs"), "--no-report"]
    parent = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    owner = None

    def training():
        nonlocal owner
        found = list((tmp_path / "runs" / "orphan").glob("*/.owner.json"))
        if found and list(found[0].parent.glob("history.csv")):
            owner = json.loads(found[0].read_text())["pid"]
            return True
        return False

    assert wait_for(training)
    os.kill(parent.pid, signal.SIGKILL)  # the parent only, as a crash or `kill -9` would
    parent.wait()
    assert wait_for(lambda: not alive(owner), 10), "the worker outlived its parent"
    folder = folders(tmp_path, "orphan")[0]
    assert folder.state() != "done"
    env["HARNESS_FAKE_EPOCH_SECONDS"] = "0"
    subprocess.run(args, env=env, check=True, capture_output=True)
    assert folder.verified() is None
    epochs = folder.file("history.csv").read_text().splitlines()[1:]
    assert len(epochs) == len(set(epochs)) == 40
