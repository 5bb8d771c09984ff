"""``harness run --dry-run`` checks the data on disk (``DatasetSpec.check``,
``SplitterSpec.check``): roots, metadata files and image folders, all problems in one line."""

from __future__ import annotations

from pathlib import Path

from fixtures_data import write_ieee8023, write_rsna
from harness_plugins.datasets import ieee8023, rsna
from harness_plugins.splitters import paper

from harness.plugin.specs import DatasetContext, SplitterContext


def ieee_problems(root: Path) -> list[str]:
    options = ieee8023.Ieee8023Options(root=str(root))
    return ieee8023.check(options, DatasetContext(suite_dir=root.parent))


def test_ieee8023_names_a_missing_root_metadata_and_an_empty_image_folder(tmp_path):
    (missing,) = ieee_problems(tmp_path / "nowhere")
    assert missing.startswith(f"ieee8023: option 'root' points to {tmp_path / 'nowhere'}, "
                              "which is not a folder")
    assert "harness data fetch ieee8023" in missing
    (tmp_path / "empty").mkdir()
    assert ieee_problems(tmp_path / "empty") == [
        (f"ieee8023: {tmp_path / 'empty' / 'metadata.csv'} does not exist "
        "(get it with: harness data fetch ieee8023 DEST)"),
        (f"ieee8023: image folder {tmp_path / 'empty' / 'images'} does not exist "
        "(get it with: harness data fetch ieee8023 DEST)")]
    root = write_ieee8023(tmp_path / "copy")
    assert ieee_problems(root) == []
    for image in (root / "images").iterdir():
        image.unlink()
    (empty,) = ieee_problems(root)
    assert empty.endswith(f"image folder {root / 'images'} is empty "
                          "(get it with: harness data fetch ieee8023 DEST)")


def test_rsna_names_its_csv_files_and_image_folder(tmp_path):
    root = write_rsna(tmp_path / "rsna", {"p1": ("Normal", 0)})
    options = rsna.RsnaOptions(root=str(root))
    context = DatasetContext(suite_dir=tmp_path)
    assert rsna.check(options, context) == []
    (root / "stage_2_train_labels.csv").unlink()
    assert rsna.check(options, context) == [
        (f"rsna: {root / 'stage_2_train_labels.csv'} does not exist "
        "(see: harness data fetch rsna DEST)")]
    assert rsna.check(rsna.RsnaOptions(root=str(root), images="elsewhere"), context)[-1] == (
        f"rsna: image folder {root / 'elsewhere'} does not exist "
        "(see: harness data fetch rsna DEST)")


def test_files_splitter_names_its_folder_and_files(tmp_path):
    context = SplitterContext(folds=5, suite_dir=tmp_path)
    assert paper.check_files(paper.FilesOptions(dir="splits"), context) == [
        f"split 'files': option 'dir' points to {tmp_path / 'splits'}, which is not a folder"]
    (tmp_path / "splits").mkdir()
    assert len(paper.check_files(paper.FilesOptions(dir="splits"), context)) == 2
    (tmp_path / "splits" / "All.csv").write_text("filename,class\n")
    (tmp_path / "splits" / "fold1").mkdir()
    assert paper.check_files(paper.FilesOptions(dir="splits"), context) == []


def test_dry_run_reports_every_missing_root_in_one_line(make_suite, run_harness, tmp_path):
    (tmp_path / "empty").mkdir()
    suite = make_suite("d", classes=["normal", "pneumonia", "covid19"], datasets=[
        {"name": "ieee8023", "options": {"root": "nowhere"}},
        {"name": "rsna", "options": {"root": "empty"}}])
    result = run_harness("run", suite, "--dry-run", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"error: {suite}: datasets[0]: ieee8023: option 'root' points "
                               f"to {tmp_path / 'nowhere'}, which is not a folder")
    assert f"; datasets[1]: rsna: {tmp_path / 'empty' / 'stage_2_train_labels.csv'} does not " \
           "exist" in lines[0]
    assert f"image folder {tmp_path / 'empty' / 'stage_2_train_images'} does not exist" \
        in lines[0]
    assert not (tmp_path / "runs").exists()
    # with the data in place, the same dry run lists the runs
    write_ieee8023(tmp_path / "nowhere")
    write_rsna(tmp_path / "empty", {"p1": ("Normal", 0)})
    result = run_harness("run", suite, "--dry-run", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    assert "pending" in result.output
