"""The ieee8023 plugin on generated copies of both metadata generations and on the real
mini subset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plugin_calls as calls
import pytest
from fixtures_data import IEEE_EXPECTED, IEEE_ROWS, gradient, write_ieee8023
from harness_plugins.datasets import ieee8023
from harness_plugins.splitters.grouped_kfold import split as grouped_split

from harness import Options
from harness.data.prepare import check_folds
from harness.errors import HarnessError

CLASSES = ["normal", "pneumonia", "covid19"]


def load(root, **options):
    return calls.records(ieee8023, {"root": str(root), "classes": CLASSES, **options})


@pytest.mark.parametrize("generation", ["earliest", "flat", "spaced", "hierarchical"])
@pytest.mark.parametrize("mapping", ["paper", "current"])
def test_counts_and_exclusions_in_every_schema_generation(tmp_path, generation, mapping):
    root = write_ieee8023(tmp_path, generation)
    header = (root / "metadata.csv").read_text().splitlines()[0]
    if generation == "earliest":  # February 2020: CT only in view, no folder column
        assert "modality" not in header and "folder" not in header
    records = load(root, mapping=mapping)
    assert records["label"].value_counts().to_dict() == IEEE_EXPECTED[mapping]["classes"]
    assert records.attrs["exclusions"] == IEEE_EXPECTED[mapping]["exclusions"]
    # every metadata row is either a record or an exclusion
    assert len(records) + sum(records.attrs["exclusions"].values()) == len(IEEE_ROWS)
    assert records["uid"].is_unique and set(records["source"]) == {"ieee8023"}


def test_earliest_generation_reads_ct_and_mri_from_view(tmp_path):
    rows = [("1", "COVID-19", "", "PA", "", "a.jpg", "a.jpg", "jpeg-l"),
            ("2", "COVID-19", "", "CT", "", "b.jpg", "b.jpg", "jpeg-l"),
            ("3", "COVID-19", "", "Coronal", "", "c.jpg", "c.jpg", "jpeg-l"),
            ("4", "SARS", "", "MRI", "", "d.jpg", "d.jpg", "jpeg-l")]
    records = load(write_ieee8023(tmp_path, "earliest", rows))
    assert records["uid"].tolist() == ["ieee8023/a.jpg"]
    assert records["modality"].tolist() == ["X-ray"]
    assert records.attrs["exclusions"] == {"ct": 2, "not x-ray": 1}


def test_a_missing_column_names_the_file_and_its_header(tmp_path):
    root = write_ieee8023(tmp_path, "spaced")
    text = (root / "metadata.csv").read_text().replace("File name", "Image")
    (root / "metadata.csv").write_text(text)
    with pytest.raises(HarnessError, match=r"lacks column\(s\) filename; found: Patient ID"):
        load(root)


def test_old_column_spelling_and_trailing_empty_column_are_read(tmp_path):
    root = write_ieee8023(tmp_path, "flat")
    header = (root / "metadata.csv").read_text().splitlines()[0]
    assert header.startswith("Patientid,") and header.endswith(",")
    assert "original_patient_id" in load(root).columns


def test_wrong_extensions_and_trailing_spaces(tmp_path):
    root = write_ieee8023(tmp_path)
    records = load(root).set_index("uid")
    # c2.jpg holds PNG data, "c4.png " has a trailing space in the metadata, and the
    # file of sp14.jpg has one on disk.
    for uid in ("ieee8023/c2.jpg", "ieee8023/c4.png", "ieee8023/sp14.jpg"):
        image = calls.read_image(ieee8023, records.loc[uid].to_dict() | {"uid": uid}, {})
        assert image.dtype == np.uint8 and image.shape == (40, 32)
    c2 = calls.read_image(ieee8023, records.loc["ieee8023/c2.jpg"].to_dict(), {})
    assert np.array_equal(c2, gradient(seed=2))  # lossless PNG, RGB → gray exactly
    assert records.loc["ieee8023/sp14.jpg", "path"].endswith("sp14.jpg ")


@pytest.mark.parametrize("uid,seed", [("ieee8023/c3.png", 3), ("ieee8023/c4.png", 4)])
def test_palette_and_rgba_convert_to_the_right_gray(tmp_path, uid, seed):
    records = load(write_ieee8023(tmp_path)).set_index("uid")
    image = calls.read_image(ieee8023, records.loc[uid].to_dict(), {})
    assert np.abs(image.astype(int) - gradient(seed=seed)).max() <= 3


def test_sixteen_bit_image_keeps_its_contrast(tmp_path):
    records = load(write_ieee8023(tmp_path), mapping="current").set_index("uid")
    image = calls.read_image(ieee8023, records.loc["ieee8023/n6.png"].to_dict(), {})
    expected = gradient(seed=6).astype(float)
    expected = (expected - expected.min()) * 255 / (expected.max() - expected.min())
    assert np.abs(image - expected).max() <= 1


def test_an_image_shared_by_two_patients_makes_one_group(tmp_path):
    records = load(write_ieee8023(tmp_path)).set_index("uid")
    assert records.loc["ieee8023/shared.jpg", "patient_id"] == "ieee8023/11+12"
    assert records.loc["ieee8023/p12b.jpg", "patient_id"] == "ieee8023/11+12"
    assert records.loc["ieee8023/p12b.jpg", "original_patient_id"] == "12"
    assert records.loc["ieee8023/c1.jpg", "patient_id"] == "ieee8023/1"


def test_a_path_leaving_the_root_is_refused_with_its_row(tmp_path):
    rows = IEEE_ROWS[:1] + [("99", "COVID-19", "", "PA", "X-ray", "../../secret.png", None, "")]
    root = write_ieee8023(tmp_path / "d", rows=rows)
    with pytest.raises(HarnessError, match=r"row 2 \(patientid '99'.*leaves the dataset root"):
        load(root)


def test_missing_root_says_what_to_do(tmp_path):
    with pytest.raises(HarnessError) as err:
        load(tmp_path / "nowhere")
    message = str(err.value)
    assert "'root'" in message and str(tmp_path / "nowhere") in message
    assert "harness data fetch ieee8023" in message


def test_relative_root_resolves_against_the_suite_folder(tmp_path):
    write_ieee8023(tmp_path / "data" / "ieee")
    records = calls.records(ieee8023, {"root": "data/ieee", "suite_dir": str(tmp_path),
                                "classes": CLASSES})
    assert len(records) == 7


def test_user_mapping_views_and_errors(tmp_path):
    root = write_ieee8023(tmp_path)
    records = load(root, mapping={"Pneumonia/Viral/COVID-19": "covid19", "COVID-19*": "covid19",
                                  "ARDS": "pneumonia"}, views=["PA", "AP", "AP Supine", "L"])
    assert records["label"].value_counts().to_dict() == {"covid19": 4, "pneumonia": 1}
    assert records.attrs["exclusions"]["view"] == 1  # only the blank view now
    with pytest.raises(HarnessError, match="maps 'ARDS' to 'ards'.*not a class of the suite"):
        load(root, mapping={"ARDS": "ards"})
    with pytest.raises(HarnessError, match="options.mapping: expected a preset .* got 'newest'"):
        load(root, mapping="newest")


def test_classes_outside_the_suite_are_counted(tmp_path):
    records = calls.records(ieee8023, {"root": str(write_ieee8023(tmp_path)), "mapping": "current",
                                "classes": ["normal", "covid19"]})
    assert records.attrs["exclusions"]["class not in suite"] == 6  # rows, not images
    assert set(records["label"]) == {"normal", "covid19"}


def test_verify_counts_unreadable_files(tmp_path):
    root = write_ieee8023(tmp_path)
    (root / "images" / "c1.jpg").write_bytes(b"not an image")
    records = load(root, verify=True)
    assert records.attrs["exclusions"]["unreadable file"] == 1
    assert "ieee8023/c1.jpg" not in set(records["uid"])


def test_fingerprint_changes_only_with_content(tmp_path):
    root = write_ieee8023(tmp_path)
    options = {"root": str(root)}
    first = calls.fingerprint(ieee8023, options)
    assert calls.fingerprint(ieee8023, options) == first
    (root / "images" / "extra.png").write_bytes(b"x")
    second = calls.fingerprint(ieee8023, options)
    assert second != first
    (root / "metadata.csv").write_text((root / "metadata.csv").read_text() + "\n")
    assert calls.fingerprint(ieee8023, options) != second


# --- the real mini subset ------------------------------------------------------------------

def independent_count(root, mapping: dict[str, str]) -> tuple[dict, dict]:
    """Count the metadata directly with pandas, in the plugin's order of reasons."""
    meta = pd.read_csv(root / "metadata.csv", dtype=str, keep_default_na=False)
    files = {p.name.strip() for p in (root / "images").iterdir()}
    ct = meta["modality"] == "CT"
    todo = ~ct & meta["finding"].str.strip().str.lower().isin(["todo", "unknown", ""])
    bad_view = ~ct & ~todo & ~meta["view"].isin(["PA", "AP", "AP Supine", "AP semi erect"])
    label = meta["finding"].map(mapping)
    unmapped = ~ct & ~todo & ~bad_view & label.isna()
    ok = ~ct & ~todo & ~bad_view & ~unmapped
    missing = ok & ~meta["filename"].str.strip().isin(files)
    ok &= ~missing
    duplicate = ok & meta["filename"].str.strip().duplicated()
    ok &= ~duplicate
    reasons = {"ct": ct.sum(), "todo/unknown": todo.sum(), "view": bad_view.sum(),
               "unmapped finding": unmapped.sum(), "missing file": missing.sum(),
               "duplicate image": duplicate.sum()}
    return (label[ok].value_counts().to_dict(),
            {k: int(v) for k, v in reasons.items() if v})


