"""The core training loop with a framework-free engine: schedule, checkpoints, signals,
history, phase settings. No framework; every test runs in well under a second."""

from __future__ import annotations

import csv
import os
import signal

import numpy as np
import pytest

from harness import BackboneSpec
from harness.config.suite import RunSpec, Training
from harness.engine_api import EpochResult
from harness.errors import HarnessError
from harness.plugin.specs import Phase, Plan
from harness.training import checkpoint, loop
from harness.training.job import HISTORY_COLUMNS, Job
from harness.training.schedule import selection_epochs


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Counting:
    """An engine whose 'weights' count the images it has seen; each epoch takes 1 s of the
    fake clock. Its selection score rises then falls (best at epoch ``peak``)."""

    def __init__(self, ctx, clock: Clock | None = None, peak: int = 3, on_epoch=None):
        self.n_classes = ctx.n_classes
        self.seen = np.zeros(1)
        self.epochs = np.zeros(1)
        self.clock, self.peak, self.on_epoch = clock, peak, on_epoch
        self.calls: list[tuple[str, object]] = []

    def set_trainable(self, part):
        self.calls.append(("trainable", part))

    def reset_classifier(self, seed):
        self.calls.append(("reset", seed))

    def train_epoch(self, batches, seed):
        self.calls.append(("train", seed))
        n = sum(len(b.labels) for b in batches)
        self.seen += n
        self.epochs += 1
        if self.clock is not None:
            self.clock.now += 1.0
        if self.on_epoch:
            self.on_epoch(int(self.epochs[0]))
        return EpochResult(loss_sum=float(n), correct=0, seen=n)

    def predict(self, batches):
        images = [b for b in batches]
        n = sum(len(b) for b in images)
        # Right for all images up to the peak epoch, then wrong for more and more.
        good = self.epochs[0] <= self.peak
        probs = np.zeros((n, self.n_classes))
        labels = np.concatenate([b[:, 0, 0] for b in images]) if images else np.zeros(0, int)
        probs[np.arange(n), labels % self.n_classes if good else (labels + 1) % self.n_classes] = 1
        return probs

    def get_weights(self):
        return {"seen": self.seen.copy(), "epochs": self.epochs.copy()}

    def set_weights(self, w):
        self.seen, self.epochs = w["seen"].copy(), w["epochs"].copy()

    get_state, set_state = get_weights, set_weights


def make_job(tmp_path, phases=(2, 2), selection="holdout", **training) -> Job:
    n = 30
    labels = np.arange(n) % 3
    images = np.zeros((n, 4, 4), np.uint8)
    images[:, 0, 0] = labels  # the Counting engine reads the label from pixel (0, 0)
    settings = {"epochs_per_phase": 2, "batch_size": 4, "selection": selection,
                "weights": "none", **training}
    run = RunSpec(suite="t", backbone="b", sampler="s", engine="e", fold=1, seed=0,
                  training=settings, sampler_options={}, run_id="r")
    plan = Plan(phases=[Phase(indices=list(range(12)), epochs=e) for e in phases])
    return Job(run=run, run_dir=tmp_path, classes=["a", "b", "c"], image_size=4,
               images=images, labels=labels, train=np.arange(12), select=np.arange(12, 21),
               test=np.arange(21, 30), plan=plan, training=Training(**settings),
               backbone=BackboneSpec("b", "", {}))


def rows(tmp_path) -> list[dict[str, str]]:
    with open(tmp_path / "history.csv") as fh:
        return list(csv.DictReader(fh))


def test_selection_schedule_every_k_and_fixed_count():
    assert selection_epochs(10) == set(range(1, 11))
    assert selection_epochs(10, every=3) == {3, 6, 9, 10}
    assert selection_epochs(10, evaluations=4) == {3, 5, 8, 10}
    assert selection_epochs(7, evaluations=7) == set(range(1, 8))
    assert selection_epochs(800, evaluations=12) == {67, 134, 200, 267, 334, 400, 467, 534,
                                                     600, 667, 734, 800}
    with pytest.raises(HarnessError, match="select_evaluations: 5 evaluations.*only 4"):
        selection_epochs(4, evaluations=5)


def test_history_schema_and_selected_evaluations(tmp_path):
    job = make_job(tmp_path, phases=(3, 3), select_evaluations=2)
    probs = loop.train(job, lambda ctx: Counting(ctx, peak=3))
    history = rows(tmp_path)
    assert list(history[0]) == HISTORY_COLUMNS
    assert [r["selected_evaluation"] for r in history] == ["False", "False", "True"] * 2
    assert [r["select_score"] for r in history] == ["", "", "1.0", "", "", "0.0"]
    # The best evaluation (epoch 3) is what predicts the test split.
    assert (probs.argmax(1) == job.labels[job.test]).all()
    assert [int(r["images"]) for r in history] == [12] * 6


