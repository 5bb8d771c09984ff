"""The RSNA plugin: label files with one row per box, DICOM and PNG images, exclusions."""

from __future__ import annotations

import numpy as np
import plugin_calls as calls
import pytest
from fixtures_data import write_rsna, write_rsna_dicom
from harness_plugins.datasets import rsna

from harness.errors import HarnessError

CLASSES = ["normal", "pneumonia", "covid19"]
PATIENTS = {
    "n1": ("Normal", 0),
    "p3": ("Lung Opacity", 3),  # three boxes: three label rows, one patient
    "x1": ("No Lung Opacity / Not Normal", 0),
    "p1": ("Lung Opacity", 1),  # a PNG conversion
    "n2": ("Normal", 0),  # no image file
}


@pytest.fixture
def root(tmp_path):
    return write_rsna(tmp_path / "rsna", PATIENTS, png=("p1",), missing=("n2",))


def load(root, **options):
    return calls.records(rsna, {"root": str(root), "classes": CLASSES, **options})


def test_labels_boxes_and_exclusions(root):
    records = load(root)
    assert records.set_index("original_patient_id")["label"].to_dict() == {
        "n1": "normal", "p3": "pneumonia", "p1": "pneumonia"}
    assert records.attrs["exclusions"] == {"No Lung Opacity / Not Normal": 1, "missing file": 1}
    assert records["uid"].tolist() == ["rsna/n1", "rsna/p3", "rsna/p1"]
    assert records.set_index("uid").loc["rsna/p1", "filename"] == "p1.png"
    assert set(records["source"]) == {"rsna"} and records["patient_id"].is_unique


def test_dicom_and_png_records_both_decode(root):
    for record in load(root).to_dict("records"):
        image = calls.read_image(rsna, record, {})
        assert image.shape == (64, 64) and image.dtype == np.uint8 and image.std() > 0


def test_target_one_wins_and_mapping_can_keep_the_third_class(root):
    records = load(root, mapping={"No Lung Opacity / Not Normal": "normal"})
    assert records["label"].value_counts().to_dict() == {"normal": 2, "pneumonia": 2}
    with pytest.raises(HarnessError, match="maps 'Normal' to 'healthy'"):
        load(root, mapping={"Normal": "healthy"})


def test_labels_only_from_targets_when_class_info_is_absent(root):
    records = load(root, class_info="")
    assert records["label"].tolist() == ["pneumonia", "pneumonia"]
    assert records.attrs["exclusions"] == {"no class info (Target 0 without detailed class)": 3}


def test_classes_outside_the_suite_are_counted(root):
    records = calls.records(rsna, {"root": str(root), "classes": ["normal", "covid19"]})
    assert records["label"].tolist() == ["normal"]
    assert records.attrs["exclusions"]["class not in suite"] == 2


def test_missing_folders_and_files_say_which_option(tmp_path, root):
    with pytest.raises(HarnessError, match="option 'images'.*stage_2_train_images"):
        load(root, images="stage_2_test_images")
    with pytest.raises(HarnessError, match="set option 'class_info'"):
        load(root, class_info="nope.csv")
    with pytest.raises(HarnessError, match="'root' points to .*harness data fetch rsna"):
        load(tmp_path / "absent")


def test_headers_give_view_sex_and_bare_age(root):
    records = load(root, headers=True).set_index("original_patient_id")
    assert records.loc["n1", ["view", "sex", "age"]].tolist() == ["AP", "F", "68"]
    assert records.loc["p1", "view"] == ""  # a PNG has no header


def test_full_size_fixture_decodes_to_1024(tmp_path):
    write_rsna(tmp_path, {"big": ("Normal", 0)}, size=1024)
    record = load(tmp_path).iloc[0].to_dict()
    image = calls.read_image(rsna, record, {})
    assert image.shape == (1024, 1024) and image.dtype == np.uint8


def test_fingerprint_follows_labels_and_images(root):
    options = {"root": str(root)}
    first = calls.fingerprint(rsna, options)
    assert calls.fingerprint(rsna, options) == first
    write_rsna_dicom(root / "stage_2_train_images" / "n2.dcm", size=16)
    second = calls.fingerprint(rsna, options)
    assert second != first
    labels = root / "stage_2_train_labels.csv"
    labels.write_text(labels.read_text().replace("n1,,,,,0", "n1,1.0,2.0,3.0,4.0,1"))
    assert calls.fingerprint(rsna, options) != second


def test_real_rsna_mini(shared_file):
    root = shared_file("data/rsna-mini/stage_2_train_labels.csv").parent
    records = load(root)
    assert len(records) == 0
    assert records.attrs["exclusions"] == {"No Lung Opacity / Not Normal": 1}
    kept = load(root, mapping={"No Lung Opacity / Not Normal": "normal"}, headers=True)
    assert kept[["view", "sex", "age"]].iloc[0].tolist() == ["AP", "F", "68"]
    image = calls.read_image(rsna, kept.iloc[0].to_dict(), {})
    assert image.shape == (1024, 1024) and image.dtype == np.uint8


def test_symlinks_leaving_the_root_are_refused(tmp_path, root):
    secret = tmp_path / "outside.png"
    secret.write_bytes((root / "stage_2_train_images" / "p1.png").read_bytes())
    link = root / "stage_2_train_images" / "n1.dcm"
    link.unlink()
    link.symlink_to(secret)
    with pytest.raises(HarnessError, match=r"rsna: image of patient 'n1': path "
                       r"'stage_2_train_images/n1.dcm' leaves the dataset root"):
        load(root)
    # A link that stays inside the root is an ordinary file.
    link.unlink()
    link.symlink_to(root / "stage_2_train_images" / "p1.png")
    assert "rsna/n1" in load(root)["uid"].tolist()
    # So is the images folder: a link out of the root, or a '..' option, is refused.
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(HarnessError, match="option 'images': path '../elsewhere' leaves"):
        load(root, images="../elsewhere")
    moved = tmp_path / "images-elsewhere"
    (root / "stage_2_train_images").rename(moved)
    (root / "stage_2_train_images").symlink_to(moved)
    with pytest.raises(HarnessError, match="option 'images'.*leaves the dataset root"):
        load(root)
