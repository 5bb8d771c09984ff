"""Plugin options that can only be checked against the suite (a class, a dataset, the number
of folds) fail ``harness run --dry-run``: one line naming the file and the key path, exit
code 2, no traceback, before any image is read. The plugin contract for it is
``harness.OptionsContext`` (``ClassName``, ``ClassKey``, ``DatasetName``, ``suite_of``)."""

from __future__ import annotations

import pytest
from pydantic import Field, ValidationInfo, field_validator

from harness import (
    ClassKey,
    ClassName,
    DatasetName,
    Options,
    OptionsContext,
    suite_of,
)
from harness.plugin.options import OptionsError, validate_options

EXPECT = "Expected one of: normal, pneumonia, covid19"


def dry_run(make_suite, run_harness, **overrides):
    return run_harness("run", make_suite("s", **overrides), "--dry-run")


@pytest.mark.parametrize("overrides, line", [
    ({"matrix": {"sampler": ["none", "phased"]},
      "samplers": {"phased": {"quotas": {"covd": 3}}}},
     f"samplers.phased.quotas.covd: unknown class 'covd'. Did you mean 'covid19'? {EXPECT}"),
    ({"matrix": {"sampler": ["phased"]},
      "samplers": {"phased": {"common": {0: 1, 5: 2}}}},
     ("samplers.phased.common.5: class index 5 is out of range: the suite has 3 classes "
      "(normal, pneumonia, covid19)")),
    ({"matrix": {"sampler": ["focal"]}, "samplers": {"focal": {"alpha": [0.5, 1.0]}}},
     ("samplers.focal.alpha: expected one positive number per class (3: normal, pneumonia, "
      "covid19), got [0.5, 1.0]")),
    ({"datasets": [{"name": "synthetic",
                    "options": {"proportions": {"normal": 1, "pneumnia": 1}}}]},
     (f"datasets[0].options.proportions.pneumnia: unknown class 'pneumnia'. Did you mean "
      f"'pneumonia'? {EXPECT}")),
    ({"datasets": [{"name": "ieee8023",
                    "options": {"root": "nowhere", "mapping": {"COVID-19": "covid"}}}]},
     (f"datasets[0].options.mapping.COVID-19: unknown class 'covid'. Did you mean 'covid19'? "
      f"{EXPECT}")),
    ({"datasets": [{"name": "rsna",
                    "options": {"root": "nowhere", "mapping": {"Lung Opacity": "opacity"}}}]},
     f"datasets[0].options.mapping.Lung Opacity: unknown class 'opacity'. {EXPECT}"),
    ({"classes": ["normal", "viral", "covid19"]},  # synthetic's default proportions
     ("datasets[0].options.proportions: unknown class 'pneumonia'. Expected one "
      "of: normal, viral, covid19")),
    ({"split": {"kind": "paper", "folds": 2}},
     ("split.options.test_patients: 5 lists of test patients (the authors' lists, by "
      "default), one per fold, but split.folds is 2; set split.folds: 5")),
    ({"matrix": {"sampler": ["phased"]},  # sorted JSON (run ids) cannot order these keys
      "samplers": {"phased": {"quotas": {"covid19": "all", 0: 5}}}},
     ("samplers.phased.quotas: keys mix numbers and names ('covid19', 0); write them all as "
      "names or all as numbers")),
    ({"split": {"kind": "paper", "folds": 5, "options": {"per_phase": {"normall": 250}}}},
     (f"split.options.per_phase.normall: unknown class 'normall'. Did you mean 'normal'? "
      f"{EXPECT}")),
])
def test_dry_run_names_file_key_and_the_suites_classes(make_suite, run_harness, tmp_path,
                                                       overrides, line):
    result = dry_run(make_suite, run_harness, **overrides)
    assert result.exit_code == 2, result.output
    assert result.output == f"error: {tmp_path / 's.yaml'}: {line}\n"


def test_the_same_options_pass_with_the_suites_own_classes(make_suite, run_harness):
    result = dry_run(
        make_suite, run_harness, classes=["normal", "pneumonia", "covid"],
        datasets=[{"name": "synthetic", "options": {
            "n": 60, "proportions": {"normal": 0.5, "pneumonia": 0.3, "covid": 0.2}}}],
        matrix={"sampler": ["phased", "focal"]},
        samplers={"phased": {"quotas": {2: "all", 0: 5}, "common": {"pneumonia": 1}},
                  "focal": {"alpha": [0.5, 1.0, 2.0]}})
    assert result.exit_code == 0, result.output
    assert "suite 's': 4 runs" in result.output


class Ref(Options):
    """A third-party plugin's options, checked against the suite the documented way."""

    focus: ClassName = "covid19"
    weights: dict[ClassKey, float] = Field(default_factory=dict)
    source: DatasetName | None = None
    per_fold: list[int] = Field(default_factory=list)

    @field_validator("per_fold")
    @classmethod
    def _one_per_fold(cls, value, info: ValidationInfo):
        suite = suite_of(info)
        if value and suite is not None and len(value) != suite.folds:
            raise ValueError(f"expected {suite.folds} numbers, one per fold")
        return value


def test_a_plugin_checks_its_options_against_the_suite():
    suite = OptionsContext(classes=("a", "b"), datasets=("foo",), folds=3)

    def error(raw):
        with pytest.raises(OptionsError) as exc:
            validate_options(Ref, raw, "samplers.ref", "s.yaml", suite)
        return str(exc.value)

    assert error({"focus": "c"}) == ("s.yaml: samplers.ref.focus: unknown class 'c'. "
                                     "Expected one of: a, b")
    assert error({"weights": {1: 1, 2: 1}}).startswith(
        "s.yaml: samplers.ref.weights.2: class index 2 is out of range")
    assert error({"source": "fo"}) == ("s.yaml: samplers.ref.source: unknown dataset 'fo'. "
                                       "Did you mean 'foo'? Expected one of: foo")
    assert error({"focus": "a", "per_fold": [1, 2]}) == (
        "s.yaml: samplers.ref.per_fold: expected 3 numbers, one per fold")
    ok = validate_options(Ref, {"focus": "b", "weights": {0: 2, 1: 3}, "source": "foo",
                                "per_fold": [1, 2, 3]}, "samplers.ref", "s.yaml", suite)
    assert ok.weights == {0: 2.0, 1: 3.0}
    # outside a suite (a plugin called directly) there is nothing to check against
    assert Ref.of({"focus": "c", "source": "bar", "per_fold": [1]}).focus == "c"
