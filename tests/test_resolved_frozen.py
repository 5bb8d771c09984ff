"""A resolved run is frozen all the way down: no nested setting can change once resolved,
and freezing changes neither ``config.json`` nor a run id."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle

import pytest
import yaml

from harness.config.frozen import thaw
from harness.config.suite import expand, parse_suite, suite_yaml
from harness.plugin.check import check_suite
from harness.plugin.registry import build_registry
from harness.plugin.resolved import ResolvedRun, resolve
from harness.testing import small_suite

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def resolved_run():
    data = small_suite(
        "frozen", matrix={"backbone": ["pixels"], "sampler": ["phased"], "engine": ["centroid"]},
        samplers={"phased": {"phases": 2, "quotas": {"covid19": "all"}}},
        report={"bootstrap": 50, "confusion_folds": [1], "references": ["none", "phased"]})
    suite = parse_suite(data, "frozen.yaml")
    registry = build_registry(suite.plugins)
    run = resolve(suite, check_suite(suite, registry, backbones=False), expand(suite)[0])
    recorded = {"data": {"synthetic": {"counts": {"normal": 40}, "version": {}}},
                "data_notes": ["a note"], "dropped_images": [{"uid": "u1", "file": "f"}],
                "versions": {"plugins": {"samplers:phased": "1"}}, "fingerprint": {"run": "x"}}
    back = ResolvedRun.from_json({**run.to_json(), **recorded, "later": {"keys": [1]}},
                                 registry, "config.json")
    return back, suite


MUTATIONS = {
    "split": lambda r: setattr(r.split, "folds", 3),
    "split.options": lambda r: r.split.options.update(extra=1),
    "report": lambda r: setattr(r.report, "bootstrap", 1),
    "report.confusion_folds": lambda r: r.report.confusion_folds.append(2),
    "report.references": lambda r: r.report.references.__setitem__(0, "x"),
    "report.headline": lambda r: r.report.headline.clear(),
    "datasets": lambda r: r.datasets.__setitem__(0, None),
    "datasets[0]": lambda r: setattr(r.datasets[0], "name", "x"),
    "datasets[0].options": lambda r: r.datasets[0].options.__setitem__("n", 5),
    "dataset_options[0]": lambda r: setattr(r.dataset_options[0], "n", 5),
    "run": lambda r: setattr(r.run, "seed", 1),
    "run.sampler_options": lambda r: r.run.sampler_options.pop("phases"),
    "run.training": lambda r: setattr(r.run.training, "lr", 1.0),
    "run.training.backbone_options": lambda r: r.run.training.backbone_options.update(a=1),
    "run.training.augmentation": lambda r: setattr(r.run.training.augmentation, "zoom", 0),
    "sampler_options.quotas": lambda r: r.sampler_options.quotas.__setitem__("normal", 1),
    "plan_rules.reference_options.quotas":
        lambda r: r.plan_rules.reference_options.quotas.clear(),
    "data": lambda r: r.data.__setitem__("other", {}),
    "data.synthetic.counts": lambda r: r.data["synthetic"]["counts"].update(normal=1),
    "data_notes": lambda r: r.data_notes.append("x"),
    "dropped_images[0]": lambda r: r.dropped_images[0].__setitem__("uid", "x"),
    "versions.plugins": lambda r: r.versions["plugins"].popitem(),
    "fingerprint": lambda r: r.fingerprint.setdefault("code", "y"),
    "extra.later.keys": lambda r: r.extra["later"]["keys"].extend([2]),
    "classes": lambda r: r.classes.__setitem__(0, "x"),
}


@pytest.mark.parametrize("part", sorted(MUTATIONS))
def test_mutating_any_nested_part_raises(part):
    run, _ = resolved_run()
    before = json.dumps(run.to_json(), sort_keys=True)
    with pytest.raises((TypeError, AttributeError, dataclasses.FrozenInstanceError,
                        ValueError)):
        MUTATIONS[part](run)
    assert json.dumps(run.to_json(), sort_keys=True) == before


def test_frozen_runs_serialise_copy_and_dump_as_before():
    run, suite = resolved_run()
    text = json.dumps(run.to_json(), sort_keys=True)
    assert json.loads(text)["suite"]["report"]["confusion_folds"] == [1]
    assert json.loads(text)["run"]["sampler_options"]["quotas"] == {"covid19": "all"}
    assert pickle.loads(pickle.dumps(run)) == run
    assert copy.deepcopy(run) == run
    # a changed copy is made the dataclass way, the original stays as it was
    changed = dataclasses.replace(run, fingerprint={"run": "y"})
    assert changed.fingerprint == {"run": "y"} and run.fingerprint == {"run": "x"}
    # the suite as YAML (``--print-config``) loads back to the same run ids
    again = parse_suite(yaml.safe_load(suite_yaml(suite).split("\n", 1)[1]), "frozen.yaml")
    assert [r.run_id for r in expand(again)] == [r.run_id for r in expand(suite)]
    assert yaml.safe_dump(thaw(run.to_json()))
