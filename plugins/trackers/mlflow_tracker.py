"""The ``mlflow`` tracker: one experiment per suite, one MLflow run per harness run.

Each suite gets a parent MLflow run (its report is logged there at the end) and every
harness run a child run under it, named by its run id and tagged with its backbone,
sampler, engine, fold, seed and combination: params (the resolved settings and data
version), the history per epoch (``step`` = history row), the final test figures and the
run folder's files as artifacts. A run that resumes, or is retried on another node, goes on
in the same MLflow run (found by its ``harness.run_id`` tag); a run trained again from
scratch (``--rerun``) gets a new MLflow run and the old one is tagged
``harness.replaced``. Finished runs with no MLflow run (the server was down) are recorded
from their folders on the next ``harness run`` (``recorded``). The parent says how many
runs the suite has (``harness.runs``) and how many child runs it holds
(``harness.child_runs``); it is FINISHED only when every run is done and recorded.

Uses ``MlflowClient`` only, never ``mlflow.start_run``: no global active run, no exit hook
that could wait on a server that is down.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from harness_plugins.trackers.common import final_metrics, flatten, numbers, safe_name
from pydantic import Field

from harness import (
    HarnessError,
    Options,
    RunEnd,
    RunInfo,
    SuiteEnd,
    SuiteInfo,
    Tracker,
    TrackerSpec,
    hookimpl,
)

#: MLflow's limits on one ``log_batch`` call and on a param value.
BATCH_METRICS, BATCH_PARAMS, PARAM_CHARS = 1000, 100, 6000


def tracking_uri(options: dict[str, Any], runs_root: Path) -> str:
    """The option, else ``MLFLOW_TRACKING_URI``, else an SQLite store beside the run folders."""
    uri = options.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return str(uri)
    return f"sqlite:///{(Path(runs_root).resolve() / 'mlflow.db').as_posix()}"


def refused(uri: str, seconds: float = 2.0) -> str | None:
    """Why an ``http(s)://`` tracking server cannot be reached (``None`` when its port answers,
    or the URI names no server).

    One TCP connect, before MLflow is imported: a dead server then costs milliseconds,
    instead of MLflow's import (seconds of CPU in every process) and its retries."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        socket.create_connection((parts.hostname, port), timeout=seconds).close()
    except (OSError, ValueError) as exc:
        return f"MLflow server {uri} cannot be reached: {exc}"
    return None


def client_for(uri: str):
    problem = refused(uri)
    if problem:
        raise HarnessError(problem)
    try:
        from mlflow import MlflowClient
    except ImportError as exc:
        raise HarnessError("tracker 'mlflow' needs MLflow: pip install 'cxr-harness[mlflow]'") \
            from exc
    if uri.startswith("file:") or "://" not in uri:
        # MLflow 3 refuses a file store unless asked; naming a file: URI is asking.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    # MLflow retries a refused connection 7 times with pauses growing from 2 s (minutes);
    # the harness has its own time budget, and the next `harness run` records what a
    # tracker missed, so a server that dies mid-run is given up on after one immediate
    # retry (urllib3 waits before the second retry only). The environment overrides these.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    return MlflowClient(tracking_uri=uri)


