"""Each plugin's options are validated once per command: ``check`` builds the typed options
and everything after (records, cache, folds, provenance, staleness, plans) takes them."""

from __future__ import annotations

from collections import Counter

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from harness.cli.main import main
from harness.config.suite import parse_suite
from harness.plugin.options import Options
from harness.runs.runner import run_suite
from harness.testing import small_suite, write_suite

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def validations(monkeypatch):
    """Options model name -> how often pydantic validated it in this process."""
    counts: Counter[str] = Counter()
    validate = BaseModel.model_validate.__func__

    def counting(cls, obj, **kwargs):
        counts[cls.__name__] += 1
        return validate(cls, obj, **kwargs)

    monkeypatch.setattr(Options, "model_validate", classmethod(counting))
    return counts


def test_data_prepare_validates_the_dataset_and_split_options_once(tmp_path, validations):
    suite = write_suite(tmp_path / "once.yaml", "once", cache_dir="cache")
    result = CliRunner().invoke(main, ["data", "prepare", str(suite), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "120 images ready" in result.output
    # the synthetic dataset's model; the splitter takes none (the base ``Options``)
    assert validations == {"SyntheticOptions": 1, "Options": 1}


@pytest.mark.parametrize("dry_run", [True, False])
def test_planning_and_running_validate_each_plugins_options_once(tmp_path, validations,
                                                                 dry_run):
    data = small_suite("once", cache_dir="cache",
                       matrix={"backbone": ["pixels"], "sampler": ["none"],
                               "engine": ["centroid"], "fold": [1]})
    result = run_suite(parse_suite(data, str(tmp_path / "once.yaml")),
                       runs_root=tmp_path / "runs", render=False, echo=lambda m: None,
                       show_progress=False, dry_run=dry_run)
    assert len(result.runs) == 1
    if not dry_run:
        assert [o.state for o in result.outcomes] == ["done"]
    # synthetic dataset, sampler ``none``, ``phased`` (the budget reference), the local
    # executor; the splitter and the ``pixels`` backbone take no options (``Options``)
    assert validations == {"SyntheticOptions": 1, "SamplerOptions": 1, "PhasedOptions": 1,
                           "LocalOptions": 1, "Options": 2}
