"""What determines a run, hashed, so results planned by older code or data are recognised.

A run id already changes with the run's settings. What it cannot see is the code that
planned and trains the run (the harness, the plugins' distributions, the framework) and the
data (each dataset's version, ``config.json``'s ``data``). ``config.json`` stores one hash
per part; ``harness run`` and ``--dry-run`` compare them with what the suite would write now
and report runs "planned by an older suite"; ``--rerun stale`` plans and trains them anew.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from collections.abc import Iterable
from importlib import metadata
from typing import Any

from harness.config.suite import RunSpec, Suite
from harness.plugin.registry import Registry
from harness.rundir.folder import RunConfig
from harness.version import __version__

PARTS = ("run", "code", "data")


def digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


@functools.lru_cache(maxsize=1)
def _packages() -> dict[str, list[str]]:
    return metadata.packages_distributions()


@functools.lru_cache(maxsize=256)
def _top_distribution(top: str) -> str:
    dists = _packages().get(top, [])
    for dist in dists:
        try:
            return f"{dist}=={metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return f"{top} (not installed)"


def _distribution(obj: Any) -> str:
    """``name==version`` of the installed distribution that provides ``obj``'s module."""
    top = (getattr(obj, "__module__", None) or "").split(".")[0]
    return _top_distribution(top) if top else "?"


def _provider(spec: Any) -> str:
    """The distribution of the first callable a spec holds (its plugin's code)."""
    values = list(vars(spec).values()) if hasattr(spec, "__dict__") else []
    for value in values:
        for candidate in (value.values() if isinstance(value, dict) else [value]):
            if callable(candidate) and getattr(candidate, "__module__", None):
                return _distribution(candidate)
    return "?"


def framework_version(name: str) -> str:
    if not name:  # EngineSpec.framework is optional
        return "?"
    for dist in (name, f"{name}-cpu", f"{name}-gpu"):
        try:
            return f"{dist}=={metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return f"{name} (not installed)" if name else ""


def code_versions(suite: Suite, registry: Registry, run: RunSpec) -> dict[str, Any]:
    """The code a run depends on: harness, each plugin's distribution, the framework."""
    used: Iterable[tuple[str, str]] = [
        ("backbones", run.backbone), ("samplers", run.sampler), ("engines", run.engine),
        ("splitters", suite.split.kind), *(("datasets", d.name) for d in suite.datasets)]
    plugins = {f"{kind}:{name}": _provider(registry.get(kind, name)) for kind, name in used}
    engine = registry.get("engines", run.engine)
    return {"harness": __version__, "python": ".".join(map(str, sys.version_info[:2])),
            "plugins": plugins, "framework": framework_version(engine.framework)}


def data_versions(provenance: dict[str, Any] | None) -> dict[str, Any] | None:
    """Each dataset's version from ``config.json``'s ``data`` (``None`` when absent)."""
    if not isinstance(provenance, dict):
        return None
    return {name: (entry or {}).get("version") if isinstance(entry, dict) else entry
            for name, entry in sorted(provenance.items())}


def current_data_versions(suite: Suite, registry: Registry) -> dict[str, Any] | None:
    """Each dataset's version as it is now, as ``data_provenance`` records it.

    ``None`` when a dataset cannot say (its root is missing, say): the data part is then
    left out of the comparison rather than failing a dry run.
    """
    from harness.data.provenance import dataset_version

    out = {}
    for i, ref in enumerate(suite.datasets):
        try:
            version = dataset_version(suite, registry, i)
        except Exception:  # noqa: BLE001 - a dataset that cannot say now is compared later
            return None
        out[ref.name] = version
    return dict(sorted(out.items()))


def resolved(config_run: dict[str, Any], config_suite: dict[str, Any]) -> dict[str, Any]:
    """The run's resolved settings, without paths that may move (suite file, cache)."""
    suite = {k: v for k, v in config_suite.items() if k not in ("source", "cache")}
    return {"run": config_run, "suite": suite}


def fingerprint(config_run: dict[str, Any], config_suite: dict[str, Any],
                code: dict[str, Any], data: dict[str, Any] | None) -> dict[str, str]:
    out = {"run": digest(resolved(config_run, config_suite)), "code": digest(code)}
    if data is not None:
        out["data"] = digest(data)
    return out


def stale_parts(config: RunConfig, current: dict[str, str]) -> list[str]:
    """Which parts of a run's stored fingerprint differ from ``current``.

    A run planned before fingerprints existed is stale in every part. A part missing on
    either side (data not known now) is not compared.
    """
    stored = config.fingerprint
    if not stored:
        return ["run", "code", "data"]
    return [p for p in PARTS if p in stored and p in current and stored[p] != current[p]]
