"""The training loop every engine shares: phases, epochs, selection, checkpoints, history.

``train(job, engine)`` runs a plan with an engine's primitives (``harness.plugin.engine``):

- phases in order, model and optimizer state carried over; per phase ``head_only`` (backbone
  frozen), ``classifier_only`` (only the final linear layer trains) and ``reset_classifier``
  (the final linear layer re-drawn at the phase's start);
- every epoch's images, order and augmentation from the run seed, fold, phase and epoch, so
  a resumed run repeats exactly what an uninterrupted one does;
- the selection split scored on the schedule of ``harness.training.schedule``, counted over
  the plan's selectable phases (``Phase.selectable``); the best
  weights kept in host memory (strict improvements: the first best epoch wins);
- a checkpoint as ``harness.training.checkpoint.Policy`` says (every N minutes, every phase
  end, on SIGTERM/SIGINT), written in the background;
- one history row per epoch through ``Job.log_epoch`` (where trackers are notified);
- the final prediction of the test split with the selected weights.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.interrupts import Interrupted
from harness.plugin.engine import Batch, EngineContext, LossSpec, missing_primitives
from harness.progress import Bars, is_enabled
from harness.training import batches as host
from harness.training import checkpoint
from harness.training.optim import check_loss, optimizer_def
from harness.training.schedule import selection_epochs


@dataclass
class Position:
    """Where training stands: the next (phase, epoch) to run (0-based), the best so far."""

    phase: int = 0
    epoch: int = 0
    best_score: float | None = None
    #: 1-based (phase, epoch) of the best selection score.
    best_at: list[int] | None = None


def seed_for(*parts: int) -> int:
    """A 31-bit seed from integers (run seed, fold, phase, epoch, purpose)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] >> 1)


def selection_score(labels: np.ndarray, probs: np.ndarray,
                    metric: str = "balanced_accuracy") -> float:
    """Score used to pick the best epoch on the selection split (higher is better)."""
    pred = probs.argmax(axis=1)
    if metric == "accuracy":
        return float((pred == labels).mean()) if len(labels) else 0.0
    present = np.unique(labels)
    recalls = [float((pred[labels == c] == c).mean()) for c in present]
    return float(np.mean(recalls)) if recalls else 0.0


def loss_spec(plan) -> LossSpec:
    options = dict(plan.loss_options or {})
    unknown = set(options) - {"gamma", "alpha"}
    if unknown:
        raise HarnessError(f"plan.loss_options: unknown key(s) {', '.join(sorted(unknown))}; "
                           "known: gamma, alpha")
    return LossSpec(name=check_loss(plan.loss), class_weights=plan.class_weights,
                    gamma=float(options.get("gamma", 2.0)),
                    alpha=[float(a) for a in options["alpha"]]
                    if options.get("alpha") is not None else None)


def context_for(job, threads: int = 0) -> EngineContext:
    """What the engine is told about the run (no cache, no plan indices, no run folder)."""
    t = job.training
    optimizer_def(t.optimizer)
    loss = loss_spec(job.plan)
    for what, values in (("class_weights", loss.class_weights), ("loss_options.alpha",
                                                                  loss.alpha)):
        if values is not None and len(values) != job.n_classes:
            raise HarnessError(f"plan.{what}: {len(values)} values for {job.n_classes} classes")
    return EngineContext(backbone=job.backbone, image_size=job.image_size,
                         n_classes=job.n_classes, training=t, loss=loss,
                         seed=int(job.run.seed), backbone_options=job.backbone_options,
                         threads=threads)


