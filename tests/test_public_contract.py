"""One public contract: built-in plugins are exactly as privileged as a third party's.

Every module under ``plugins/`` imports from the core only ``harness`` (every kind) and
``harness.engine_api`` (an engine's toolkit). The engine contract's primitives are declared
once, and ``--dry-run`` refuses a sampler whose plans call a primitive the engine lacks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from click.testing import CliRunner

import harness
from harness import engine_api
from harness.cli.main import main
from harness.plugin.engine import OPTIONAL_PRIMITIVES, REQUIRED_PRIMITIVES, EngineModel
from harness.plugin.registry import build_registry
from harness.testing.fakes import CentroidModel

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"
PUBLIC = {"harness", "harness.engine_api"}


def core_imports(source: str) -> list[str]:
    """``line: module`` of every import of a ``harness`` module in ``source`` (not of
    ``harness_plugins``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # ``from harness import engine_api`` imports the module harness.engine_api
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names
                                     if node.module == "harness" and a.name == "engine_api"]
        else:
            continue
        found += [f"{node.lineno}: {n}" for n in names
                  if n == "harness" or n.startswith("harness.")]
    return found


def test_plugins_import_only_the_public_contract():
    files = sorted(PLUGINS.rglob("*.py"))
    assert len(files) > 30  # every built-in plugin is searched
    private = {}
    for path in files:
        bad = [hit for hit in core_imports(path.read_text())
               if hit.split(": ")[1] not in PUBLIC]
        if bad:
            private[str(path.relative_to(PLUGINS))] = bad
    assert private == {}


def test_the_check_sees_a_private_import():
    source = ("import harness\nfrom harness import Plan\nfrom harness import engine_api\n"
              "from harness.training.engine import lazy\nimport harness.runs.launch\n"
              "from harness_plugins.trackers import common\n")
    hits = core_imports(source)
    assert [h for h in hits if h.split(": ")[1] not in PUBLIC] == [
        "4: harness.training.engine", "5: harness.runs.launch"]


def test_every_public_name_resolves():
    for module in (harness, engine_api):
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert missing == []
    # every name a built-in plugin takes from the contract is exported there
    public = {"harness": set(harness.__all__), "harness.engine_api": set(engine_api.__all__)}
    unexported = set()
    for path in PLUGINS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in public:
                unexported |= {f"{node.module}.{a.name}" for a in node.names
                               if a.name not in public[node.module] | {"engine_api"}}
    assert unexported == set()


def test_the_engine_contract_declares_every_primitive_once():
    methods = {n for n in vars(EngineModel) if not n.startswith("_")}
    assert methods == set(REQUIRED_PRIMITIVES) | {"reset_classifier"}
    assert "reset_classifier" in OPTIONAL_PRIMITIVES
    assert not set(REQUIRED_PRIMITIVES) & set(OPTIONAL_PRIMITIVES)
    assert engine_api.missing_primitives(CentroidModel, ["reset_classifier"]) == []


#: A third party's engine: the fake engine's model without ``reset_classifier``.
NO_RESET_ENGINE = """
from harness import EngineSpec, hookimpl
from harness.testing.fakes import CentroidModel


class NoResetModel(CentroidModel):
    reset_classifier = None


@hookimpl
def register_engines(register):
    register(EngineSpec(name="noreset", description="lacks reset_classifier",
                        build=NoResetModel, backbones="centroid"))
"""


def test_dry_run_refuses_a_plan_that_needs_a_missing_primitive(tmp_path, monkeypatch,
                                                                 make_suite):
    (tmp_path / "noreset_engine.py").write_text(NO_RESET_ENGINE)
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins = ["harness.testing.fakes", "noreset_engine"]

    def dry_run(sampler: str):
        suite = make_suite(sampler.replace("-", ""), plugins=plugins,
                           matrix={"sampler": [sampler], "engine": ["noreset"]})
        return CliRunner().invoke(main, ["run", str(suite), "--dry-run"])

    refused = dry_run("two-stage")
    assert refused.exit_code == 2, refused.output
    line = refused.output.strip().splitlines()[-1]
    assert line.startswith("error: ") and "Traceback" not in refused.output
    assert "sampler 'two-stage' needs the engine primitive(s) reset_classifier" in line
    assert "engine 'noreset' (NoResetModel) lacks" in line
    # the same engine with a sampler whose plans never re-draw the classifier passes
    fine = dry_run("none")
    assert fine.exit_code == 0, fine.output


def test_the_loop_refuses_before_the_first_epoch(tmp_path):
    """An engine registered lazily (its class unknown at ``--dry-run``) is refused when the
    run starts, naming the engine and the sampler, not with an AttributeError later."""
    import numpy as np

    from harness import BackboneSpec, Phase, Plan
    from harness.config.suite import RunSpec, Training
    from harness.training.job import Job
    from harness.training.loop import train

    class NoReset(CentroidModel):
        reset_classifier = None

    settings = {"epochs_per_phase": 1, "batch_size": 4, "selection": "last", "weights": "none"}
    run = RunSpec(suite="t", backbone="b", sampler="two-stage", engine="lazy", fold=1, seed=0,
                  training=settings, sampler_options={}, run_id="r")
    plan = Plan(phases=[Phase(indices=list(range(6))),
                        Phase(indices=list(range(6)), classifier_only=True,
                              reset_classifier=True)])
    job = Job(run=run, run_dir=tmp_path, classes=["a", "b", "c"], image_size=8,
              images=np.zeros((12, 8, 8), np.uint8), labels=np.arange(12) % 3,
              train=np.arange(6), select=np.arange(0), test=np.arange(6, 12), plan=plan,
              training=Training(**settings), backbone=BackboneSpec("b", "", {}))
    with pytest.raises(harness.HarnessError) as caught:
        train(job, NoReset)
    assert str(caught.value) == (
        "engine 'lazy' (NoReset) lacks the primitive(s) reset_classifier that the plan of "
        "sampler 'two-stage' needs (harness.engine_api.EngineModel)")
    assert not (tmp_path / "history.csv").exists()  # refused before the first epoch
    job.plan = Plan(phases=plan.phases[:1])
    assert train(job, NoReset).shape == (6, 3)  # no re-draw in the plan: it trains


def test_every_sampler_that_resets_the_classifier_says_so():
    """``SamplerSpec.needs`` is true of the plans the built-in samplers make."""
    import numpy as np

    from harness.testing import plan_with

    registry = build_registry([])
    labels = np.repeat(np.arange(3), [40, 12, 6])
    for name in registry.names("samplers"):
        spec = registry.get("samplers", name)
        plan = plan_with(spec, labels)
        resets = any(p.reset_classifier for p in plan.phases)
        assert resets == ("reset_classifier" in spec.needs), name
