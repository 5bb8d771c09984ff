"""Trackers that hold: a real MLflow server killed mid-suite costs one warning and one
budget, the runs it missed are recorded on the next ``harness run``, the parent says how
many child runs it holds, ``--json`` stays JSON, ``--rerun all`` starts fresh records, and
W&B works offline (its files read back here; no network)."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path

import pytest
from wandb_files import wandb_records

from harness import store
from harness.runs.runner import run_suite

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning",
                                        "ignore::UserWarning")

KILLER = '''
import os, signal
from harness import Tracker, TrackerSpec, hookimpl

class Killer(Tracker):
    """Kills the process group HARNESS_TEST_KILL_PID names when the first run ends."""
    def run_end(self, end):
        marker = os.environ["HARNESS_TEST_KILL_MARK"]
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return
        os.killpg(int(os.environ["HARNESS_TEST_KILL_PID"]), signal.SIGKILL)

@hookimpl
def register_trackers(register):
    register(TrackerSpec("killer", "kills a server after the first run", create=lambda o: Killer()))
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow(tmp_path: Path, port: int) -> subprocess.Popen:
    """``mlflow server`` on 127.0.0.1:port; returns once it answers on the port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--default-artifact-root", str(tmp_path / "artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, "mlflow server exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:  # not open yet: wait on the process (it may exit), then try again
            try:
                proc.wait(0.2)
            except subprocess.TimeoutExpired:
                pass
    proc.kill()
    pytest.fail("mlflow server did not open its port")


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, 9)
    except ProcessLookupError:
        pass
    proc.wait()


def history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def run_folders(suite_runs: Path) -> list[Path]:
    return sorted(p for p in suite_runs.iterdir() if (p / "config.json").exists())


def test_mlflow_server_killed_mid_suite(make_suite, tmp_path, monkeypatch, capfd, run_harness):
    mlflow = pytest.importorskip("mlflow")
    port = free_port()
    server = start_mlflow(tmp_path, port)
    (tmp_path / "killer_plugin.py").write_text(KILLER)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("HARNESS_TEST_KILL_PID", str(server.pid))
    monkeypatch.setenv("HARNESS_TEST_KILL_MARK", str(tmp_path / "killed"))
    # A killed server refuses connections: MLflow retries, once here.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    uri = f"http://127.0.0.1:{port}"
    mlflow.MlflowClient(uri).search_experiments()  # its first answer is slow: not the suite's
    budget = 20.0
    suite = make_suite("dies", plugins=["harness.testing.fakes", "killer_plugin"],
                       trackers=[
                           "killer", {"name": "mlflow", "timeout": budget,
                                      "options": {"tracking_uri": uri, "artifacts": False}}])
    runs = tmp_path / "runs"
    try:
        started = time.monotonic()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_suite(suite, runs_root=runs, render=False, echo=lambda m: None,
                               show_progress=False)
        elapsed = time.monotonic() - started
        assert [o.state for o in result.outcomes] == ["done"] * 2
        assert (tmp_path / "killed").exists()
        # One warning for the suite, whichever process met the dead server first (the
        # workers print theirs on stderr, the runner's are Python warnings).
        err = capfd.readouterr().err
        said = err.count("tracker 'mlflow' is off for this suite") + len(
            [w for w in caught if "tracker 'mlflow' is off" in str(w.message)])
        assert said == 1, (err, [str(w.message) for w in caught])
        settings = store.read_json(runs / "dies" / "trackers.json")["trackers"][1]
        assert settings["off"] is True and settings["spent"] <= budget + 1
        print(f"suite with a server killed after its first run: {elapsed:.1f} s",
              file=sys.stderr)

        # The server comes back (same store): the next `harness run` records what it missed.
        server = start_mlflow(tmp_path, port)
        out = run_harness("run", suite, "--runs-dir", runs, "--no-report", "--json")
        assert out.exit_code == 0, out.output
        document = json.loads(out.stdout)  # MLflow's "View run" line went to stderr
        assert [r["state"] for r in document["runs"]] == ["done"] * 2
        client = mlflow.MlflowClient(uri)
        exp = client.get_experiment_by_name("dies").experiment_id
        children = client.search_runs([exp], "tags.`harness.kind` = 'run'")
        assert sorted(r.data.tags["harness.run_id"] for r in children) == \
            [d.name for d in run_folders(runs / "dies")]
        backfilled = [r for r in children if r.data.tags.get("harness.backfilled") == "true"]
        assert backfilled  # the first run may have been recorded live, before the kill
        for r in backfilled:
            rows = history(runs / "dies" / r.data.tags["harness.run_id"])
            steps = client.get_metric_history(r.info.run_id, "images")
            assert [(m.step, m.value) for m in steps] == [
                (i, float(row["images"])) for i, row in enumerate(rows, start=1)]
            assert r.data.metrics["test/accuracy"] == pytest.approx(store.read_json(
                runs / "dies" / r.data.tags["harness.run_id"] / "metrics.json")["accuracy"])
        parent = client.search_runs([exp], "tags.`harness.kind` = 'suite'")[0]
        assert parent.data.tags["harness.runs"] == "2"
        assert parent.data.tags["harness.child_runs"] == "2"
        assert parent.info.status == "FINISHED"
    finally:
        stop(server)


