"""Images dropped while reading are counted where a user looks: ``harness run``'s output,
each run's ``config.json`` (by file and reason) and the report."""

from __future__ import annotations

import html

import pytest
import yaml
from fixtures_data import write_broken_dicom, write_rsna

from harness import store
from harness.analysis.dropped import dropped_images
from harness.analysis.report import _environment
from harness.data.prepare import dropped_lines
from harness.rundir.folder import RunFolder

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PATIENTS = {f"n{i}": ("Normal", 0) for i in range(10)} | {
    f"p{i}": ("Lung Opacity", 1) for i in range(10)}


def test_unreadable_images_are_reported_by_run_config_and_report(tmp_path, run_harness):
    root = write_rsna(tmp_path / "rsna", PATIENTS, size=32)
    images = root / "stage_2_train_images"
    write_broken_dicom(images / "n3.dcm", "corrupt-jpeg")
    write_broken_dicom(images / "p7.dcm", "garbage")
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "drop", "plugins": ["harness.testing.fakes"], "image_size": 16,
        "classes": ["normal", "pneumonia"], "cache_dir": str(tmp_path / "cache"),
        "datasets": [{"name": "rsna", "options": {"root": str(root)}}],
        "split": {"kind": "grouped-kfold", "folds": 2, "seed": 0},
        "matrix": {"backbone": ["pixels"], "sampler": ["none"], "engine": ["centroid"]},
        "training": {"epochs_per_phase": 1, "batch_size": 8, "weights": "none"},
        "report": {"bootstrap": 20},
    }))
    result = run_harness("run", suite, "--runs-dir", tmp_path / "runs", "--reports-dir",
                         tmp_path / "reports")
    assert result.exit_code == 0, result.output
    assert "2 unreadable image(s) left out of every run" in result.output
    assert f"  {images / 'n3.dcm'}: UnreadableImage: cannot decode DICOM" in result.output
    assert f"  {images / 'p7.dcm'}: UnreadableImage: not an image Pillow can read" \
        in result.output

    folders = [p for p in (tmp_path / "runs" / "drop").iterdir() if p.is_dir()]
    assert len(folders) == 2
    for folder in folders:
        dropped = store.read_json(folder / "config.json")["dropped_images"]
        assert [(d["uid"], d["dataset"], d["file"]) for d in dropped] == [
            ("rsna/n3", "rsna", str(images / "n3.dcm")),
            ("rsna/p7", "rsna", str(images / "p7.dcm"))]
        assert dropped[0]["reason"].startswith("UnreadableImage: cannot decode DICOM pixel data")
        plan = RunFolder(folder).plan_document()
        used = {*plan["train"]["uids"], *plan["select"]["uids"], *plan["test"]["uids"]}
        assert len(used) == 18 and not used & {"rsna/n3", "rsna/p7"}

    again = run_harness("run", suite, "--runs-dir", tmp_path / "runs", "--reports-dir",
                        tmp_path / "reports")  # every run done: the data is not read again
    assert again.exit_code == 0, again.output
    assert "2 runs, 2 already done, 0 to run" in again.output
    assert "2 unreadable image(s) left out of every run" in again.output
    assert f"  {images / 'p7.dcm'}: UnreadableImage: not an image Pillow can read" \
        in again.output

    page = html.unescape((tmp_path / "reports" / "drop" / "index.html").read_text())
    assert "2 unreadable image(s) left out" in page
    assert str(images / "n3.dcm") in page and str(images / "p7.dcm") in page
    assert "<td class=\"label\">UnreadableImage: cannot decode DICOM pixel data" in page


def test_without_unreadable_images_nothing_is_said():
    assert dropped_lines([]) == []
    assert dropped_images([{"dropped_images": []}, {}]) == {"images": [], "by_reason": {}}
    partial = _environment().get_template("_dropped.html.j2")
    assert partial.render(dropped=dropped_images([{}])).strip() == ""


def test_dropped_images_are_the_union_over_runs_grouped_by_cause():
    a = {"uid": "d/a", "dataset": "d", "file": "/x/a.dcm",
         "reason": "UnreadableImage: truncated DICOM file (the pixel data is cut off): End"}
    b = {"uid": "d/b", "dataset": "d", "file": "/x/b.png", "reason": "FileNotFoundError: gone"}
    found = dropped_images([{"dropped_images": [b, a]}, {"dropped_images": [a]}])
    assert found["images"] == [a, b]
    assert found["by_reason"] == {
        "UnreadableImage: truncated DICOM file (the pixel data is cut off)": 1,
        "FileNotFoundError: gone": 1}
    lines = dropped_lines([a, b] * 4, shown=5)
    assert lines[0].startswith("8 unreadable image(s) left out of every run")
    assert lines[1] == "  /x/a.dcm: " + a["reason"] and lines[-1] == "  ... and 3 more"
