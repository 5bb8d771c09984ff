"""Trackers: MLflow and TensorBoard record what the run folders hold; a failing or hanging
tracker never fails or stalls a run."""

from __future__ import annotations

import csv
import dataclasses
import sys
import time
import types
import warnings
from pathlib import Path
from typing import ClassVar

import pytest

from harness import RunEnd, RunInfo, SuiteInfo, Tracker, TrackerSpec, hookimpl, store
from harness.runs import tracking
from harness.runs.runner import run_suite

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning",
                                        "ignore::FutureWarning")


def run(suite, tmp_path, **kw):
    return run_suite(suite, runs_root=tmp_path / "runs", reports_root=tmp_path / "reports",
                     echo=lambda m: None, show_progress=False, **kw)


def run_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name != "mlruns")


def history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_mlflow_and_tensorboard_record_every_run(make_suite, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    pytest.importorskip("tensorboard")
    store_uri = (tmp_path / "mlruns").as_uri()
    suite = make_suite("tracked",
                       trackers=[{"name": "mlflow", "options": {"tracking_uri": store_uri}},
                                 "tensorboard"])
    result = run(suite, tmp_path)
    assert [o.state for o in result.outcomes] == ["done"] * 2
    folders = run_dirs(tmp_path / "runs" / "tracked")
    assert len(folders) == 2

    # MLflow: one run per harness run, the Table 4 figures equal metrics.json.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(store_uri)
    runs = mlflow.search_runs(experiment_names=["tracked"],
                              filter_string="tags.`harness.kind` = 'run'")
    assert sorted(runs["tags.harness.run_id"]) == [d.name for d in folders]
    assert set(runs["status"]) == {"FINISHED"}
    parent = mlflow.search_runs(experiment_names=["tracked"],
                                filter_string="tags.`harness.kind` = 'suite'")
    assert len(parent) == 1
    assert set(runs["tags.mlflow.parentRunId"]) == {parent["run_id"][0]}
    client = mlflow.MlflowClient(store_uri)
    report_files = [a.path for a in client.list_artifacts(parent["run_id"][0], "report")]
    assert "report/index.html" in report_files
    for _, row in runs.iterrows():
        d = tmp_path / "runs" / "tracked" / row["tags.harness.run_id"]
        metrics = store.read_json(d / "metrics.json")
        assert row["metrics.test/accuracy"] == pytest.approx(metrics["accuracy"])
        for cls, figures in metrics["per_class"].items():
            for figure in ("sensitivity", "specificity", "accuracy", "precision"):
                if figures[figure] is not None:
                    assert row[f"metrics.test/{cls}/{figure}"] == pytest.approx(figures[figure])
        assert row["params.sampler"] == store.read_json(d / "config.json")["run"]["sampler"]
        assert row["tags.harness.combination"] == f"pixels / {row['params.sampler']} / centroid"
        rows = history(d)
        steps = client.get_metric_history(row["run_id"], "images")
        assert [(m.step, m.value) for m in steps] == [
            (i, float(r["images"])) for i, r in enumerate(rows, start=1)]
        artifacts = {a.path for a in client.list_artifacts(row["run_id"])}
        assert {"predictions.csv", "metrics.json", "history.csv"} <= artifacts

    # TensorBoard: the scalars of each run equal its history.csv.
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for d in folders:
        acc = EventAccumulator(str(d / "tensorboard"))
        acc.Reload()
        rows = history(d)
        assert set(acc.Tags()["scalars"]) >= set(rows[0])
        for column in rows[0]:
            events = acc.Scalars(column)
            assert [e.step for e in events] == list(range(1, len(rows) + 1))
            assert [e.value for e in events] == pytest.approx(
                [float(r[column] == "True") if r[column] in ("True", "False")
                 else float(r[column]) for r in rows])
        assert acc.Scalars("test/accuracy")[0].value == pytest.approx(
            store.read_json(d / "metrics.json")["accuracy"], rel=1e-6)

    # Running again trains nothing and adds no MLflow run.
    again = run(suite, tmp_path, render=False)
    assert [o.state for o in again.outcomes] == ["done"] * 2
    assert len(mlflow.search_runs(experiment_names=["tracked"])) == 3


class Broken(Tracker):
    def epoch(self, row, step):
        raise ConnectionError("tracking server down")


class Hanging(Tracker):
    def suite_start(self, suite):
        time.sleep(60)

    def epoch(self, row, step):
        time.sleep(60)


class Busy(Tracker):
    """Works (uses the CPU) three times its budget, as MLflow's import or an SQLite store
    does on a busy machine."""

    def suite_start(self, suite):
        until = time.monotonic() + 1.5
        while time.monotonic() < until:
            pass
        return {"token": 1}


class Polling(Tracker):
    """Waits for a server that never answers, looking every 20 ms."""

    def suite_start(self, suite):
        while True:
            time.sleep(0.02)


class Recording(Tracker):
    calls: ClassVar[list[str]] = []

    def suite_start(self, suite):
        Recording.calls.append("suite_start")
        return {"token": 7}

    def run_start(self, run):
        Recording.calls.append(f"run_start {run.suite_state['token']}")

    def epoch(self, row, step):
        Recording.calls.append(f"epoch {step}")

    def run_end(self, end):
        Recording.calls.append(f"run_end {end.state}")


class TestPlugin:
    @hookimpl
    def register_trackers(self, register):
        register(TrackerSpec("broken", "fails", create=lambda options: Broken()))
        register(TrackerSpec("hanging", "never answers", create=lambda options: Hanging()))
        register(TrackerSpec("busy", "works slowly", create=lambda options: Busy()))
        register(TrackerSpec("polling", "waits", create=lambda options: Polling()))
        register(TrackerSpec("recording", "remembers", create=lambda options: Recording()))


def test_a_failing_tracker_warns_once_and_the_run_goes_on():
    Recording.calls = []
    registry_module = pytest.importorskip("harness.plugin.registry")
    registry = registry_module.build_registry(extra_plugins=[TestPlugin()])
    trackers = tracking.build(registry, [{"name": "broken"}, {"name": "recording"}])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trackers.suite_start(SuiteInfo("s", "s.yaml", Path(".")))
        for step in range(1, 6):
            trackers.epoch({"loss": 1.0}, step)
            time.sleep(0.01)
        trackers.run_end(RunEnd("done", 1.0))
        trackers.close()
    messages = [str(w.message) for w in caught if w.category is tracking.TrackerWarning]
    assert len(messages) == 1 and "'broken'" in messages[0] and "server down" in messages[0]
    assert trackers.off == ["broken"]
    assert Recording.calls[-6:] == [f"epoch {i}" for i in range(1, 6)] + ["run_end done"]


def test_a_hanging_tracker_costs_at_most_its_timeout():
    registry_module = pytest.importorskip("harness.plugin.registry")
    registry = registry_module.build_registry(extra_plugins=[TestPlugin()])
    trackers = tracking.build(registry, [{"name": "hanging", "timeout": 1.0}])
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trackers.suite_start(SuiteInfo("s", "s.yaml", Path(".")))
        for step in range(1, 100):
            trackers.epoch({"loss": 1.0}, step)
        trackers.close()
    assert time.monotonic() - started < 2.0
    assert len([w for w in caught if w.category is tracking.TrackerWarning]) == 1
    assert trackers.off == ["hanging"]


def test_a_tracker_slowed_by_a_busy_machine_is_waited_for():
    """Time in which the tracker's thread runs is not charged: a busy machine never switches
    off a tracker that works (and so never loses its record of a run); a polling wait is
    still charged."""
    registry_module = pytest.importorskip("harness.plugin.registry")
    registry = registry_module.build_registry(extra_plugins=[TestPlugin()])
    trackers = tracking.build(registry, [{"name": "busy", "timeout": 0.5},
                                         {"name": "polling", "timeout": 1.0}])
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        states = trackers.suite_start(SuiteInfo("s", "s.yaml", Path(".")))
    messages = [str(w.message) for w in caught if w.category is tracking.TrackerWarning]
    assert states["busy"] == {"token": 1}
    assert len(messages) == 1 and "'polling'" in messages[0]
    assert trackers.off == ["polling"]
    busy = trackers.lanes[0]
    assert busy.waited < 0.5 and busy.budget > 0
    assert time.monotonic() - started < 1.5 + 1.0 + 1.0


def test_trackers_see_every_epoch_of_every_run_in_the_workers(make_suite, tmp_path):
    """The worker processes read trackers.json: a hanging tracker slows no run much, and a
    tracker's suite state reaches every run."""
    module = tmp_path / "tracker_plugin.py"
    module.write_text(
        "import json, os, time\n"
        "from harness import Tracker, TrackerSpec, hookimpl\n"
        "LOG = os.path.join(os.path.dirname(__file__), 'calls.txt')\n"
        "class Rec(Tracker):\n"
        "    def suite_start(self, suite):\n"
        "        return {'token': 7}\n"
        "    def run_start(self, run):\n"
        "        self.run_id, self.token = run.run_id, run.suite_state['token']\n"
        "    def epoch(self, row, step):\n"
        "        with open(LOG, 'a') as fh:\n"
        "            fh.write(json.dumps([self.run_id, self.token, step, row]) + '\\n')\n"
        "class Hang(Tracker):\n"
        "    def epoch(self, row, step):\n"
        "        time.sleep(600)\n"
        "@hookimpl\n"
        "def register_trackers(register):\n"
        "    register(TrackerSpec('rec', 'records', create=lambda o: Rec()))\n"
        "    register(TrackerSpec('hang', 'hangs', create=lambda o: Hang()))\n")
    sys.path.insert(0, str(tmp_path))
    try:
        suite = make_suite("workers", plugins=["harness.testing.fakes", "tracker_plugin"],
                           trackers=["rec", {"name": "hang", "timeout": 1}])
        import os
        os.environ["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
        try:
            started = time.monotonic()
            result = run(suite, tmp_path, render=False)
            elapsed = time.monotonic() - started
        finally:
            os.environ["PYTHONPATH"] = os.environ["PYTHONPATH"].split(os.pathsep, 1)[1]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("tracker_plugin", None)
    assert [o.state for o in result.outcomes] == ["done", "done"]
    import json
    calls = [json.loads(line) for line in (tmp_path / "calls.txt").read_text().splitlines()]
    for d in run_dirs(tmp_path / "runs" / "workers"):
        rows = history(d)
        mine = [c for c in calls if c[0] == d.name]
        assert [c[2] for c in mine] == list(range(1, len(rows) + 1))
        assert {c[1] for c in mine} == {7}
        assert [str(c[3]["images"]) for c in mine] == [r["images"] for r in rows]
    assert elapsed < 30  # two runs, each held up at most 1 s by the hanging tracker


def test_unknown_tracker_or_option_names_the_key(make_suite, tmp_path):
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match=r"trackers\[0\]\.name: unknown tracker 'mlfow'.*"
                                           r"Did you mean 'mlflow'"):
        run(make_suite("bad1", trackers=["mlfow"]), tmp_path, dry_run=True)
    with pytest.raises(HarnessError, match=r"trackers\[0\]\.options\.tracking_url: unknown "
                                           r"option.*Did you mean 'tracking_uri'"):
        run(make_suite("bad2", trackers=[{"name": "mlflow",
                                          "options": {"tracking_url": "x"}}]),
            tmp_path, dry_run=True)


@pytest.mark.parametrize("store_kind", ["file", "sqlite"])
def test_mlflow_run_that_resumes_goes_on_in_the_same_mlflow_run(tmp_path, monkeypatch,
                                                                 store_kind):
    mlflow = pytest.importorskip("mlflow")
    from harness_plugins.trackers.mlflow_tracker import MlflowTracker

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = ((tmp_path / "mlruns").as_uri() if store_kind == "file"
           else f"sqlite:///{tmp_path / 'mlflow.db'}")
    info = RunInfo(run_id="r1", run_dir=tmp_path / "s" / "r1", suite="s",
                   key={"backbone": "b", "sampler": "none", "engine": "e", "fold": 1,
                        "seed": 0}, combination="b / none / e", config={}, data={})
    for attempt, state in ((1, "interrupted"), (2, "done")):  # killed, then resumed
        tracker = MlflowTracker({"tracking_uri": uri})
        suite_state = tracker.suite_start(SuiteInfo("s", "s.yaml", tmp_path / "s"))
        tracker.run_start(dataclasses.replace(info, suite_state=suite_state, attempt=attempt))
        tracker.epoch({"loss": 1.0 / attempt}, attempt)
        tracker.run_end(RunEnd(state, 1.0))
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["s"], filter_string="tags.`harness.kind` = 'run'")
    assert len(runs) == 1 and runs["status"][0] == "FINISHED"
    assert runs["tags.harness.resumed"][0] == "true"
    history = mlflow.MlflowClient(uri).get_metric_history(runs["run_id"][0], "loss")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 0.5)]