def experiment_id(client, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # another worker created it a moment ago
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


REPLACED = "harness.replaced"


def find_run(client, exp_id: str, tag: str, value: str) -> str | None:
    """The newest MLflow run with ``tag = value`` that was not replaced by a rerun."""
    runs = client.search_runs([exp_id], filter_string=f"tags.`{tag}` = '{value}'",
                              max_results=20, order_by=["attributes.start_time DESC"])
    current = [r for r in runs if r.data.tags.get(REPLACED) != "true"]
    return current[0].info.run_id if current else None


def child_runs(client, exp_id: str, parent: str) -> list:
    return client.search_runs([exp_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'",
                              max_results=50000)


class MlflowOptions(Options):
    tracking_uri: str | None = Field(None, description="MLflow tracking URI (file:, sqlite:, "
                                     "http(s)://); default MLFLOW_TRACKING_URI, else "
                                     "sqlite:///<runs>/mlflow.db")
    experiment: str | None = Field(None, description="experiment name (default: the suite's "
                                   "name)")
    nested: bool = Field(True, description="runs nested under one parent run per suite")
    artifacts: bool = Field(True, description="log predictions, metrics, history, config, "
                            "plan and the report as artifacts")


class MlflowTracker(Tracker):
    def __init__(self, options):
        self.options = MlflowOptions.of(options).model_dump()
        self.client = None
        self.run_id: str | None = None
        self.parent: str | None = None
        self.experiment: str | None = None
        self.last_step = 0

    def _connect(self, uri: str) -> None:
        if self.client is None:
            self.client = client_for(uri)

    def _log(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(safe_name(k), v, now, int(step)) for k, v in metrics.items()]
        for i in range(0, len(items), BATCH_METRICS):
            self.client.log_batch(self.run_id, metrics=items[i:i + BATCH_METRICS])

    def suite_start(self, suite: SuiteInfo) -> dict[str, Any]:
        uri = tracking_uri(self.options, suite.runs_dir.parent)
        self._connect(uri)
        exp = self.experiment = experiment_id(self.client,
                                              self.options.get("experiment") or suite.name)
        state: dict[str, Any] = {"tracking_uri": uri, "experiment_id": exp}
        if self.options.get("nested", True):
            parent = find_run(self.client, exp, "harness.suite_run", suite.name)
            if parent is None:
                parent = self.client.create_run(exp, run_name=suite.name, tags={
                    "harness.suite_run": suite.name, "harness.suite": suite.name,
                    "harness.kind": "suite", "harness.source": suite.source,
                }).info.run_id
            else:
                self.client.update_run(parent, status="RUNNING")
            self.client.set_tag(parent, "harness.runs", str(len(suite.run_ids)))
            state["parent_run_id"] = self.parent = parent
        return state

    def run_start(self, run: RunInfo) -> None:
        state = run.suite_state
        uri = state.get("tracking_uri") or tracking_uri(self.options, run.run_dir.parent.parent)
        self._connect(uri)
        exp = state.get("experiment_id") or experiment_id(
            self.client, self.options.get("experiment") or run.suite)
        self.run_id = find_run(self.client, exp, "harness.run_id", run.run_id)
        if self.run_id is not None and run.attempt > 1:
            self.client.update_run(self.run_id, status="RUNNING")
            self.client.set_tag(self.run_id, "harness.resumed", "true")
            return
        if self.run_id is not None:  # trained again from scratch: a fresh record
            self.client.set_tag(self.run_id, REPLACED, "true")
        tags = {"harness.run_id": run.run_id, "harness.suite": run.suite,
                "harness.kind": "run", "harness.combination": run.combination,
                **{f"harness.{k}": str(v) for k, v in run.key.items()}}
        if run.backfill:
            tags["harness.backfilled"] = "true"
        if state.get("parent_run_id"):
            tags["mlflow.parentRunId"] = state["parent_run_id"]
        self.run_id = self.client.create_run(exp, run_name=run.run_id, tags=tags).info.run_id
        self._params(run)

    def _params(self, run: RunInfo) -> None:
        from mlflow.entities import Param

        config = run.config
        settings = {**run.key, "training": config.get("run", {}).get("training", {}),
                    "sampler_options": config.get("run", {}).get("sampler_options", {}),
                    "image_size": config.get("suite", {}).get("image_size"),
                    "split": config.get("suite", {}).get("split", {}),
                    "data": run.data, "versions": config.get("versions", {})}
        params = [Param(k[:250], v[:PARAM_CHARS]) for k, v in flatten(settings)]
        for i in range(0, len(params), BATCH_PARAMS):
            self.client.log_batch(self.run_id, params=params[i:i + BATCH_PARAMS])

    def epoch(self, row: dict[str, Any], step: int) -> None:
        if self.run_id is None:
            return
        self.last_step = step
        self._log(numbers(row), step)

    def run_end(self, end: RunEnd) -> None:
        if self.run_id is None:
            return
        if end.metrics:
            self._log(dict(final_metrics(end.metrics)), max(self.last_step, 1))
        if self.options.get("artifacts", True):
            for path in end.artifacts.values():
                self.client.log_artifact(self.run_id, str(path))
        if end.error:
            self.client.set_tag(self.run_id, "harness.error", end.error[:PARAM_CHARS])
        self.client.set_tag(self.run_id, "harness.seconds", f"{end.seconds:.1f}")
        status = {"done": "FINISHED", "interrupted": "KILLED"}.get(end.state, "FAILED")
        self.client.set_terminated(self.run_id, status=status)

    def recorded(self, suite: SuiteInfo) -> set[str] | None:
        if self.client is None or self.experiment is None:
            return None
        runs = self.client.search_runs([self.experiment],
                                       filter_string="tags.`harness.kind` = 'run'",
                                       max_results=50000)
        return {r.data.tags.get("harness.run_id") for r in runs
                if r.data.tags.get(REPLACED) != "true"}

    def suite_end(self, end: SuiteEnd) -> None:
        if self.parent is None:
            return
        if end.report_dir is not None and Path(end.report_dir).is_dir() \
                and self.options.get("artifacts", True):
            self.client.log_artifacts(self.parent, str(end.report_dir), artifact_path="report")
        states = list(end.states.values())
        for state in sorted(set(states)):
            self.client.set_tag(self.parent, f"harness.runs_{state}", str(states.count(state)))
        children = {r.data.tags.get("harness.run_id")
                    for r in child_runs(self.client, self.experiment, self.parent)
                    if r.data.tags.get(REPLACED) != "true"}
        held = len(children & set(end.states))
        self.client.set_tag(self.parent, "harness.child_runs", str(held))
        done = all(s == "done" for s in states) and held == len(states)
        self.client.set_terminated(self.parent, status="FINISHED" if done else "FAILED")


@hookimpl
def register_trackers(register):
    register(TrackerSpec(
        name="mlflow",
        description="MLflow: an experiment per suite, a run per harness run (params, "
                    "metrics per epoch, test figures, artifacts)",
        create=MlflowTracker,
        options=MlflowOptions,
    ))
