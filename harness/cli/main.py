"""The ``harness`` command line (click).

Subcommands living in other modules are imported only when used (click's documented
lazy-group pattern), so ``harness list`` stays fast and imports no framework.
"""

from __future__ import annotations

import importlib
import json
import os
import sys

import click

from harness.errors import HarnessError, one_line_warnings
from harness.interrupts import exit_code, signals_interrupt
from harness.plugin.registry import KINDS

#: command name -> "module:attribute"
LAZY_COMMANDS = {
    "metrics": "harness.cli.report_commands:metrics_command",
    "report": "harness.cli.report_commands:report_command",
    "optimism": "harness.cli.report_commands:optimism_command",
    "data": "harness.cli.data_commands:data_group",
    "describe": "harness.cli.model_commands:describe_command",
    "bench": "harness.cli.model_commands:bench_command",
    "schema": "harness.cli.schema_command:schema_command",
    "status": "harness.cli.status_command:status_command",
    "track": "harness.cli.track_command:track_command",
}


#: Entry-point group through which plugins add commands: a click command (or group) per
#: entry point, imported only when it runs or ``--help`` lists it. The entry point's name
#: is the command's path below ``harness``: ``weights`` adds ``harness weights``;
#: ``data.bench-decode`` adds ``bench-decode`` to the core's ``data`` group (every core
#: group built with :class:`PluginCommandGroup` takes subcommands this way). A core command
#: of the same name wins over a plugin's.
COMMANDS_GROUP = "harness.commands"


def plugin_commands(path: str = "") -> dict:
    """Entry points of ``COMMANDS_GROUP`` directly below the group ``path`` ("" = top)."""
    from importlib.metadata import entry_points

    prefix = f"{path}." if path else ""
    found = {}
    for ep in entry_points(group=COMMANDS_GROUP):
        if ep.name.startswith(prefix) and "." not in (rest := ep.name[len(prefix):]):
            found[rest] = ep
    return found


class PluginCommandGroup(click.Group):
    """A core command group that plugins extend through ``COMMANDS_GROUP``."""

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(plugin_commands(self.name)))

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is None and name in (found := plugin_commands(self.name)):
            command = found[name].load()
        return command


class OneLineUsageError(click.ClickException):
    """A click usage error (bad option value, missing argument or path, unknown command) as
    the one ``error: ...`` line every other mistake gets, exit code 2, instead of click's
    usage block."""

    exit_code = 2

    def __init__(self, exc: click.UsageError) -> None:
        ctx = exc.ctx
        where = f"{ctx.command_path}: " if ctx is not None else ""
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        super().__init__(f"{where}{' '.join(exc.format_message().split())}{hint}")

    def show(self, file=None) -> None:
        click.secho(f"error: {self.format_message()}", fg="red", err=True)


def _usage_errors_as_one_line(exc: click.UsageError) -> click.UsageError | OneLineUsageError:
    """``harness`` (or ``harness data``) alone still prints its help, as click does."""
    if isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())):
        return exc
    return OneLineUsageError(exc)


class LazyGroup(click.Group):
    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:  # a mistake in the options of ``harness`` itself
            raise _usage_errors_as_one_line(exc) from exc

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS)
                      | set(plugin_commands()))

    def get_command(self, ctx, name):
        if name in LAZY_COMMANDS:
            module, attr = LAZY_COMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attr)
        command = super().get_command(ctx, name)
        if command is None and name in (found := plugin_commands()):
            command = found[name].load()
        return command

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except HarnessError as exc:  # user-facing errors: the message, no traceback
            if VERBOSE[0]:
                import traceback

                traceback.print_exc()
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(2)
        except click.UsageError as exc:  # a subcommand's arguments, or an unknown command
            raise _usage_errors_as_one_line(exc) from exc
        except OSError as exc:  # the file system said no (read-only, full, a file in the way)
            if exc.filename is None:
                raise
            if VERBOSE[0]:
                import traceback

                traceback.print_exc()
            where = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
            click.secho(f"error: {where}: {exc.strerror or exc}", fg="red", err=True)
            sys.exit(2)
        except KeyboardInterrupt as exc:  # 128 + the signal, as shells report it (not 1)
            click.secho("interrupted", fg="yellow", err=True)
            sys.exit(exit_code(exc))


#: ``-v`` given: user-facing errors come with their traceback too.
VERBOSE = [False]
VERBOSE_ENV = "HARNESS_VERBOSE"


@click.group(cls=LazyGroup)
@click.version_option(package_name="cxr-harness")
@click.option("-q", "--quiet", is_flag=True,
              help="No progress bars and no per-run lines (same as HARNESS_QUIET=1); "
                   "results and errors only.")