@pytest.fixture
def mini(shared_file):
    return shared_file("data/ieee8023-mini/metadata.csv").parent


def test_real_mini_paper_mapping_matches_an_independent_count(mini):
    records = load(mini)
    classes, reasons = independent_count(mini, ieee8023.PRESETS["paper"])
    assert records["label"].value_counts().to_dict() == classes
    assert records.attrs["exclusions"] == reasons
    # the README: 451 COVID-19 X-ray rows of which 24 lateral; 5 CT and 5 todo rows
    assert classes["covid19"] == 451 - 24
    assert reasons["ct"] == 5 and reasons["todo/unknown"] == 5


def test_real_mini_current_mapping_matches_an_independent_count(mini):
    records = load(mini, mapping="current")
    flat = {f: ieee8023.map_finding(f, ieee8023.PRESETS["current"])
            for f in pd.read_csv(mini / "metadata.csv", dtype=str)["finding"].unique()}
    classes, reasons = independent_count(mini, {k: v for k, v in flat.items() if v})
    assert records["label"].value_counts().to_dict() == classes
    assert records.attrs["exclusions"] == reasons
    assert classes["normal"] == 10 and reasons["duplicate image"] == 4
    assert flat["ARDS"] is None and flat["Lipoid"] == "pneumonia"


def test_real_mini_shared_images_and_no_patient_in_two_splits(mini):
    records = load(mini, mapping="current")
    shared = records[records["filename"] == "000001-24.jpg"]
    assert shared["patient_id"].tolist() == ["ieee8023/285+339"]
    folds = calls.split(grouped_split, Options, records, 5, 0, {"select_fraction": 0.15})
    check_folds(folds, records, "grouped-kfold")  # raises on any leak
    for fold in folds:
        test_patients = set(records["patient_id"].iloc[fold.test])
        assert not test_patients & set(records["patient_id"].iloc[fold.train])


def test_real_mini_images_decode(mini):
    records = load(mini)
    by_mode = records[records["filename"].isin(["000001-3.png", "000001-2.jpg"])]
    for record in records.head(20).to_dict("records") + by_mode.to_dict("records"):
        image = calls.read_image(ieee8023, record, {})
        assert image.ndim == 2 and image.dtype == np.uint8 and image.std() > 5
