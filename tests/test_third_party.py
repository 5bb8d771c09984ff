"""A third-party plugin written from the README alone, installed through the entry-point group.

The plugin's source is the README's own example (so the documentation cannot drift from
what works); a fake distribution (a ``.dist-info`` folder with ``entry_points.txt`` on
``sys.path``, which is how ``importlib.metadata`` finds installed packages) registers it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_plugin() -> str:
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    (source,) = [b for b in blocks if b.startswith("# harness_foo.py")]
    return source


@pytest.fixture
def foo(tmp_path, monkeypatch):
    """``harness_foo`` installed (entry point ``foo``) and a folder of 40 labelled PNGs."""
    from PIL import Image

    site = tmp_path / "site"
    site.mkdir()
    (site / "harness_foo.py").write_text(readme_plugin())
    info = site / "harness_foo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-foo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[harness]\nfoo = harness_foo\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))  # the worker and check processes too

    data = tmp_path / "data"
    (data / "img").mkdir(parents=True)
    rows = []
    rng = np.random.default_rng(0)
    for i in range(40):
        label = ["normal", "pneumonia", "covid19"][0 if i < 24 else 1 if i < 34 else 2]
        pixels = (rng.random((20, 20)) * 60 + 60 * ["normal", "pneumonia", "covid19"]
                  .index(label)).astype(np.uint8)
        path = data / "img" / f"{i}.png"
        Image.fromarray(pixels).save(path)
        rows.append(f"foo/{i},{path},{label},p{i},foo,PA")
    (data / "labels.csv").write_text("uid,path,label,patient_id,source,view\n"
                                     + "\n".join(rows) + "\n")
    return tmp_path


def suite_file(root: Path, name: str, **overrides) -> Path:
    suite = {
        "name": name, "image_size": 16, "cache_dir": str(root / "cache"),
        "datasets": [{"name": "foo", "options": {"root": "data"}}],
        "split": {"kind": "grouped-kfold", "folds": 2, "seed": 0},
        "matrix": {"backbone": ["foonet"], "sampler": ["half", "phased"],
                   "engine": ["torch"], "fold": [1]},
        "training": {"epochs_per_phase": 1, "batch_size": 8, "weights": "none",
                     "augmentation": {"enabled": False}, "selection": "last"},
        "budget": "equal",
        "report": {"bootstrap": 20},
    }
    for key, value in overrides.items():
        suite[key] = {**suite.get(key, {}), **value} if isinstance(value, dict) else value
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def test_the_readme_plugin_is_found_through_its_entry_point(foo, run_harness):
    result = run_harness("list", "--json")
    listing = json.loads(result.output)
    plugins = {(kind, item["name"]): item["plugin"] for kind, items in listing.items()
               for item in items}
    assert plugins[("datasets", "foo")] == plugins[("samplers", "half")] == \
        plugins[("backbones", "foonet")] == "foo"


@pytest.mark.parametrize("overrides, key", [
    ({"datasets": [{"name": "foo", "options": {"rot": "data"}}]},
     "datasets[0].options.rot: unknown option. Did you mean 'root'?"),
    ({"samplers": {"half": {"fractoin": 0.3}}},
     "samplers.half.fractoin: unknown option. Did you mean 'fraction'?"),
    ({"samplers": {"half": {"fraction": 2}}},
     "samplers.half.fraction: Input should be less than or equal to 1, got 2"),
    ({"training": {"backbone_options": {"widht": 8}}},
     "training.backbone_options.widht: unknown option. Did you mean 'width'?"),
])
def test_option_typos_fail_the_dry_run_naming_the_key(foo, run_harness, overrides, key):
    suite = suite_file(foo, "typo", **overrides)
    result = run_harness("run", suite, "--dry-run")
    assert result.exit_code == 2, result.output
    assert result.output == f"error: {suite}: {key}" + result.output.split(key, 1)[1]
    assert "Traceback" not in result.output


@pytest.mark.torch
def test_a_backbone_without_out_channels_fails_the_dry_run(foo, run_harness):
    pytest.importorskip("torch")
    broken = readme_plugin().replace("    net.out_channels = options.width"
                                     "            # the torch backbone contract\n", "")
    assert broken != readme_plugin()
    broken = broken.replace('name="foonet"', 'name="foonet-broken"')
    broken = re.sub(r"@hookimpl\ndef register_(datasets|samplers).*?\n\n", "", broken, flags=re.DOTALL)
    (foo / "site" / "harness_foo_broken.py").write_text(broken)
    suite = suite_file(foo, "broken", plugins=["harness_foo_broken"],
                       matrix={"backbone": ["foonet-broken"]})
    result = run_harness("run", suite, "--dry-run")
    assert result.exit_code == 2, result.output
    assert (f"error: {suite}: matrix.backbone: backbone 'foonet-broken' (engine torch): the "
            "torch module has no integer attribute 'out_channels'") in result.output


@pytest.mark.slow
@pytest.mark.torch
def test_the_readme_plugin_trains_and_meets_the_equal_budget(foo, run_harness):
    pytest.importorskip("torch")
    suite = suite_file(foo, "foo")
    result = run_harness("run", suite, "--runs-dir", foo / "runs", "--no-report")
    assert result.exit_code == 0, result.output
    plans = {json.loads(p.read_text())["sampler"]: json.loads(p.read_text())
             for p in (foo / "runs" / "foo").glob("*/plan.json")}
    assert set(plans) == {"half", "phased"}
    # the random half has its own natural budget; budget: equal gives it phased's
    half_natural = plans["half"]["train"]["uids"]["n"] // 2  # plan.npz holds the uids
    assert plans["half"]["budget"] == plans["phased"]["budget"] != half_natural
    assert "fixed by the suite" in plans["half"]["plan"]["notes"]
    for run in (foo / "runs" / "foo").glob("*/metrics.json"):
        assert 0.0 <= json.loads(run.read_text())["accuracy"] <= 1.0
