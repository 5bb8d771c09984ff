"""One run's folder: the only module that knows its files, their keys and when they agree.

``runs/<suite>/<run_id>/`` holds ``config.json`` (what the run is), ``plan.json`` (its
images and the sampler's plan, readable; its long lists are arrays in ``plan.npz``), ``status.json``, ``history.csv``, ``predictions.csv``,
``metrics.json`` and, until the run is done, ``checkpoints/`` (``drop_checkpoints``). The runner, the worker, the engines (through
``Job``) and the report read and write them through ``RunFolder`` only, so a damaged or
half-written file is recognised in one place and always named in the message.

A folder has one owner at a time: the worker holds ``.lock`` (an OS file lock through
``filelock``) while it trains. The kernel drops such a lock when its holder dies, so the lock
of a killed process (a stale lock, a dead PID) is taken over without a separate check.

Beside the run folders, ``runs/<suite>/`` holds ``manifest.json`` (the run ids of the suite
as last run) and ``trackers.json`` (what every worker reports to); ``SuiteRuns`` owns those.
No other module names a file of either folder (``tests/test_run_folder_owner.py``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import socket
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from filelock import FileLock, Timeout

from harness import store
from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.rundir.predictions import Predictions

CONFIG = "config.json"
PLAN = "plan.json"
#: The long lists of ``plan.json`` (image uids, labels, patients and sources of each part;
#: each phase's indices and sample weights) as arrays: ``numpy.load(path,
#: allow_pickle=False)``. One compressed ``.npz`` rather than a ``.npy`` per list: a run has
#: ~30 of them, and uid strings are ~10x smaller compressed (``tests/test_plan_arrays.py``).
PLAN_ARRAYS = "plan.npz"
HISTORY = "history.csv"
PREDICTIONS = "predictions.csv"
METRICS = "metrics.json"
STATUS = "status.json"
CHECKPOINTS = "checkpoints"
#: ``runs/<suite>/manifest.json``: the run ids of the suite as last run, so a report leaves
#: out folders that earlier settings of the suite left behind.
MANIFEST = "manifest.json"
#: ``runs/<suite>/trackers.json``: the suite's trackers, read by every worker.
TRACKERS = "trackers.json"
#: Run-folder files a tracker may keep as artifacts, when they exist.
ARTIFACTS = (PREDICTIONS, METRICS, HISTORY, CONFIG, PLAN, PLAN_ARRAYS)
LOCK = ".lock"
#: Who holds the lock (pid, host, since): for messages only; the lock itself is the OS's.
OWNER = ".owner.json"
#: What a run produced; removed when it trains again from scratch.
OUTPUTS = (STATUS, HISTORY, PREDICTIONS, METRICS, CHECKPOINTS)
STATES = ("pending", "running", "done", "failed", "interrupted")


class DamagedFile(HarnessError):
    """A run-folder file is missing, unreadable or disagrees with the others."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = Path(path), problem