def test_mlflow_tracking_uri_option_then_environment_then_beside_the_runs(tmp_path, monkeypatch):
    from harness_plugins.trackers.mlflow_tracker import tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri({}, tmp_path / "runs") == \
        f"sqlite:///{(tmp_path / 'runs').resolve().as_posix()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert tracking_uri({}, tmp_path) == "http://tracking:5000"
    assert tracking_uri({"tracking_uri": "file:/x/mlruns"}, tmp_path) == "file:/x/mlruns"


def test_mlflow_server_down_warns_once_and_costs_at_most_the_timeout(make_suite, tmp_path):
    pytest.importorskip("mlflow")
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    suite = make_suite("down", trackers=[{"name": "mlflow", "timeout": 3,
                                          "options": {"tracking_uri": f"http://127.0.0.1:{port}"}}])
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run(suite, tmp_path, render=False)
    elapsed = time.monotonic() - started
    assert [o.state for o in result.outcomes] == ["done"] * 2
    messages = [str(w.message) for w in caught if w.category is tracking.TrackerWarning]
    assert len(messages) == 1 and "'mlflow'" in messages[0]
    # Switched off for the whole suite: the workers did not try again.
    settings = store.read_json(tmp_path / "runs" / "down" / "trackers.json")
    assert settings["trackers"][0]["off"] is True
    assert elapsed < 3 + 60  # the suite's own work, plus one timeout


def test_a_tracker_warning_is_one_line_for_the_user():
    import subprocess
    import sys

    code = ("import warnings; from harness.errors import one_line_warnings; "
            "from harness.runs.tracking import TrackerWarning; one_line_warnings(); "
            "warnings.warn(TrackerWarning(\"tracker 'mlflow' is off for this process: refused\"));"
            " warnings.warn('a developer warning')")
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stderr.splitlines()
    assert err[0] == "warning: tracker 'mlflow' is off for this process: refused"
    assert "UserWarning: a developer warning" in err[1]  # others keep Python's format