class StopSignal:
    """SIGTERM/SIGINT ask the loop to stop after the current epoch (checkpoint first); a
    second signal more than ``repeat`` seconds later stops at once. Installed only in the
    main thread. (One Ctrl-C often arrives twice: from the terminal to the whole process
    group, then from the launcher passing it on, ``harness.runs.launch.stop``.)"""

    def __init__(self, repeat: float = 2.0):
        self.requested: str | None = None
        self.signum = 0
        self.previous: dict[int, Any] = {}
        self.repeat = repeat
        self.at = 0.0

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            if time.monotonic() - self.at > self.repeat:
                raise KeyboardInterrupt
            return
        self.requested, self.signum = signal.Signals(signum).name, signum
        self.at = time.monotonic()

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _counted(items: Iterable[Batch], bars: Bars, task) -> Iterator[Batch]:
    for item in items:
        yield item
        bars.update(task, advance=1)


def _trainable(phase) -> str:
    """What a phase trains: ``EngineModel.set_trainable``'s part."""
    if getattr(phase, "classifier_only", False):
        return "classifier"
    return "head" if phase.head_only else "all"


def train(job, build: Callable[[EngineContext], Any], threads: int = 0,
          clock: Callable[[], float] = time.monotonic,
          timings: dict[str, float] | None = None) -> np.ndarray:
    """Train ``job.plan`` with the engine ``build`` returns; test probabilities in
    ``job.test`` order. ``timings`` (when given) receives seconds per kind of work."""
    t = job.training
    spent = timings if timings is not None else {}
    for key in ("build", "train", "select", "checkpoint", "history", "predict"):
        spent.setdefault(key, 0.0)
    started = time.perf_counter()
    model = build(context_for(job, threads))
    job.device = str(getattr(model, "device_name", "") or "")  # recorded in status.json
    phases = job.plan.phases
    resets = any(getattr(p, "reset_classifier", False) for p in phases)
    needed = ["reset_classifier"] if resets else []
    lacking = missing_primitives(model, needed)
    if lacking:  # before the first epoch, not an AttributeError in the plan's last phase
        raise HarnessError(f"engine {job.run.engine!r} ({type(model).__name__}) lacks the "
                           f"primitive(s) {', '.join(lacking)} that the plan of sampler "
                           f"{job.run.sampler!r} needs (harness.engine_api.EngineModel)")
    epochs = [job.phase_epochs(p) for p in range(len(phases))]
    # run-wide epoch numbers (1-based) after which the checkpoint may be chosen
    selectable = [sum(epochs[:p]) + e + 1 for p, spec in enumerate(phases)
                  if getattr(spec, "selectable", True) for e in range(epochs[p])]
    selecting = t.selection in ("holdout", "paper") and len(job.select) > 0 and bool(selectable)
    when = ({selectable[k - 1] for k in selection_epochs(len(selectable), t.select_every,
                                                         t.select_evaluations)}
            if selecting else set())
    predict_batch = t.batch_size * 4

    path = job.checkpoint_dir / checkpoint.FILE
    pos, best = Position(), None
    restored = checkpoint.load(path)
    if restored is not None:
        arrays, meta = restored
        if meta.get("run_id") not in (None, job.run.run_id):
            raise HarnessError(f"checkpoint {path} belongs to run {meta['run_id']}; delete it "
                               "to start this run from the beginning")
        model.set_state(checkpoint.split(arrays, "state"))
        best = checkpoint.split(arrays, "best") or None
        pos = Position(**meta["position"])
    job.restore_history(restored[1]["history"] if restored else [])
    spent["build"] += time.perf_counter() - started

    policy = checkpoint.Policy(t.checkpoint_minutes, clock)
    writer = checkpoint.Writer(path)

    def save(background: bool = True) -> None:
        tick = time.perf_counter()
        arrays = {**checkpoint.join("state", model.get_state()),
                  **(checkpoint.join("best", best) if best else {})}
        meta = {"run_id": job.run.run_id, "position": asdict(pos),
                "history": list(job.history)}
        writer.submit(arrays, meta, background)
        policy.written()
        spent["checkpoint"] += time.perf_counter() - tick

    bars = Bars(is_enabled())
    try:
        with StopSignal() as stop:
            phase_task = bars.task("phases", len(phases), completed=pos.phase)
            for phase in range(pos.phase, len(phases)):
                spec = phases[phase]
                first = pos.epoch if phase == pos.phase else 0
                model.set_trainable(_trainable(spec))
                if getattr(spec, "reset_classifier", False) and first == 0:
                    model.reset_classifier(seed_for(job.run.seed, job.run.fold, phase, 3))
                epoch_task = bars.task(f"phase {phase + 1}/{len(phases)} epochs",
                                       epochs[phase], first)
                for epoch in range(first, epochs[phase]):
                    row = _epoch(job, model, phase, epoch, bars, spent)
                    number = sum(epochs[:phase]) + epoch + 1
                    row["selected_evaluation"] = number in when
                    if number in when:
                        tick = time.perf_counter()
                        probs = model.predict(host.image_batches(job.images, job.select,
                                                                 predict_batch))
                        score = selection_score(job.labels[job.select], probs,
                                                t.selection_metric)
                        row["select_score"] = round(score, 6)
                        if pos.best_score is None or score > pos.best_score:
                            pos.best_score, pos.best_at = score, [phase + 1, epoch + 1]
                            best = model.get_weights()
                        row["select_seconds"] = round(time.perf_counter() - tick, 4)
                        spent["select"] += time.perf_counter() - tick
                    tick = time.perf_counter()
                    job.log_epoch(**row)
                    spent["history"] += time.perf_counter() - tick
                    last = epoch + 1 == epochs[phase]
                    pos.phase, pos.epoch = (phase + 1, 0) if last else (phase, epoch + 1)
                    if policy.due(phase_end=last, stopping=bool(stop.requested)):
                        save(background=not stop.requested)
                    if stop.requested:
                        raise Interrupted(stop.signum, f"stopped by {stop.requested} after "
                                          f"phase {phase + 1} epoch {epoch + 1}; checkpoint "
                                          "written")
                    bars.update(epoch_task, advance=1)
                bars.update(phase_task, advance=1)
                bars.remove(epoch_task)  # finished phases fold into the phases bar
    finally:
        bars.close()
        job.close_history()
        tick = time.perf_counter()
        writer.wait()
        spent["checkpoint"] += time.perf_counter() - tick

    tick = time.perf_counter()
    if selecting and best:
        model.set_weights(best)
    probs = model.predict(host.image_batches(job.images, job.test, predict_batch))
    spent["predict"] += time.perf_counter() - tick
    probs = np.asarray(probs, dtype=np.float32)
    if probs.shape != (len(job.test), job.n_classes):
        raise HarnessError(f"engine {job.run.engine!r} returned probabilities of shape "
                           f"{probs.shape}; expected {(len(job.test), job.n_classes)}")
    return probs


