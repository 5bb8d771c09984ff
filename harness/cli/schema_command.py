"""``harness schema suite``: the suite file's JSON Schema, with every registered plugin's options."""

from __future__ import annotations

import json

import click

#: Plugin kinds whose options a suite holds (``engines`` take none).
OPTION_KINDS = ("datasets", "backbones", "samplers", "splitters", "executors", "trackers")


@click.command("schema")
@click.argument("what", type=click.Choice(["suite"]))
@click.option("--plugin", "modules", multiple=True, help="Also load this plugin module.")
def schema_command(what, modules):
    """Print a JSON Schema of suite files, for editors that complete and check YAML."""
    from harness.config.schema import suite_schema
    from harness.plugin.registry import build_registry

    registry = build_registry(modules)
    options = {kind: {name: registry.get(kind, name).options for name in registry.names(kind)}
               for kind in OPTION_KINDS}
    click.echo(json.dumps(suite_schema(options), indent=2))