@click.option("-v", "--verbose", is_flag=True, help="Errors with their traceback.")
@click.pass_context
def main(ctx, quiet, verbose):
    """cxr-harness: benchmark chest X-ray classifiers on imbalanced data.

    Start with `harness run demo` (synthetic data, tiny model, CPU, minutes; `harness list
    suites` shows the shipped suites).
    """
    ctx.obj = {"quiet": quiet}
    VERBOSE[0] = verbose
    if verbose:
        os.environ[VERBOSE_ENV] = "1"  # the runner shows a failed run's traceback too
    one_line_warnings()
    if quiet:
        os.environ["HARNESS_QUIET"] = "1"  # the worker processes inherit it


@main.command("list", context_settings={"ignore_unknown_options": True,
                                         "allow_extra_args": True})
@click.argument("kind", required=False,
                type=click.Choice(["datasets", "backbones", "samplers", "splitters", "engines",
                                   "executors", "trackers", "suites"]))
@click.argument("pattern", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--plugin", "modules", multiple=True, help="Also load this plugin module.")
@click.pass_context
def list_command(ctx, kind, pattern, as_json, modules):
    """Show what every plugin registered, with the plugin that registered it; `list suites`:
    the shipped suites (`harness run NAME` runs one from any folder).

    PATTERN (shell-style) lists the matching names, family members included:
    harness list backbones 'timm/convnext*', or harness list backbones --timm 'convnext*'.
    """
    from harness.plugin.info import spec_info
    from harness.plugin.registry import build_registry

    if pattern or ctx.args:
        from harness.cli.family_listing import echo_matching

        echo_matching(build_registry(modules), kind, [w for w in (pattern, *ctx.args) if w],
                      as_json)
        return
    kinds = [kind] if kind else list(KINDS)
    registry = build_registry(modules) if kinds != ["suites"] else None
    listing = {k: [spec_info(registry, k, name) for name in registry.names(k)]
               for k in kinds if k != "suites"}
    if "suites" in kinds:
        listing["suites"] = shipped_suite_rows()
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    for k, items in listing.items():
        click.secho(f"{k}:", bold=True)
        width = max((len(item["name"]) for item in items), default=0) + 2
        for item in items:
            extra = f" [{', '.join(item['engines'])}]" if "engines" in item else ""
            if item.get("installed") is False:
                extra += (f" (not installed: "
                          f"{item.get('install') or 'pip install ' + item['framework']})")
            where = f"(plugin: {item['plugin']})" if "plugin" in item else f"({item['file']})"
            click.echo(f"  {item['name']:<{width}}{item['description']}{extra}  {where}")
        if registry is not None and k != "suites":
            from harness.cli.family_listing import family_lines

            for line in family_lines(registry, k):
                click.echo(line)


def shipped_suite_rows() -> list[dict[str, str]]:
    """Name, first line of the description and file of every shipped suite."""
    import yaml

    from harness.config.shipped import shipped_suites

    rows = []
    for name, path in shipped_suites().items():
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            data = {}
        description = str(data.get("description", "")) if isinstance(data, dict) else ""
        rows.append({"name": name, "description": " ".join(description.split()),
                     "file": str(path)})
    return rows


@main.command("run")
@click.argument("suite", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1, metavar="[KEY.PATH=VALUE]...")
@click.option("--dry-run", is_flag=True,
              help="Check the suite and its data, print the runs (with their ids) and where "
                   "runs and the report go, and stop.")
@click.option("--print-config", is_flag=True,
              help="Print the resolved suite (overrides set, defaults filled) as YAML and stop.")
@click.option("--only", multiple=True, metavar="KEY=VALUE",
              help="Keep runs whose backbone/sampler/engine/fold/seed matches; repeatable.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first failing run.")
@click.option("--out", "out_dir", default=None, metavar="DIR",
              help="Put runs in DIR/runs and reports in DIR/reports (default: the current "
                   "folder).")
@click.option("--runs-dir", default=None, help="Where run folders go [default: OUT/runs].")
@click.option("--reports-dir", default=None, help="Where reports go [default: OUT/reports].")
@click.option("--no-report", is_flag=True, help="Do not render the report at the end.")
@click.option("--rerun", type=click.Choice(["stale", "failed", "all"]), default=None,
              help="Train again from scratch, with a new plan: runs planned by an older suite "
                   "(stale), failed runs (instead of resuming them), or every run (all).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document (runs, states, report) on stdout; progress "
                   "lines go to stderr.")
@click.option("--detach", is_flag=True,
              help="Submit the runs to the executor's scheduler (Slurm), print the job ids "
                   "and exit; `harness status SUITE` shows how they go on.")
@click.pass_context
def run_command(ctx, suite, overrides, dry_run, print_config, only, fail_fast, out_dir,
                runs_dir, reports_dir, no_report, rerun, as_json, detach):
    """Train every run of SUITE that is not done yet, then render its report.

    SUITE is a suite file or the name of a shipped one (`harness list suites`). Each
    KEY.PATH=VALUE sets one key of the suite before it is checked, the value read as YAML:
    `harness run demo training.lr=0.001 matrix.sampler=[none,focal]`.
    """
    from harness.runs.runner import StopSuite, dry_run_table, run_suite, summary_rows

    quiet = bool((ctx.obj or {}).get("quiet"))
    runs_dir = runs_dir or os.path.join(out_dir or ".", "runs")
    reports_dir = reports_dir or os.path.join(out_dir or ".", "reports")
    if print_config:
        from harness.config.suite import load_suite, suite_yaml

        click.echo(suite_yaml(load_suite(suite, overrides), overrides), nl=False)
        return

    def echo(line: str) -> None:
        if not quiet:
            click.echo(line, err=as_json)

    try:
        # SIGTERM (preemption, kill) stops like Ctrl-C: the running worker gets SIGINT and
        # writes its checkpoint and ``interrupted`` before this process exits 143.
        with signals_interrupt():
            result = run_suite(suite, only=list(only), dry_run=dry_run, fail_fast=fail_fast,
                               runs_root=runs_dir, reports_root=reports_dir,
                               render=not no_report and not dry_run, echo=echo,
                               rerun=rerun, overrides=list(overrides), detach=detach)
    except StopSuite as exc:
        click.secho(f"stopped: {exc}", fg="red", err=True)
        sys.exit(1)
    except KeyboardInterrupt as exc:
        click.secho("interrupted: finished runs are kept; run the same command to resume",
                    fg="yellow", err=True)
        sys.exit(exit_code(exc))
    if dry_run:
        from harness import store

        rows = dry_run_table(result, runs_dir)
        stale = set(result.stale)
        runs_at = store.child(runs_dir, result.suite.name).resolve()
        report_at = store.child(reports_dir, result.suite.name).resolve() / "index.html"
        if as_json:
            click.echo(json.dumps({"suite": result.suite.name, "source": result.suite.source,
                                   "overrides": list(overrides), "runs_dir": str(runs_at),
                                   "report": None if no_report else str(report_at),
                                   "cache": result.cache.to_json() if result.cache else None,
                                   "runs": [{**row, "stale": row["run_id"] in stale}
                                            for row in rows]}, indent=2))
            return
        click.echo(f"suite {result.suite.name!r}: {len(rows)} runs")
        click.echo(f"  file:   {result.suite.source}")
        click.echo(f"  runs:   {runs_at}")
        click.echo(f"  report: {report_at if not no_report else '(none: --no-report)'}")
        if result.cache is not None:
            click.echo(f"  cache:  {result.cache.path}: {result.cache.line()}")
        for row in rows:
            state = f"{row['state']} (stale)" if row["run_id"] in stale else row["state"]
            click.echo(f"  {row['run_id']:<48} {state}")
        if stale:
            from harness.runs.runner import stale_line

            click.echo(stale_line(len(stale)))
            for line in result.stale_why:
                click.echo(line)
        return
    if detach:
        from harness.cli.status_command import echo_detached

        echo_detached(result, runs_dir, as_json)
        return
    failed = [o for o in result.outcomes if o.state != "done"]
    if as_json:
        from harness.runs.runner import run_dir_for

        click.echo(json.dumps({
            "suite": result.suite.name, "source": result.suite.source,
            "report": str(result.report) if result.report else None,
            "runs": [{"run_id": o.run.run_id, **o.run.key(), "state": o.state,
                      "seconds": round(o.seconds, 3), "error": o.error,
                      "run_dir": str(run_dir_for(runs_dir, o.run))} for o in result.outcomes],
            "summary": summary_rows(result, runs_dir),
        }, indent=2))
        sys.exit(1 if failed else 0)
    print_summary(summary_rows(result, runs_dir))
    click.echo(f"done: {result.count('done')} of {len(result.runs)} runs"
               + (f", {len(failed)} failed" if failed else ""))
    for o in failed:
        click.echo(f"  failed: {o.run.run_id}: {o.error}")
    if failed:
        sys.exit(1)


def print_summary(rows: list[dict]) -> None:
    """Mean over folds and seeds of each combination (percent); the report has the rest."""
    if not rows:
        return
    keys = [k for k in rows[0] if k not in ("combination", "runs")]
    width = max(len(r["combination"]) for r in rows) + 2
    click.echo("mean over runs (%)".ljust(width) + "runs" +
               "".join(f"{k.replace('_', ' '):>22}" for k in keys))
    for r in rows:
        cells = "".join(f"{'n/a' if r[k] is None else f'{100 * r[k]:.1f}':>22}" for k in keys)
        click.echo(f"{r['combination']:<{width}}{r['runs']:>4}{cells}")


if __name__ == "__main__":
    main()