def test_rerun_all_starts_fresh_records(make_suite, tmp_path, monkeypatch, run_harness):
    mlflow = pytest.importorskip("mlflow")
    pytest.importorskip("tensorboard")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    suite = make_suite("again", trackers=[{"name": "mlflow", "options": {
        "tracking_uri": uri, "artifacts": False}}, "tensorboard"])
    runs = tmp_path / "runs"
    for rerun in (None, "all"):
        result = run_suite(suite, runs_root=runs, render=False, echo=lambda m: None,
                           show_progress=False, rerun=rerun)
        assert [o.state for o in result.outcomes] == ["done"] * 2
        settings = store.read_json(runs / "again" / "trackers.json")["trackers"][0]
        assert not settings["off"], settings.get("why")  # a busy machine switches none off
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("again").experiment_id
    children = client.search_runs([exp], "tags.`harness.kind` = 'run'")
    current = [r for r in children if r.data.tags.get("harness.replaced") != "true"]
    assert len(children) == 4 and len(current) == 2
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for d in run_folders(runs / "again"):
        rows = history(d)
        acc = EventAccumulator(str(d / "tensorboard"))
        acc.Reload()
        assert [e.step for e in acc.Scalars("images")] == list(range(1, len(rows) + 1))
        mine = [r for r in current if r.data.tags["harness.run_id"] == d.name]
        assert [(m.step, m.value) for m in client.get_metric_history(mine[0].info.run_id,
                                                                      "images")] == \
            [(e.step, e.value) for e in acc.Scalars("images")]
        assert acc.Scalars("test/accuracy")[0].value == pytest.approx(
            mine[0].data.metrics["test/accuracy"], rel=1e-6)

    # `harness track` records what a tracker lacks (here: lost event files), training nothing.
    lost = run_folders(runs / "again")[0]
    import shutil

    shutil.rmtree(lost / "tensorboard")
    out = run_harness("track", suite, "--runs-dir", runs)
    assert out.exit_code == 0, out.output
    assert "tracker tensorboard: recording 1 finished run it lacks" in out.stdout
    acc = EventAccumulator(str(lost / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("images")] == list(range(1, len(history(lost)) + 1))
    assert len(client.search_runs([exp], "tags.`harness.kind` = 'run'")) == 4  # none lacked


def test_wandb_offline_records_every_run(make_suite, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{free_port()}")  # nobody there
    (tmp_path / "wandb_dir").mkdir()
    suite = make_suite("wb", trackers=["wandb"])
    result = run_suite(suite, runs_root=tmp_path / "runs", render=False, echo=lambda m: None,
                       show_progress=False)
    assert [o.state for o in result.outcomes] == ["done"] * 2
    for d in run_folders(tmp_path / "runs" / "wb"):
        wandb_id = (d / "wandb_id.txt").read_text().strip()
        [run_file] = (tmp_path / "wandb_dir" / "wandb").glob(f"offline-run-*-{wandb_id}/*.wandb")
        records = list(wandb_records(run_file))
        kinds = [r.WhichOneof("record_type") for r in records]
        run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
        assert (run.display_name, run.project, run.run_group) == (d.name, "wb", "wb")
        logged = [(r.history.step.num, {i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                        for i in r.history.item})
                  for r in records if r.WhichOneof("record_type") == "history"]
        rows = history(d)
        # (records without "images" are W&B's own, e.g. its run time)
        assert [(step, h["images"]) for step, h in logged if "images" in h] == [
            (i, float(row["images"])) for i, row in enumerate(rows, start=1)]
        summary = {}
        for r in records:
            if r.WhichOneof("record_type") == "summary":
                summary.update({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                for i in r.summary.update})
        assert summary["test/accuracy"] == pytest.approx(
            store.read_json(d / "metrics.json")["accuracy"])
        assert "exit" in kinds and next(r.exit.exit_code for r in records
                                        if r.WhichOneof("record_type") == "exit") == 0