def _epoch(job, model, phase: int, epoch: int, bars: Bars, spent: dict) -> dict[str, Any]:
    t = job.training
    order = job.epoch_indices(phase, epoch)
    steps = job.steps(len(order), t.batch_size)
    order = order[:steps * t.batch_size]
    rng = np.random.default_rng([job.run.seed, job.run.fold, phase, epoch, 7])
    step_task = bars.task(f"phase {phase + 1} epoch {epoch + 1} steps", steps)
    tick = time.perf_counter()
    result = model.train_epoch(
        _counted(host.train_batches(job.images, job.labels, order, t.batch_size,
                                    t.augmentation, job.image_size, rng,
                                    prefetch=max(2, t.workers)), bars, step_task),
        seed_for(job.run.seed, job.run.fold, phase, epoch))
    seconds = time.perf_counter() - tick
    spent["train"] += seconds
    bars.remove(step_task)
    seen = max(int(result.seen), 0)
    return {
        "phase": phase + 1, "epoch": epoch + 1,
        "loss": round(float(result.loss_sum) / max(seen, 1), 6),
        "train_acc": round(int(result.correct) / max(seen, 1), 6),
        "select_score": "", "selected_evaluation": False, "images": seen,
        "seconds": round(seconds, 4),
        "images_per_s": round(seen / seconds, 2) if seconds > 0 else 0.0,
        "select_seconds": "",
    }