def _read_object(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DamagedFile(path, "missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DamagedFile(path, f"unreadable ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        problem = "empty" if not text.strip() else f"not valid JSON ({exc.msg}, line {exc.lineno})"
        raise DamagedFile(path, problem) from None
    if not isinstance(data, dict):
        raise DamagedFile(path, f"expected a JSON object, found {type(data).__name__}")
    return data


@dataclass
class Status:
    """``status.json``: where the run stands, and why it stopped when it did not finish."""

    state: str = "pending"
    error: str = ""
    started: float | None = None
    finished: float | None = None
    seconds: float = 0.0
    traceback: str = ""
    #: What the run trained on, in words (``cpu``, the GPU's name); empty when not known.
    device: str = ""
    #: SHA-256 of ``predictions.csv`` and ``metrics.json`` as the run wrote them: a later
    #: edit of either is found (``RunFolder.finished``) and the run trained again.
    predictions_sha256: str = ""
    metrics_sha256: str = ""
    #: Workers started for this run, and their seconds together (``harness.runs.attempts``).
    attempts: int = 0
    total_seconds: float = 0.0
    #: Where a submitted run waits (``slurm job 1234``), written when it is handed over.
    job: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Status:
        known = {f.name for f in fields(cls)}
        status = cls(**{k: v for k, v in data.items() if k in known})
        if status.state not in STATES:
            raise ValueError(f"unknown state {status.state!r}")
        return status


@dataclass
class Part:
    """The images of one part of a fold (train, select or test), in order."""

    uids: list[str]
    labels: list[str]
    #: The patient of each image (the report's bootstrap resamples patients), when known.
    patients: list[str] | None = None
    #: The source dataset of each image (the report's per-source figures), when known.
    sources: list[str] | None = None


@dataclass
class PlanFile:
    """``plan.json``: the sampler's plan and the fold's images, as the worker will use them."""

    sampler: str
    budget: int | None
    plan: dict[str, Any]
    train: Part
    select: Part
    test: Part
    phase_class_counts: list[dict[str, int]] = field(default_factory=list)
    #: Keys this version does not know, kept as they are.
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """As a JSON document; lists are shared, not copied (``dataclasses.asdict`` deep-copies
        every uid of every part: most of the time of planning a run at 15,000 images)."""
        def part(p: Part) -> dict[str, Any]:
            out = {"uids": p.uids, "labels": p.labels}
            out.update({k: v for k, v in (("patients", p.patients), ("sources", p.sources))
                        if v is not None})
            return out

        return {**self.extra, "sampler": self.sampler, "budget": self.budget, "plan": self.plan,
                "train": part(self.train), "select": part(self.select), "test": part(self.test),
                "phase_class_counts": self.phase_class_counts}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlanFile:
        data = {k: v for k, v in data.items() if k != ARRAYS_KEY}
        parts = {}
        for name in ("train", "select", "test"):
            part = data[name]
            uids, labels = list(part["uids"]), list(part["labels"])
            patients, sources = part.get("patients"), part.get("sources")
            if len(uids) != len(labels) or any(
                    x is not None and len(list(x)) != len(uids) for x in (patients, sources)):
                raise ValueError(f"{name}: {len(uids)} uids but {len(labels)} labels"
                                 + ("" if patients is None else f", {len(patients)} patients")
                                 + ("" if sources is None else f", {len(sources)} sources"))
            parts[name] = Part([str(u) for u in uids], [str(v) for v in labels],
                               None if patients is None else [str(p) for p in patients],
                               None if sources is None else [str(v) for v in sources])
        if not parts["test"].uids:
            raise ValueError("test: no images")
        if not isinstance(data["plan"].get("phases"), list) or not data["plan"]["phases"]:
            raise ValueError("plan.phases: expected a non-empty list")
        known = {f.name for f in fields(cls)}
        return cls(sampler=str(data["sampler"]), budget=data.get("budget"), plan=data["plan"],
                   phase_class_counts=list(data.get("phase_class_counts", [])),
                   extra={k: v for k, v in data.items() if k not in known}, **parts)



#: ``plan.json``'s key that names its array file and the sha256 of every array in it.
ARRAYS_KEY = "arrays"
#: Where ``plan.json`` has long lists: per part, and per phase of ``plan.phases``.
PART_LISTS = ("uids", "labels", "patients", "sources")
PHASE_LISTS = ("indices", "sample_weights")


def array_sha256(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes (C order): what ``plan.json`` records."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def _as_array(key: str, values: Sequence[Any]) -> np.ndarray:
    if key in PART_LISTS:
        return np.array([str(v) for v in values], dtype=str)
    if key == "indices":
        array = np.asarray(values, dtype=np.int64)
        small = not array.size or (array.min() >= 0 and array.max() < 2**31)
        return array.astype(np.int32) if small else array
    return np.asarray(values, dtype=np.float64)


def _array_slots(doc: dict[str, Any]):
    """(container, key, array name) of every long list of a ``plan.json`` document."""
    for part in ("train", "select", "test"):
        for key in PART_LISTS:
            if isinstance(doc.get(part), dict) and key in doc[part]:
                yield doc[part], key, f"{part}.{key}"
    phases = (doc.get("plan") or {}).get("phases")
    for i, phase in enumerate(phases if isinstance(phases, list) else []):
        for key in PHASE_LISTS:
            if isinstance(phase, dict) and key in phase:
                yield phase, key, f"phase{i + 1}.{key}"


def split_plan_arrays(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``plan.json``'s document with its long lists replaced by ``{"array": name, "n": len}``,
    and those lists as arrays by name."""
    doc = dict(doc)  # copies of the containers changed below; the lists are not copied
    for part in ("train", "select", "test"):
        if isinstance(doc.get(part), dict):
            doc[part] = dict(doc[part])
    if isinstance(doc.get("plan"), dict) and isinstance(doc["plan"].get("phases"), list):
        doc["plan"] = {**doc["plan"], "phases": [dict(p) if isinstance(p, dict) else p
                                                 for p in doc["plan"]["phases"]]}
    arrays = {}
    for holder, key, name in _array_slots(doc):
        if isinstance(holder[key], (list, tuple, np.ndarray)):
            arrays[name] = _as_array(key, holder[key])
            holder[key] = {"array": name, "n": len(holder[key])}
    if arrays:
        doc[ARRAYS_KEY] = {"file": PLAN_ARRAYS, "read_with": "numpy.load(allow_pickle=False)",
                           "sha256": {name: array_sha256(a) for name, a in arrays.items()}}
    return doc, arrays


def join_plan_arrays(doc: dict[str, Any], path: Path) -> dict[str, Any]:
    """``plan.json``'s document with the arrays of ``path`` (``plan.npz``) put back as lists.

    Every array must be there with the sha256 ``plan.json`` records; older plans (lists
    inline, no ``arrays`` key) come back as they are.
    """
    refs = [(holder, key, holder[key]["array"]) for holder, key, _ in _array_slots(doc)
            if isinstance(holder[key], dict) and "array" in holder[key]]
    if not refs:
        return doc
    hashes = (doc.get(ARRAYS_KEY) or {}).get("sha256") or {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise DamagedFile(path, "missing (plan.json refers to its arrays)") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DamagedFile(path, f"unreadable ({type(exc).__name__}: {exc})") from None
    for holder, key, name in refs:
        if name not in arrays:
            raise DamagedFile(path, f"has no array {name!r} (plan.json refers to it)")
        if hashes.get(name) != array_sha256(arrays[name]):
            raise DamagedFile(path, f"array {name!r} does not match its sha256 in plan.json")
        holder[key] = arrays[name].tolist()
    return doc


@dataclass
class RunConfig:
    """``config.json``: the resolved run, the suite settings it needs, versions, fingerprint.

    ``data`` describes the datasets' versions and contents (when the runner records it);
    ``fingerprint`` hashes what determines the run (see ``harness.runs.staleness``).
    """

    run: dict[str, Any]
    suite: dict[str, Any]
    versions: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] | None = None
    fingerprint: dict[str, str] = field(default_factory=dict)
    #: Keys this version does not know, kept as they are.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return str(self.run["run_id"])

    @property
    def classes(self) -> list[str]:
        return list(self.suite["classes"])

    @property
    def dropped_images(self) -> list[dict[str, str]]:
        """Images left out because they could not be read: ``file`` and ``reason`` each."""
        return list(self.extra.get("dropped_images") or [])

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if out["data"] is None:
            del out["data"]
        return {**out.pop("extra"), **out}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunConfig:
        config = cls(run=dict(data["run"]), suite=dict(data["suite"]),
                     versions=dict(data.get("versions") or {}), data=data.get("data"),
                     fingerprint=dict(data.get("fingerprint") or {}),
                     extra={k: v for k, v in data.items() if k not in {f.name for f in fields(cls)}})
        str(config.run["run_id"])
        classes = config.suite["classes"]
        if not isinstance(classes, list) or len(classes) < 2:
            raise ValueError("suite.classes: expected a list of two or more names")
        return config


#: Per-class figures the report reads from ``metrics.json`` (a number, or null when undefined).
PER_CLASS_FIGURES = ("sensitivity", "specificity", "accuracy", "precision")


def _check_per_class(path: Path, metrics: dict[str, Any], classes: list[str],
                     cm: np.ndarray) -> None:
    """``per_class`` has every class, with the counts the confusion matrix gives."""
    per_class = metrics.get("per_class")
    if not isinstance(per_class, dict) or set(per_class) != set(classes) or not all(
            isinstance(v, dict) for v in per_class.values()):
        raise DamagedFile(path, f"per_class: expected the figures of each of {classes}")
    for k, name in enumerate(classes):
        figures, correct = per_class[name], int(cm[k, k])
        counts = {"support": int(cm[k].sum()), "correct": correct,
                  "not_detected": int(cm[k].sum()) - correct,
                  "wrong_detected": int(cm[:, k].sum()) - correct}
        for key, expected in counts.items():
            if figures.get(key) != expected:
                raise DamagedFile(path, f"per_class.{name}.{key} is {figures.get(key)!r} where "
                                        f"predictions.csv gives {expected}")
        for key in PER_CLASS_FIGURES:
            value = figures.get(key)
            if key not in figures or isinstance(value, bool) or not (
                    value is None or isinstance(value, (int, float))):
                raise DamagedFile(path, f"per_class.{name}.{key}: expected a number or null, "
                                        f"found {value!r}")


@dataclass
class FinishedRun:
    """A done run's files, parsed and found to agree (``RunFolder.finished``)."""

    config: RunConfig
    status: Status
    plan: PlanFile
    predictions: Predictions
    #: ``metrics.json``; ``None`` when absent (older folders), never when damaged.
    metrics: dict[str, Any] | None
    #: ``history.csv``'s rows; ``None`` when the run wrote none.
    history: list[dict[str, str]] | None


class Folder:
    """A typed view of one folder of ``runs/``: it holds the path only, so one is cheap to
    make wherever a path is known, and every read goes to disk."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


class RunFolder(Folder):
    """Typed access to one run folder; reads raise ``DamagedFile`` naming the file."""

    @property
    def name(self) -> str:
        return self.path.name

    def file(self, name: str) -> Path:
        return self.path / name

    # Paths of the files, for messages and for trackers that copy them.
    config_path = property(lambda self: self.file(CONFIG))
    plan_path = property(lambda self: self.file(PLAN))
    status_path = property(lambda self: self.file(STATUS))
    history_path = property(lambda self: self.file(HISTORY))
    predictions_path = property(lambda self: self.file(PREDICTIONS))
    metrics_path = property(lambda self: self.file(METRICS))

    def is_run(self) -> bool:
        """A folder the runner made: it has ``config.json`` or ``status.json``."""
        return self.path.is_dir() and (self.config_path.exists() or self.status_path.exists())

    def has_config(self) -> bool:
        return self.config_path.exists()

    def is_run_file(self, damage: DamagedFile) -> bool:
        """Whether ``damage`` is in ``config.json`` or the plan (the run is planned anew)."""
        return damage.path in (self.config_path, self.plan_path, self.file(PLAN_ARRAYS))

    # -- reading -------------------------------------------------------------------------

    def _typed(self, name: str, parse):
        path = self.file(name)
        data = _read_object(path)
        try:
            return parse(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
            raise DamagedFile(path, f"unexpected content ({detail})") from None

    def config(self) -> RunConfig:
        return self._typed(CONFIG, RunConfig.from_json)

    def plan(self) -> PlanFile:
        arrays = self.file(PLAN_ARRAYS)
        return self._typed(PLAN, lambda doc: PlanFile.from_json(join_plan_arrays(doc, arrays)))

    def plan_document(self) -> dict[str, Any]:
        """The whole plan as one JSON-ready dict: ``plan.json`` with its arrays as lists."""
        return self.plan().to_json()

    def metrics(self) -> dict[str, Any]:
        return _read_object(self.file(METRICS))

    def status(self) -> Status:
        """The run's status; a missing file is ``pending``, an unreadable one ``running``.

        Status is written atomically, so an unreadable one means the folder was damaged;
        ``running`` makes the runner try the run again.
        """
        if not self.file(STATUS).exists():
            return Status()
        try:
            return self._typed(STATUS, Status.from_json)
        except DamagedFile:
            return Status("running")

    def status_damage(self) -> DamagedFile | None:
        """What is wrong with a present ``status.json``, or ``None``."""
        if not self.file(STATUS).exists():
            return None
        try:
            self._typed(STATUS, Status.from_json)
        except DamagedFile as exc:
            return exc
        return None

    def state(self) -> str:
        status = self.status()
        if status.state == "done" and not self.file(PREDICTIONS).exists():
            return "running"
        return status.state

    def has_run_files(self) -> bool:
        """``config.json`` and ``plan.json`` are present and parse (a run can start)."""
        try:
            self.config()
            self.plan()
        except DamagedFile:
            return False
        return True

    def history(self) -> list[dict[str, str]] | None:
        """``history.csv``'s rows as written (strings), ``None`` when the run wrote none."""
        path = self.history_path
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise DamagedFile(path, f"unreadable ({exc})") from None
        if text and not text.endswith("\n"):  # rows are written whole, newline included
            raise DamagedFile(path, f"line {text.count(chr(10)) + 1} is cut short (truncated?)")
        try:
            lines = [r for r in csv.reader(io.StringIO(text, newline="")) if r]
        except csv.Error as exc:
            raise DamagedFile(path, f"not valid CSV ({exc})") from None
        if not lines:
            return []
        header, rows = lines[0], []
        for i, line in enumerate(lines[1:]):
            if len(line) != len(header):
                raise DamagedFile(path, f"line {i + 2}: {len(line)} field(s) where the header "
                                        f"has {len(header)} (truncated?)")
            rows.append(dict(zip(header, line)))
        return rows

    def drop_checkpoints(self) -> None:
        """Remove the resumable checkpoint of a run recorded ``done``: nothing reads it
        once the run is done (predictions and metrics are written; no engine keeps weights
        in it for later use), and for a real network it is ~0.6 GB a run. Renamed away
        first, so the folder never holds half a checkpoint."""
        path = self.file(CHECKPOINTS)
        if not path.exists():
            return
        doomed = path.with_name(f".{CHECKPOINTS}-removed-{os.getpid()}")
        try:
            path.rename(doomed)
        except OSError:
            doomed = path
        shutil.rmtree(doomed, ignore_errors=True)

    def has_checkpoints(self) -> bool:
        """Whether training left a checkpoint (a run that starts now resumes)."""
        path = self.file(CHECKPOINTS)
        return path.is_dir() and any(path.iterdir())

    def artifacts(self) -> dict[str, Path]:
        """The run's result files that exist, by name."""
        return {name: self.file(name) for name in ARTIFACTS if self.file(name).is_file()}

    def predictions(self, classes: list[str]) -> Predictions:
        from harness.rundir.predictions import read_predictions

        try:
            return read_predictions(self.file(PREDICTIONS), classes)
        except HarnessError as exc:
            message = str(exc)
            prefix = f"{self.file(PREDICTIONS)}"
            problem = message[len(prefix):].lstrip(":, ") if message.startswith(prefix) else message
            raise DamagedFile(self.file(PREDICTIONS), problem) from None

    # -- writing -------------------------------------------------------------------------

    def write_config(self, config: RunConfig) -> None:
        store.write_json(self.file(CONFIG), config.to_json())

    def write_plan(self, plan: PlanFile) -> None:
        """``plan.npz`` (the long lists as arrays), then ``plan.json`` that names them."""
        doc, arrays = split_plan_arrays(plan.to_json())
        if arrays:
            store.atomic_write(self.file(PLAN_ARRAYS),
                               lambda fh: np.savez_compressed(fh, **arrays), mode="wb")
        else:
            self.file(PLAN_ARRAYS).unlink(missing_ok=True)
        store.write_json(self.file(PLAN), doc)

    def write_status(self, state: str, **values: Any) -> None:
        status = Status(state=state, **values)
        store.write_json(self.file(STATUS), {k: v for k, v in asdict(status).items()
                                             if v not in (None, "") or k == "state"})

    def sha256(self, name: str) -> str:
        """SHA-256 of one of the folder's files (what ``status.json`` seals)."""
        import hashlib

        return hashlib.sha256(self.file(name).read_bytes()).hexdigest()

    def write_predictions(self, text: str) -> None:
        store.write_text(self.file(PREDICTIONS), text)

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        store.write_json(self.file(METRICS), metrics)

    def write_done(self, metrics: dict[str, Any], **status: Any) -> None:
        """``metrics.json`` (naming the predictions it was computed from), then ``done`` in
        ``status.json`` sealing both files: any later edit is found by ``finished``."""
        predictions_sha256 = self.sha256(PREDICTIONS)
        self.write_metrics({**metrics, "predictions_sha256": predictions_sha256})
        self.write_status("done", predictions_sha256=predictions_sha256,
                          metrics_sha256=self.sha256(METRICS), **status)

    def history_appender(self, columns: Sequence[str]) -> HistoryAppender:
        """``history.csv`` open for one row per epoch (after the header in a new file)."""
        return HistoryAppender(self.history_path, columns)

    def write_history(self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
        """``history.csv`` replaced by ``rows`` (a resumed run's rows from its checkpoint)."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
        store.write_text(self.history_path, buf.getvalue())

    @property
    def checkpoints_path(self) -> Path:
        """Where training keeps its checkpoints; unlike ``checkpoint_dir``, not created."""
        return self.file(CHECKPOINTS)

    @property
    def checkpoint_dir(self) -> Path:
        path = self.checkpoints_path
        path.mkdir(parents=True, exist_ok=True)
        return path

    def clear(self, plan_too: bool = False) -> None:
        """Remove what the run produced (and its config and plan): it trains from scratch."""
        for name in OUTPUTS + ((CONFIG, PLAN, PLAN_ARRAYS) if plan_too else ()):
            path = self.file(name)
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    # -- verifying -----------------------------------------------------------------------

    def verify(self) -> None:
        """Check that a finished run's files parse and agree; raise ``DamagedFile`` if not.

        Status, config and plan parse; ``predictions.csv`` has the plan's test images in its
        order with their labels, probabilities that sum to one and argmax predictions; and
        ``metrics.json`` has the count, confusion matrix and accuracy the predictions give.
        """
        self.finished(metrics_required=True)

    def finished(self, metrics_required: bool = False) -> FinishedRun:
        """A done run's files, parsed and checked against each other as ``verify`` does.

        The report reads runs only through this, so a damaged run is named, never half-read.
        Without ``metrics_required`` a missing ``metrics.json`` (older folders) gives
        ``metrics=None`` for the caller to recompute; a present one must agree all the same.
        """
        status = self._typed(STATUS, Status.from_json)
        if status.state != "done":
            raise DamagedFile(self.status_path, f"state is {status.state!r}, not 'done'")
        config = self.config()
        if config.run_id != self.name:
            raise DamagedFile(self.config_path, f"run id {config.run_id!r} is not the "
                                                f"folder's name {self.name!r}")
        classes = config.classes
        plan = self.plan()
        unknown = sorted({c for p in (plan.train, plan.select, plan.test) for c in p.labels}
                         - set(classes))
        if unknown:
            raise DamagedFile(self.plan_path, f"labels {unknown} are not among {classes}")
        table = self.predictions(classes)
        where = self.predictions_path
        if len(table) != len(plan.test.uids):
            raise DamagedFile(where, f"{len(table)} rows where plan.json has "
                                     f"{len(plan.test.uids)} test images")
        if table.uids != plan.test.uids:
            i = next(i for i, (a, b) in enumerate(zip(table.uids, plan.test.uids)) if a != b)
            raise DamagedFile(where, f"line {i + 2}: uid {table.uids[i]!r} where plan.json "
                                     f"has {plan.test.uids[i]!r}")
        true = [classes[t] for t in table.true]
        if true != plan.test.labels:
            i = next(i for i, (a, b) in enumerate(zip(true, plan.test.labels)) if a != b)
            raise DamagedFile(where, f"line {i + 2}: true label {true[i]!r} where plan.json "
                                     f"has {plan.test.labels[i]!r}")
        proba = table.proba
        if proba is None:
            raise DamagedFile(where, "no probability columns")
        bad = np.flatnonzero((proba < 0).any(axis=1) | (proba > 1).any(axis=1)
                             | (np.abs(proba.sum(axis=1) - 1) > 1e-3))
        if len(bad):
            raise DamagedFile(where, f"line {bad[0] + 2}: probabilities are not in [0, 1] or "
                                     "do not sum to 1")
        top = proba[np.arange(len(table)), table.pred]
        off = np.flatnonzero(top < proba.max(axis=1) - 1e-6)
        if len(off):
            raise DamagedFile(where, f"line {off[0] + 2}: 'pred' is not the most probable class")
        metrics = None
        if metrics_required or self.metrics_path.exists():
            metrics = self._typed(METRICS, lambda d: d)
            from harness.rundir.predictions import confusion

            cm = confusion(table.true, table.pred, len(classes))
            accuracy = float(np.trace(cm) / max(cm.sum(), 1))
            try:
                agree = (int(metrics["n"]) == len(table)
                         and np.array_equal(np.asarray(metrics["confusion"]), cm)
                         and abs(float(metrics["accuracy"]) - accuracy) < 1e-9)
            except (KeyError, TypeError, ValueError):
                raise DamagedFile(self.metrics_path, "lacks n, confusion or accuracy") from None
            if not agree:
                raise DamagedFile(self.metrics_path, "does not match predictions.csv (count, "
                                                     "confusion matrix or accuracy)")
            _check_per_class(self.metrics_path, metrics, classes, cm)
        self._check_seal(status)  # last: an inconsistency above says more than a hash
        return FinishedRun(config, status, plan, table, metrics, self.history())

    def _check_seal(self, status: Status) -> None:
        """``predictions.csv`` and ``metrics.json`` are the files the run wrote: their
        SHA-256 match those ``status.json`` (and ``metrics.json``) recorded. Folders written
        before the seal existed carry no hashes and are checked by content only."""
        sealed = {PREDICTIONS: status.predictions_sha256, METRICS: status.metrics_sha256}
        if self.metrics_path.exists() and status.metrics_sha256:
            recorded = self._typed(METRICS, lambda d: d).get("predictions_sha256")
            if recorded != status.predictions_sha256:
                raise DamagedFile(self.metrics_path, "records another predictions.csv than "
                                                     "status.json (edited after the run)")
        for name, digest in sealed.items():
            if not digest:
                continue
            try:
                actual = self.sha256(name)
            except FileNotFoundError:
                raise DamagedFile(self.file(name), "missing") from None
            except OSError as exc:
                raise DamagedFile(self.file(name), f"unreadable ({exc})") from None
            if actual != digest:
                raise DamagedFile(self.file(name), "edited after the run finished (its "
                                                   "SHA-256 is not the one status.json records)")

    def verified(self) -> DamagedFile | None:
        """``None`` when the run is done and its files agree, else what is wrong."""
        try:
            self.verify()
        except DamagedFile as exc:
            return exc
        return None

    # -- ownership -----------------------------------------------------------------------

    def lock(self) -> RunLock:
        return RunLock(self)


class RunLock:
    """The folder's owner lock; ``acquire(timeout=0)`` raises ``Busy`` naming the owner."""

    class Busy(HarnessError):
        pass

    def __init__(self, folder: RunFolder):
        self.folder = folder
        folder.path.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(folder.file(LOCK))

    def owner(self) -> str:
        try:
            data = json.loads(self.folder.file(OWNER).read_text())
            since = time.strftime("%H:%M:%S", time.localtime(data["since"]))
            return f"pid {data['pid']} on {data['host']} (since {since})"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def acquire(self, timeout: float = -1) -> RunLock:
        try:
            self._lock.acquire(timeout=timeout)
        except Timeout:
            raise self.Busy(f"run {self.folder.name} is being trained by {self.owner()}") \
                from None
        store.write_json(self.folder.file(OWNER), {"pid": os.getpid(),
                                                   "host": socket.gethostname(),
                                                   "since": time.time()})
        return self

    @property
    def is_held(self) -> bool:
        return self._lock.is_locked

    def release(self) -> None:
        if self._lock.is_locked:
            self.folder.file(OWNER).unlink(missing_ok=True)
            self._lock.release()


class SuiteRuns(Folder):
    """``runs/<suite>/``: its run folders, ``manifest.json`` and ``trackers.json``."""

    @classmethod
    def of(cls, run_dir: str | Path) -> SuiteRuns:
        """The suite folder a run folder is in."""
        return cls(Path(run_dir).parent)

    def run(self, run_id: str) -> RunFolder:
        return RunFolder(store.child(self.path, run_id))

    def folders(self) -> list[RunFolder]:
        """Its run folders (with ``config.json`` or ``status.json``), by name."""
        if not self.path.is_dir():
            return []
        return [f for f in map(RunFolder, sorted(self.path.iterdir())) if f.is_run()]

    def has_runs(self) -> bool:
        """Whether any folder inside has a ``config.json`` (a suite's folder, not ``runs/``)."""
        return self.path.is_dir() and any(RunFolder(p).has_config()
                                          for p in self.path.iterdir() if p.is_dir())

    def last_status_change(self) -> float:
        """When a run's status last changed (file time; 0 when no run has a status)."""
        times = [f.status_path.stat().st_mtime for f in self.folders()
                 if f.status_path.exists()]
        return max(times, default=0.0)

    # -- manifest.json -------------------------------------------------------------------

    def write_manifest(self, suite: str, source: str, run_ids: Sequence[str]) -> None:
        store.write_json(store.child(self.path, MANIFEST),
                         {"suite": suite, "source": source, "run_ids": list(run_ids)})

    def run_ids(self) -> set[str] | None:
        """Run ids of the suite as last run; ``None`` without a readable manifest."""
        try:
            data = _read_object(self.path / MANIFEST)
            return {str(r) for r in data["run_ids"]}
        except (DamagedFile, KeyError, TypeError):
            return None

    # -- trackers.json -------------------------------------------------------------------

    def write_trackers(self, plugins: Sequence[str], trackers: Sequence[Mapping[str, Any]]
                       ) -> None:
        store.write_json(store.child(self.path, TRACKERS),
                         {"plugins": list(plugins), "trackers": [dict(t) for t in trackers]})

    @property
    def trackers_path(self) -> Path:
        return self.path / TRACKERS

    def trackers(self) -> tuple[list[str], list[dict[str, Any]]] | None:
        """``(plugins, trackers)`` the suite's workers report to; ``None`` without the file.

        Raises ``DamagedFile`` when the file cannot be read or lacks those lists.
        """
        path = self.trackers_path
        if not path.is_file():
            return None
        data = _read_object(path)
        plugins, trackers = data.get("plugins", []), data.get("trackers", [])
        if not isinstance(plugins, list) or not isinstance(trackers, list) or not all(
                isinstance(t, dict) for t in trackers):
            raise DamagedFile(path, "expected lists 'plugins' and 'trackers' (objects)")
        return [str(p) for p in plugins], trackers


class HistoryAppender:
    """``history.csv`` kept open while a run trains: one row per epoch, flushed to the
    operating system at once (a crash of the process loses no finished epoch), without
    opening the file and building a writer per epoch."""

    def __init__(self, path: Path, columns: Sequence[str]):
        self.path = Path(path)
        self.columns = list(columns)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self.fh = open(self.path, "a", newline="")  # noqa: SIM115 - closed by close()
        self.writer = csv.DictWriter(self.fh, fieldnames=self.columns)
        if new:
            self.writer.writeheader()

    def append(self, row: Mapping[str, Any]) -> None:
        self.writer.writerow(row)
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()

    def __enter__(self) -> HistoryAppender:  # noqa: PYI034 (final class)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