def test_checkpoint_policy_with_a_fake_clock(tmp_path, monkeypatch):
    """10-minute policy, 1-second epochs: one checkpoint per phase end, one per 10 minutes."""
    clock = Clock()
    saves = []
    monkeypatch.setattr(checkpoint, "save", lambda path, arrays, meta: saves.append(
        (clock.now, meta["position"]["phase"], meta["position"]["epoch"])))
    job = make_job(tmp_path, phases=(700, 500), selection="last", checkpoint_minutes=10)
    loop.train(job, lambda ctx: Counting(ctx, clock), clock=clock)
    assert saves == [(600.0, 0, 600), (700.0, 1, 0), (1200.0, 2, 0)]


def test_sigterm_stops_after_the_epoch_with_a_checkpoint_and_resume_is_exact(tmp_path):
    reference = loop.train(make_job(tmp_path / "a", phases=(3, 3)), lambda ctx: Counting(ctx))

    def term(epoch):
        if epoch == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    job = make_job(tmp_path / "b", phases=(3, 3))
    with pytest.raises(loop.Interrupted, match="SIGTERM after phase 1 epoch 2"):
        loop.train(job, lambda ctx: Counting(ctx, on_epoch=term))
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored
    arrays, meta = checkpoint.load(tmp_path / "b" / "checkpoints" / checkpoint.FILE)
    assert meta["position"]["phase"] == 0 and meta["position"]["epoch"] == 2
    assert checkpoint.split(arrays, "state")["epochs"][0] == 2
    assert len(rows(tmp_path / "b")) == 2

    engines = []
    resumed = loop.train(make_job(tmp_path / "b", phases=(3, 3)),
                         lambda ctx: engines.append(Counting(ctx)) or engines[-1])
    assert sum(c[0] == "train" for c in engines[0].calls) == 4  # 2 restored, 4 trained
    assert np.array_equal(resumed, reference)
    strip = [{k: v for k, v in r.items() if "seconds" not in k and k != "images_per_s"}
             for r in rows(tmp_path / "b")]
    assert strip == [{k: v for k, v in r.items() if "seconds" not in k and k != "images_per_s"}
                     for r in rows(tmp_path / "a")]
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir()) == [checkpoint.FILE]


def test_phase_settings_reach_the_engine(tmp_path):
    job = make_job(tmp_path, phases=(1, 1, 1), selection="last")
    job.plan.phases[1].head_only = True
    job.plan.phases[2].classifier_only = True
    job.plan.phases[2].reset_classifier = True
    engines = []
    loop.train(job, lambda ctx: engines.append(Counting(ctx)) or engines[-1])
    assert [c for c in engines[0].calls if c[0] != "train"] == [
        ("trainable", "all"), ("trainable", "head"), ("trainable", "classifier"),
        ("reset", loop.seed_for(0, 1, 2, 3))]


def test_plan_loss_options_are_checked(tmp_path):
    job = make_job(tmp_path)
    job.plan.loss, job.plan.loss_options = "focal", {"gamma": 2.0, "alpha": [0.25, 0.75]}
    with pytest.raises(HarnessError, match="loss_options.alpha: 2 values for 3 classes"):
        loop.train(job, Counting)
    job.plan.loss_options = {"gama": 2.0}
    with pytest.raises(HarnessError, match="unknown key.*gama"):
        loop.train(job, Counting)


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    loop.train(make_job(tmp_path), Counting)
    job = make_job(tmp_path)
    job.run = RunSpec(**{**job.run.to_json(), "run_id": "other"})
    with pytest.raises(HarnessError, match="belongs to run r"):
        loop.train(job, Counting)


def test_scoring_runs_in_batches_of_4x_the_training_batch(tmp_path):
    job = make_job(tmp_path, phases=(1,), batch_size=2)   # 9 selection and 9 test images
    sizes: dict[str, list[int]] = {"train": [], "predict": []}

    class Spy(Counting):
        def train_epoch(self, batches, seed):
            batches = list(batches)
            sizes["train"] += [len(b.labels) for b in batches]
            return super().train_epoch(batches, seed)

        def predict(self, batches):
            batches = list(batches)
            sizes["predict"].append([len(b) for b in batches])
            return super().predict(batches)

    loop.train(job, Spy)
    assert set(sizes["train"]) == {2}
    assert sizes["predict"] == [[8, 1], [8, 1]]   # selection (9 images), then test (9)


