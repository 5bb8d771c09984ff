"""Plugin options are checked by --dry-run: a typo or a wrong type is one line, exit 2."""

from __future__ import annotations

import pytest

pytest.importorskip("harness.plugin.options")


@pytest.mark.parametrize("datasets, message", [
    # Finding 2: a misspelt option silently fell back to the 'paper' mapping.
    ([{"name": "ieee8023", "options": {"root": "data", "mappping": "current"}}],
     r"datasets\[0\].options.mappping: unknown option. Did you mean 'mapping'\?"),
    # Finding 10: a wrong type ended in a traceback inside the plugin.
    ([{"name": "synthetic", "options": {"n": "many"}}], r"datasets\[0\].options.n: "),
    ([{"name": "synthetic", "options": {"n": 0}}], r"datasets\[0\].options.n: "),
])
def test_dataset_option_mistakes_fail_the_dry_run(make_suite, run_harness, tmp_path, datasets,
                                                  message):
    import re

    (tmp_path / "data").mkdir()
    suite = make_suite("opt", datasets=datasets)
    result = run_harness("run", suite, "--dry-run", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2
    error = result.output.strip()
    assert "\n" not in error and "Traceback" not in error, error
    assert re.search(rf"opt.yaml: {message}", error), error
    assert not (tmp_path / "runs").exists()


def test_sampler_option_typo_fails_the_dry_run(make_suite, run_harness, tmp_path):
    suite = make_suite("sopt", matrix={"sampler": ["phased"]}, samplers={"phased": {"phase": 3}})
    result = run_harness("run", suite, "--dry-run", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2
    assert "samplers.phased.phase: unknown option. Did you mean 'phases'?" in result.output
