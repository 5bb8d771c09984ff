"""Plugins add commands through the ``harness.commands`` entry-point group, at the top level
(``weights``) or below a core group (``data.bench-decode``)."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from harness.cli.main import main


@pytest.fixture
def hello_plugin(tmp_path, monkeypatch):
    """A fake distribution whose entry points add ``harness data hello`` and ``harness hi``."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "harness_hello.py").write_text(
        "import click\n\n"
        "@click.command('hello')\n@click.argument('who')\n"
        "def hello(who):\n    click.echo(f'hello {who} from a plugin')\n\n"
        "@click.command('hi')\ndef hi():\n    click.echo('hi')\n")
    info = site / "harness_hello-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-hello\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[harness.commands]\ndata.hello = harness_hello:hello\nhi = harness_hello:hi\n"
        "nowhere.deep.x = harness_hello:hi\n")
    monkeypatch.syspath_prepend(str(site))
    yield
    sys.modules.pop("harness_hello", None)


def test_a_plugin_adds_a_subcommand_to_the_data_group(hello_plugin):
    runner = CliRunner()
    listing = runner.invoke(main, ["data", "--help"])
    assert listing.exit_code == 0
    assert "hello" in listing.output and "bench-decode" in listing.output
    result = runner.invoke(main, ["data", "hello", "you"])
    assert result.exit_code == 0, result.output
    assert result.output == "hello you from a plugin\n"
    top = runner.invoke(main, ["--help"])
    names = [line.split()[0] for line in top.output.split("Commands:")[1].splitlines()
             if line.strip()]
    assert "hi" in names and "weights" in names and "data" in names
    assert not any("hello" in n for n in names)
    assert runner.invoke(main, ["hi"]).output == "hi\n"
    # a dotted name whose group the core lacks adds nothing anywhere
    assert "nowhere" not in names and runner.invoke(main, ["nowhere"]).exit_code == 2


def test_bench_decode_comes_from_the_dicom_plugin():
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="harness.commands") if e.name == "data.bench-decode"]
    assert ep.value == "harness_plugins.datasets.dicom_bench:bench_decode_command"
    result = CliRunner().invoke(main, ["data", "bench-decode", "--n", "0"])
    assert result.exit_code == 2
    assert "bench-decode: --n, --repeats and --workers must be >= 1" in result.output