class _Stop(Exception):
    pass


def _fake_proc(monkeypatch, cores: int, runnable: int) -> None:
    """``free_cores`` on a machine with ``cores`` cores and ``runnable`` processes running
    (this one included), as /proc/loadavg's fourth field says."""
    import io

    from harness.training import batches

    monkeypatch.setattr(batches.os, "sched_getaffinity", lambda pid: set(range(cores)))
    monkeypatch.setattr(batches, "open", lambda path, *a, **k: io.StringIO(
        f"0.50 0.40 0.30 {runnable}/400 12345\n"), raising=False)


@pytest.mark.parametrize("cores, runnable, free", [(8, 1, 8), (8, 4, 5), (2, 6, 1)])
def test_threads_are_the_cores_other_processes_do_not_use(monkeypatch, cores, runnable, free):
    from harness.training.batches import free_cores

    _fake_proc(monkeypatch, cores, runnable)
    assert free_cores(interval=0) == free


@pytest.mark.parametrize("setting, threads", [(0, 8), (3, 3)])
def test_a_run_gets_the_machine_cores_whatever_the_load(tmp_path, monkeypatch, setting,
                                                        threads):
    """Planning resolves ``threads: 0`` to the cores the process may use, not the idle ones:
    four busy processes change nothing. The run id does not depend on the machine."""
    from harness.config import suite as suite_module
    from harness.config.suite import expand, parse_suite

    _fake_proc(monkeypatch, 8, 4)
    monkeypatch.setattr(suite_module.os, "sched_getaffinity", lambda pid: set(range(8)))
    data = {"name": "t", "datasets": [{"name": "synthetic"}],
            "training": {"threads": setting}}
    runs = expand(parse_suite(data, "t.yaml"))
    assert {r.training.threads for r in runs} == {threads}
    monkeypatch.setattr(suite_module.os, "sched_getaffinity", lambda pid: set(range(2)))
    again = expand(parse_suite(data, "t.yaml"))
    assert [r.run_id for r in again] == [r.run_id for r in runs]
    assert {r.training.threads for r in again} == {2 if setting == 0 else 3}


@pytest.mark.parametrize("setting, threads", [(0, 8), (3, 3)])
def test_the_worker_trains_with_the_recorded_threads(tmp_path, monkeypatch, setting, threads):
    """A recorded count is used as it is; 0 (a folder planned before counts were recorded)
    is the machine's cores, never its idle ones."""
    from harness.config import suite as suite_module
    from harness.runs import worker

    _fake_proc(monkeypatch, 8, 4)
    monkeypatch.setattr(suite_module.os, "sched_getaffinity", lambda pid: set(range(8)))
    job = make_job(tmp_path, threads=setting)
    seen = []

    def train(job, build, threads=0, **kwargs):
        seen.append(threads)
        raise _Stop

    engine = type("Engine", (), {"build": staticmethod(Counting)})
    monkeypatch.setattr(worker, "load_job", lambda run_dir: (job, engine))
    monkeypatch.setattr(loop, "train", train)
    with pytest.raises(_Stop):
        worker.run(tmp_path)
    assert seen == [threads]


def test_history_rows_reach_the_file_as_they_are_logged_and_after_a_restore(tmp_path):
    """``history.csv`` stays open while a run trains: each row is on disk (flushed) when
    ``log_epoch`` returns, and a restore (resume) replaces the file, later rows after it."""
    job = make_job(tmp_path)
    job.restore_history([])
    job.log_epoch(phase=1, epoch=1, loss=0.5)
    job.log_epoch(phase=1, epoch=2, loss=0.25)
    assert [r["loss"] for r in rows(tmp_path)] == ["0.5", "0.25"]  # before any close
    job.restore_history([{"phase": 1, "epoch": 1, "loss": 0.5}])  # resumed after epoch 1
    job.log_epoch(phase=1, epoch=2, loss=0.125)
    job.close_history()
    assert [(r["epoch"], r["loss"]) for r in rows(tmp_path)] == [("1", "0.5"), ("2", "0.125")]
    job.log_epoch(phase=1, epoch=3, loss=0.0)  # a closed job opens the file again
    job.close_history()
    assert [r["epoch"] for r in rows(tmp_path)] == ["1", "2", "3"]
