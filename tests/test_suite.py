"""Suite files: validation messages, matrix expansion, stable run ids, --only."""

from __future__ import annotations

import pytest
import yaml

from harness.config.suite import expand, filter_runs, load_suite
from harness.config.validate import SuiteError

BASE = {
    "name": "s",
    "datasets": [{"name": "synthetic", "options": {"n": 50}}],
    "split": {"folds": 3},
    "matrix": {"backbone": ["tiny", "other"], "sampler": ["phased", "none"], "engine": ["torch"],
               "seed": [0, 1]},
    "training": {"epochs_per_phase": 2, "batch_size": 8, "lr": "1e-3"},
    "backbones": {"other": {"batch_size": 4}},
}


def write(tmp_path, data, name="suite.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_valid_suite_is_typed(tmp_path):
    suite = load_suite(write(tmp_path, BASE))
    assert suite.training.lr == pytest.approx(1e-3)  # YAML's "1e-3" string becomes a float
    assert suite.training.augmentation.rotation == 360.0
    assert suite.classes == ["normal", "pneumonia", "covid19"]
    assert suite.datasets[0].options == {"n": 50}


@pytest.mark.parametrize("patch, message", [
    ({"trainin": {}}, r"suite.yaml: trainin: unknown key. Did you mean 'training'\?"),
    ({"training": {"epochs": 3}}, (r"suite.yaml: training.epochs: unknown key. Did you mean "
                                  r"'epochs_per_phase'\?")),
    ({"training": {"batch_size": "big"}}, (r"suite.yaml: training.batch_size: expected an "
                                          r"integer, got 'big'")),
    ({"training": {"optimizer": "nadm"}}, (r"training.optimizer: expected one of 'nadam'.*"
                                          r"did you mean 'nadam'")),
    ({"split": {"folds": 1}}, r"suite.yaml: split.folds: expected an integer from 2 to 100, got 1"),
    ({"matrix": {"fold": ["x"]}}, r"matrix.fold\[0\]: expected an integer, got 'x'"),
    ({"datasets": [{"options": {}}]}, r"datasets\[0\].name: missing; expected a string"),
    ({"training": {"augmentation": {"zoom": "lots"}}}, (r"training.augmentation.zoom: expected a "
                                                       r"number")),
    ({"report": {"family": "page"}}, r"suite.yaml: report.family: expected one of 'figure', 'all'"),
])
def test_errors_name_file_key_and_expectation(tmp_path, patch, message):
    data = {**BASE, **patch}
    with pytest.raises(SuiteError, match=message):
        load_suite(write(tmp_path, data))


def test_report_family_defaults_to_one_per_figure(tmp_path):
    assert load_suite(write(tmp_path, BASE)).report.family == "figure"
    suite = load_suite(write(tmp_path, {**BASE, "report": {"family": "all"}}))
    assert suite.report.family == "all"


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(SuiteError, match="no such suite file"):
        load_suite(tmp_path / "nope.yaml")
    with pytest.raises(SuiteError, match=r"bad.yaml: not valid YAML"):
        load_suite(write(tmp_path, "name: [unclosed", "bad.yaml"))
    with pytest.raises(SuiteError, match=r"list.yaml: \(top level\): expected a mapping"):
        load_suite(write(tmp_path, "- just\n- a list\n", "list.yaml"))


def test_yaml_is_loaded_safely(tmp_path):
    path = write(tmp_path, "name: !!python/object/apply:os.system ['true']\ndatasets: []\n")
    with pytest.raises(SuiteError, match="not valid YAML"):
        load_suite(path)


def test_backbone_override_typo_names_its_key(tmp_path):
    data = {**BASE, "backbones": {"other": {"batch_sise": 4}}}
    with pytest.raises(SuiteError, match=r"backbones.other.batch_sise: unknown key"):
        expand(load_suite(write(tmp_path, data)))


def test_matrix_expansion_and_stable_ids(tmp_path):
    suite = load_suite(write(tmp_path, BASE))
    runs = expand(suite)
    assert len(runs) == 2 * 2 * 1 * 3 * 2
    assert len({r.run_id for r in runs}) == len(runs)
    again = expand(load_suite(write(tmp_path, BASE, "copy.yaml")))
    assert [r.run_id for r in runs] == [r.run_id for r in again]
    other = next(r for r in runs if r.backbone == "other")
    assert other.training.batch_size == 4
    assert next(r for r in runs if r.backbone == "tiny").training.batch_size == 8
    assert runs[0].run_id.startswith("tiny-phased-torch-f1-s0-")


def test_changed_settings_change_the_id(tmp_path):
    first = expand(load_suite(write(tmp_path, BASE)))[0]
    changed = {**BASE, "training": {**BASE["training"], "epochs_per_phase": 3}}
    second = expand(load_suite(write(tmp_path, changed, "b.yaml")))[0]
    assert first.key() == second.key()
    assert first.run_id != second.run_id


def test_only_filters_and_rejects_bad_keys(tmp_path):
    runs = expand(load_suite(write(tmp_path, BASE)))
    kept = filter_runs(runs, ["sampler=phased", "fold=1,3"])
    assert {r.sampler for r in kept} == {"phased"}
    assert {r.fold for r in kept} == {1, 3}
    assert len(kept) == 2 * 1 * 2 * 2
    with pytest.raises(SuiteError, match="unknown key 'colour'"):
        filter_runs(runs, ["colour=red"])
    with pytest.raises(SuiteError, match="expected key=value"):
        filter_runs(runs, ["phased"])


def test_matrix_fold_out_of_range(tmp_path):
    data = {**BASE, "matrix": {**BASE["matrix"], "fold": [4]}}
    with pytest.raises(SuiteError, match=r"matrix.fold: fold 4 does not exist; the split has "
                                          r"folds 1..3"):
        expand(load_suite(write(tmp_path, data)))
