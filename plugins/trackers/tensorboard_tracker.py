"""The ``tensorboard`` tracker: event files in each run's folder, one scalar per history value.

``tensorboard --logdir runs/<suite>`` then shows every run of the suite, named by its run
id. A run trained from scratch (``--rerun``) starts its event folder afresh; a resumed run
marks where it goes on (a ``SessionLog.START`` at its first step), so TensorBoard drops the
earlier attempt's events from that step on and every step has one value. Written with TensorBoard's own event writer and protocol buffers (``pip install
'cxr-harness[tensorboard]'``), never through TensorFlow or torch: a keras run and a torch run
write the same files.
"""

from __future__ import annotations

import shutil
import sys
import time
import types
from typing import Any

from harness_plugins.trackers.common import final_metrics, numbers, safe_name
from pydantic import Field

from harness import (
    HarnessError,
    Options,
    RunEnd,
    RunInfo,
    SuiteInfo,
    Tracker,
    TrackerSpec,
    hookimpl,
)

SUBDIR = "tensorboard"


def _event_api():
    """TensorBoard's writer and protos, without TensorFlow.

    ``tensorboard.compat`` imports TensorFlow whenever it is installed (13 s and a second
    framework in a torch worker) unless ``tensorboard.compat.notf`` can be imported: the
    switch TensorBoard's own TensorFlow-free build uses. Where TensorFlow is loaded already
    it is used as is.
    """
    if "tensorflow" not in sys.modules:
        sys.modules.setdefault("tensorboard.compat.notf",
                               types.ModuleType("tensorboard.compat.notf"))
    try:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError as exc:
        raise HarnessError("tracker 'tensorboard' needs TensorBoard: "
                           "pip install 'cxr-harness[tensorboard]'") from exc
    return EventFileWriter, Event, Summary


class TensorboardOptions(Options):
    subdir: str = Field(SUBDIR, min_length=1, description="folder inside each run folder for "
                        "the event files")


class TensorboardTracker(Tracker):
    def __init__(self, options):
        self.subdir = TensorboardOptions.of(options).subdir
        self.writer = None
        self.step = 0
        self.goes_on = False

    def _write(self, values: dict[str, float], step: int) -> None:
        _, Event, Summary = _event_api()
        summary = Summary(value=[Summary.Value(tag=safe_name(k), simple_value=v)
                                 for k, v in values.items()])
        self.writer.add_event(Event(wall_time=time.time(), step=int(step), summary=summary))

    def recorded(self, suite: SuiteInfo) -> set[str]:
        """Runs whose folder holds event files."""
        return {d.name for d in suite.runs_dir.iterdir()
                if any((d / self.subdir).glob("events.out.tfevents.*"))}

    def run_start(self, run: RunInfo) -> None:
        EventFileWriter, _, _ = _event_api()
        folder = run.run_dir / self.subdir
        if run.attempt == 1 or run.backfill:  # a fresh record: no earlier attempt's events
            shutil.rmtree(folder, ignore_errors=True)
        self.goes_on = not (run.attempt == 1 or run.backfill)
        self.writer = EventFileWriter(str(folder))

    def epoch(self, row: dict[str, Any], step: int) -> None:
        if self.writer is None:
            return
        if self.goes_on:  # TensorBoard drops what an earlier attempt logged from here on
            _, Event, _ = _event_api()
            from tensorboard.compat.proto.event_pb2 import SessionLog

            self.writer.add_event(Event(wall_time=time.time(), step=int(step),
                                        session_log=SessionLog(status=SessionLog.START)))
            self.goes_on = False
        self.step = step
        self._write(numbers(row), step)
        self.writer.flush()

    def run_end(self, end: RunEnd) -> None:
        if self.writer is None or not end.metrics:
            return
        self._write(dict(final_metrics(end.metrics)), max(self.step, 1))
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


@hookimpl
def register_trackers(register):
    register(TrackerSpec(
        name="tensorboard",
        description="TensorBoard event files in each run folder: history scalars per epoch, "
                    "test figures at the end",
        create=TensorboardTracker,
        options=TensorboardOptions,
    ))
