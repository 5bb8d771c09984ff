"""``harness schema suite``: a JSON Schema that accepts the shipped suites and refuses what the
validator refuses (unknown keys, wrong choices, out-of-range numbers, bad plugin options)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from harness.cli.main import main
from harness.config.suite import parse_suite
from harness.errors import HarnessError

jsonschema = pytest.importorskip("jsonschema")

SUITES = sorted((Path(__file__).resolve().parent.parent / "suites").glob("*.yaml"))


@pytest.fixture(scope="module")
def validator():
    result = CliRunner().invoke(main, ["schema", "suite"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert {"ieee8023", "rsna", "synthetic"} <= {
        rule["if"]["properties"]["name"]["const"]
        for rule in schema["properties"]["datasets"]["anyOf"][0]["items"]["allOf"]}
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.name)
def test_the_shipped_suites_validate(validator, path):
    data = yaml.safe_load(path.read_text())
    assert [e.message for e in validator.iter_errors(data)] == []


BASE = {"name": "s", "datasets": [{"name": "synthetic", "options": {"n": 60}}],
        "matrix": {"backbone": ["tiny"], "sampler": ["phased"], "engine": ["torch"]},
        "samplers": {"phased": {"phases": 2}}, "trackers": ["tensorboard"]}


def changed(path: str, value):
    data = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if key.isdigit() else node.setdefault(key, {})
    node[last] = value
    return data


@pytest.mark.parametrize("path, value", [
    ("trainng", {"lr": 0.1}),                 # unknown key
    ("training.optimizer", "nadamm"),         # not one of the choices
    ("training.lr", 0),                       # lr > 0
    ("image_size", 4),                        # below the smallest image size
    ("datasets.0.options.n", "many"),         # a dataset's option of the wrong type
    ("datasets.0.options.nn", 3),             # a dataset's unknown option
    ("samplers.phased.phasess", 2),           # a sampler's unknown option
])
def test_a_wrong_suite_is_refused_by_schema_and_validator(validator, path, value):
    assert list(validator.iter_errors(BASE)) == []
    data = changed(path, value)
    assert list(validator.iter_errors(data)), path
    if not path.startswith(("datasets.0.options", "samplers.")):  # plugin options: at check
        with pytest.raises(HarnessError):
            parse_suite(data, "s.yaml")
