"""Family "run folders": a finished run edited later is named and trained again, the report
never mixes its files, and output folders the harness cannot use are refused in one line."""

from __future__ import annotations

import errno
import json

import pytest

from harness.analysis.loading import load_runs
from harness.analysis.results import load_results
from hostile.hostile_kit import SUITE, refused


def _edit_predictions(folder) -> None:
    """Move 0.000001 between two probabilities of a row, so that every content check
    (labels, argmax, sums to 1, metrics' counts) still passes: only the seal can tell."""
    lines = folder.predictions_path.read_text().splitlines()
    cells = lines[1].split(",")
    probs = [float(c) for c in cells[3:]]
    low = min(range(len(probs)), key=probs.__getitem__)
    high = max(range(len(probs)), key=probs.__getitem__)
    probs[low] += 1e-6
    probs[high] -= 1e-6
    lines[1] = ",".join(cells[:3] + [f"{p:.6f}" for p in probs])
    folder.predictions_path.write_text("\n".join(lines) + "\n")


def _edit_metrics(folder) -> None:
    metrics = json.loads(folder.metrics_path.read_text())
    metrics["macro_auroc"] = 0.99
    folder.metrics_path.write_text(json.dumps(metrics))


@pytest.mark.parametrize("edit, name", [(_edit_predictions, "predictions.csv"),
                                        (_edit_metrics, "metrics.json")])
def test_an_edited_finished_run_is_named_listed_as_damaged_and_trained_again(space, edit,
                                                                             name):
    edited, kept = space.folders()
    kept_started = kept.status().started
    edit(edited)
    report = {r.run_id: r for r in load_runs(space.runs / SUITE)}
    assert report[edited.name].state == "damaged"  # the report never mixes the files
    assert "edited after the run finished" in report[edited.name].error
    assert report[kept.name].state == "done"
    assert set(load_results(space.runs / SUITE)["run_id"]) == {kept.name}
    result = space.run("--no-report")
    assert result.code == 0, result.err
    assert f"{edited.name}: {name} is damaged (edited after the run finished" in result.out
    assert len(space.finished()) == 2
    assert kept.status().started == kept_started  # only the edited run was trained again


def test_a_file_where_a_run_folder_goes_is_refused_before_anything_is_written(space):
    first, second = space.folders()
    before = space.finished()
    import shutil

    shutil.rmtree(second.path)
    second.path.write_text("in the way")
    refused(space.run("--no-report"), str(second.path), "a file is in the way")
    assert space.finished() == {first.name: before[first.name]}


def _read_only(monkeypatch, folder):
    """A read-only folder: writes below it fail with EACCES, as for a user without the
    permission (the tests may run as root, for whom chmod changes nothing)."""
    import tempfile

    from harness import store

    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and str(dir).startswith(str(folder)):
            raise PermissionError(errno.EACCES, "Permission denied", str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(store.tempfile, "mkstemp", mkstemp)


def test_a_read_only_runs_folder_is_refused_in_one_line(space, monkeypatch):
    before = space.finished()
    _read_only(monkeypatch, space.runs)
    refused(space.run("--no-report"), str(space.runs), "Permission denied")
    assert space.finished() == before


def test_a_read_only_reports_folder_is_refused_and_keeps_the_runs(space, monkeypatch):
    before = space.finished()
    _read_only(monkeypatch, space.reports)
    refused(space.run(), str(space.reports), "Permission denied")
    assert space.finished() == before
