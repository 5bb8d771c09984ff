"""What a registered thing is, for people and programs: ``harness describe`` / ``list --json``.

One dict per spec: kind, name, description, the plugin that registered it and that plugin's
distribution and version, and its options (type, default, required, help, bounds) with the
options model's JSON schema, so a tool can validate a suite's option block itself.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from harness.errors import HarnessError
from harness.plugin.options import Options, option_rows
from harness.plugin.registry import KINDS, Registry

#: ``describe KIND``: the singular a user types, or the plural ``list`` uses.
SINGULAR = {kind[:-1]: kind for kind in KINDS}


def kind_of(word: str) -> str:
    """``backbone`` or ``backbones`` → ``backbones``; anything else is a one-line error."""
    if word in KINDS:
        return word
    if word in SINGULAR:
        return SINGULAR[word]
    raise HarnessError(f"unknown kind {word!r}; expected one of {', '.join(SINGULAR)}")


def spec_info(registry: Registry, kind: str, name: str, schema: bool = True) -> dict[str, Any]:
    entry = registry.entry(kind, name)  # raises with the close match and the known names
    spec = entry.spec
    model = getattr(spec, "options", None) or Options  # engines take no options
    info: dict[str, Any] = {
        "kind": kind[:-1], "name": name, "description": spec.description,
        "plugin": entry.plugin, "distribution": registry.distributions.get(entry.plugin, ""),
    }
    if kind == "backbones":
        info["engines"] = sorted(spec.builders)
        info["published_batch_size"] = spec.published_batch_size
        info["bench_default"] = spec.bench_default
        info["weights"] = [source.to_json() for source in spec.weight_sources()]
    if kind == "engines":
        info["framework"] = spec.framework
        info["installed"] = framework_installed(spec.framework)
        info["install"] = spec.install
    if getattr(spec, "source", ""):
        info["source"] = spec.source
    info["options"] = option_rows(model)
    if schema:
        info["options_schema"] = model.model_json_schema()
    return info


def framework_installed(framework: str) -> bool:
    """Whether an engine's framework can be imported here (without importing it)."""
    if not framework:
        return True
    try:
        return importlib.util.find_spec(framework) is not None
    except (ImportError, ValueError):
        return False


def framework_missing(spec: Any) -> str | None:
    """``None`` when engine ``spec``'s framework is installed, else the one line that says
    which engine lacks what and how to install it."""
    if framework_installed(spec.framework):
        return None
    how = spec.install or f"pip install {spec.framework}"
    return f"engine {spec.name!r} needs {spec.framework}, which is not installed: {how}"


def default_engine(registry: Registry, backbone: str) -> str:
    """The first engine, in the order the backbone's plugin lists its builders (the faster
    framework first: torch builds ``tiny`` in seconds where TensorFlow takes most of a
    minute to start), that builds ``backbone`` and whose framework is installed."""
    spec = registry.get("backbones", backbone)
    missing = []
    for engine in spec.builders:
        known = registry.entries["engines"].get(engine)
        if known is None:
            continue
        problem = framework_missing(known.spec)
        if problem is None:
            return engine
        missing.append(problem)
    raise HarnessError(f"backbone {backbone!r} is built by {', '.join(spec.builders)}, "
                       "but none of these engines is installed"
                       + (f" ({'; '.join(missing)})" if missing else ""))


def weight_lines(sources: list[dict[str, Any]]) -> list[str]:
    """``training.weights`` values a backbone takes, each with where it loads and the
    normalization it expects (what ``normalization: auto`` picks)."""
    lines = ["  weights (training.weights; engine; normalization for auto):"]
    for s in sources:
        engines = ", ".join(s["engines"]) or "every engine"
        lines.append(f"    {s['name']} ({engines}; {s['normalization'] or 'not declared'}): "
                     f"{s['description']}" + (f" [{s['location']}]" if s["location"] else ""))
    lines.append("    or a weights file path (every engine; normalization not declared)")
    return lines


_SIGNS = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<",
          "minItems": "items >=", "maxItems": "items <=", "minLength": "length >=",
          "maxLength": "length <="}


def _bound(key: str, value: Any) -> str:
    each = key.startswith("each ")
    key = key.removeprefix("each ")
    return ("each " if each else "") + f"{_SIGNS.get(key, key)} {value}"


def render(info: dict[str, Any]) -> list[str]:
    """``describe`` as text: a header, then one line per option."""
    lines = [f"{info['kind']} {info['name']}: {info['description']}",
             f"  plugin: {info['plugin']}"
             + (f" ({info['distribution']})" if info.get("distribution") else "")]
    if "engines" in info:
        lines.append(f"  engines: {', '.join(info['engines'])}")
    if info.get("published_batch_size"):
        lines.append(f"  published batch size: {info['published_batch_size']}")
    if info.get("bench_default"):
        lines.append("  timed by default: harness bench")
    if "weights" in info:
        lines += weight_lines(info["weights"])
    if "framework" in info:
        lines.append(f"  framework: {info['framework'] or '(none)'}"
                     + ("" if info["installed"] else
                        f" (not installed: {info.get('install') or 'pip install ' + info['framework']})"))
    if info.get("source"):
        lines.append(f"  source: {info['source']}")
    options = info.get("options") or []
    lines.append("  options:" if options else "  options: none")
    for row in options:
        default = "required" if row["required"] else f"default {row['default']!r}"
        bounds = ", ".join(_bound(k, v) for k, v in row["bounds"].items())
        lines.append(f"    {row['name']} ({row['type']}; {default}"
                     + (f"; {bounds}" if bounds else "") + ")"
                     + (f": {row['help']}" if row["help"] else ""))
    return lines
