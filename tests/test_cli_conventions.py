"""Command-line conventions: --only, -q, --json, quiet pipes."""

from __future__ import annotations

import json

from click.testing import CliRunner

from harness.cli.main import main


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_only_that_matches_nothing_names_the_value_and_the_valid_ones(make_suite):
    suite = make_suite("only", matrix={"sampler": ["none", "phased"]})
    result = invoke("run", suite, "--dry-run", "--only", "sampler=bogus")
    assert result.exit_code == 2
    assert ("error: --only sampler=bogus: no run of the suite has sampler 'bogus'; its sampler "
            "values: none, phased") in result.output
    result = invoke("run", suite, "--dry-run", "--only", "fold=3")
    assert result.exit_code == 2 and "its fold values: 1, 2" in result.output


def test_repeated_only_on_one_key_is_or_and_keys_are_and(make_suite):
    suite = make_suite("or", matrix={"sampler": ["none", "phased", "focal"]})
    result = invoke("run", suite, "--dry-run", "--json", "--only", "sampler=none",
                    "--only", "sampler=focal", "--only", "fold=2")
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert sorted((r["sampler"], r["fold"]) for r in runs) == [("focal", 2), ("none", 2)]
    assert all(r["state"] == "pending" and r["stale"] is False for r in runs)


def test_run_json_and_quiet(make_suite, tmp_path):
    suite = make_suite("js")
    result = invoke("-q", "run", suite, "--json", "--runs-dir", tmp_path / "runs",
                    "--no-report")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["suite"] == "js" and doc["report"] is None
    assert [r["state"] for r in doc["runs"]] == ["done", "done"]
    assert {r["fold"] for r in doc["runs"]} == {1, 2}
    assert 0.0 <= doc["summary"][0]["accuracy"] <= 1.0
    quiet = invoke("-q", "run", suite, "--runs-dir", tmp_path / "runs", "--no-report")
    assert quiet.exit_code == 0
    assert "[1/" not in quiet.output and "suite 'js'" not in quiet.output
    assert quiet.output.splitlines()[-1] == "done: 2 of 2 runs"
    assert "" not in quiet.output.splitlines()  # no blank lines


def test_progress_bars_only_on_a_terminal(monkeypatch):
    from harness import progress

    monkeypatch.delenv("HARNESS_QUIET", raising=False)
    monkeypatch.delenv("HARNESS_PROGRESS", raising=False)
    assert progress.is_enabled() is False  # pytest's stderr is not a terminal
    monkeypatch.setenv("HARNESS_PROGRESS", "1")
    assert progress.is_enabled() is True
    monkeypatch.setenv("HARNESS_QUIET", "1")
    assert progress.is_enabled() is False


def test_click_usage_mistakes_are_one_error_line_with_exit_2(tmp_path):
    cases = {
        ("run",): "error: harness run: Missing argument 'SUITE'. (see 'harness run --help')",
        ("report", "--bootstrap", "x", str(tmp_path)):
            "error: harness report: Invalid value for '--bootstrap': 'x' is not a valid "
            "integer range. (see 'harness report --help')",
        ("optimism", str(tmp_path / "no"), str(tmp_path)):
            f"error: harness optimism: Invalid value for 'OPTIMISTIC_RUNS': Directory "
            f"'{tmp_path / 'no'}' does not exist. (see 'harness optimism --help')",
        ("bogus",): "error: harness: No such command 'bogus'. (see 'harness --help')",
        ("--bogus",): "error: harness: No such option '--bogus'.",
        ("data", "prepare"): "error: harness data prepare: Missing argument 'SUITE_FILE'.",
    }
    for args, line in cases.items():
        result = CliRunner().invoke(main, list(args), prog_name="harness")
        assert result.exit_code == 2, args
        assert result.stdout == "", args
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(line), \
            (args, result.stderr)
    for args in ([], ["data"]):  # a group alone still shows its help, as click does
        result = CliRunner().invoke(main, args, prog_name="harness")
        assert "Usage: harness" in result.output and "Commands:" in result.output


def test_harness_errors_are_one_line_and_verbose_adds_the_traceback(tmp_path):
    missing = tmp_path / "none.csv"
    result = CliRunner().invoke(main, ["metrics", str(missing)])
    assert result.exit_code == 2
    assert result.stderr == f"error: {missing}: no such predictions file\n"
    verbose = CliRunner().invoke(main, ["-v", "metrics", str(missing)])
    assert verbose.exit_code == 2
    assert verbose.stderr.startswith("Traceback (most recent call last):")
    assert "HarnessError" in verbose.stderr and "read_predictions" in verbose.stderr
    assert verbose.stderr.splitlines()[-1] == f"error: {missing}: no such predictions file"


def test_run_json_without_quiet_puts_progress_on_stderr_and_only_json_on_stdout(make_suite,
                                                                               tmp_path):
    suite = make_suite("loud")
    result = invoke("run", suite, "--json", "--runs-dir", tmp_path / "runs", "--no-report")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)   # the whole of stdout is one JSON document
    assert [r["state"] for r in doc["runs"]] == ["done", "done"]
    assert result.stderr.startswith("suite 'loud': 2 runs, 0 already done, 2 to run\n")
    assert "[1/2]" in result.stderr and "[2/2]" in result.stderr
