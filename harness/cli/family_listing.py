"""``harness list KIND PATTERN`` and ``harness list KIND --FAMILY PATTERN``: names by pattern.

A family (``harness.Family``, e.g. ``timm/``) has more members than a listing can show, so
they are listed only on request: ``harness list backbones 'timm/convnext*'``, or the same
as ``harness list backbones --timm 'convnext*'`` (``--NAME`` is any registered family's
name, so the core names none).
"""

from __future__ import annotations

import fnmatch
import json

import click

from harness.errors import HarnessError
from harness.plugin.registry import KINDS, Registry


def family_request(registry: Registry, kind: str | None,
                   words: list[str]) -> tuple[str | None, str]:
    """``(family prefix or None, pattern)`` from the words after KIND: ``PATTERN``,
    ``--NAME PATTERN`` or ``--NAME=PATTERN`` (``--NAME`` alone: every member)."""
    flags = [w for w in words if w.startswith("--")]
    rest = [w for w in words if not w.startswith("--")]
    if len(flags) > 1 or len(rest) > 1 or (flags and "=" in flags[0] and rest):
        raise HarnessError(f"harness list: unexpected {' '.join(words)!r}; expected "
                           "KIND PATTERN or KIND --FAMILY PATTERN")
    if not flags:
        return None, rest[0] if rest else "*"
    flag, _, value = flags[0][2:].partition("=")
    pattern = value or (rest[0] if rest else "*")
    kinds = [kind] if kind else list(KINDS)
    for k in kinds:
        for prefix, entry in registry.families[k].items():
            if entry.spec.name == flag:
                return prefix, pattern
    known = sorted(f"--{e.spec.name}" for k in kinds for e in registry.families[k].values())
    raise HarnessError(f"harness list: no such option or family '--{flag}'; families: "
                       f"{', '.join(known) or '(none)'}")


def matching(registry: Registry, kind: str | None, words: list[str]) -> dict[str, list[str]]:
    """Per kind, the registered names and family members that match."""
    family, pattern = family_request(registry, kind, words)
    out: dict[str, list[str]] = {}
    for k in [kind] if kind else list(KINDS):
        names = [] if family else [n for n in registry.names(k)
                                   if fnmatch.fnmatchcase(n, pattern)]
        for prefix, entry in registry.families[k].items():
            if family not in (None, prefix) or entry.spec.members is None:
                continue
            if family is None and not pattern.startswith(prefix):
                continue
            rest = pattern if family else pattern[len(prefix):]
            try:
                names += [prefix + m for m in entry.spec.members(rest or "*")]
            except LookupError as exc:
                raise HarnessError(f"{prefix}: {exc.args[0] if exc.args else exc}") from None
        if names or kind:
            out[k] = names
    return out


def echo_matching(registry: Registry, kind: str | None, words: list[str],
                  as_json: bool) -> None:
    found = matching(registry, kind, words)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    for k, names in found.items():
        click.secho(f"{k} ({len(names)}):", bold=True)
        for name in names:
            click.echo(f"  {name}")


def family_lines(registry: Registry, kind: str) -> list[str]:
    """One line per family of ``kind`` for the plain listing (its members are not listed)."""
    return [f"  {prefix + '<name>':<18} {e.spec.description}  (plugin: {e.plugin}; "
            f"harness list {kind} --{e.spec.name} PATTERN)"
            for prefix, e in sorted(registry.families[kind].items())]
