"""What determines a run, hashed, so results planned by older code or data are recognised.

A run id already changes with the run's settings. What it cannot see is the code that
planned and trains the run (the harness, the plugins' distributions, the framework, the
libraries the numbers depend on: numpy, scipy and scikit-learn for every run and the
engine's own, e.g. timm for torch networks) and the data (each dataset's version,
``config.json``'s ``data``). ``config.json`` stores one hash
per part; ``harness run`` and ``--dry-run`` compare them with what the suite would write now
and report runs "planned by an older suite"; ``--rerun stale`` plans and trains them anew.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from collections.abc import Iterable, Sequence
from importlib import metadata
from typing import Any

from harness.config.suite import RunSpec, Suite
from harness.plugin.options import Options
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


#: Distributions every run's numbers depend on (plans, splits, augmentation, metrics).
CORE_LIBRARIES = ("numpy", "scipy", "scikit-learn")


def installed(dist: str) -> str:
    """``dist==version``, or ``dist (not installed)``."""
    try:
        return f"{dist}=={metadata.version(dist)}"
    except metadata.PackageNotFoundError:
        return f"{dist} (not installed)"


def library_versions(names: Iterable[str]) -> dict[str, str]:
    return {name: installed(name) for name in dict.fromkeys(names)}


def code_versions(suite: Suite, registry: Registry, run: RunSpec) -> dict[str, Any]:
    """The code a run depends on: harness, each plugin's distribution, the framework and
    the libraries its numbers depend on (``CORE_LIBRARIES`` and ``EngineSpec.libraries``)."""
    used: Iterable[tuple[str, str]] = [
        ("backbones", run.backbone), ("samplers", run.sampler), ("engines", run.engine),
        ("splitters", suite.split.kind), *(("datasets", d.name) for d in suite.datasets)]
    plugins = {f"{kind}:{name}": _provider(registry.get(kind, name)) for kind, name in used}
    engine = registry.get("engines", run.engine)
    return {"harness": __version__, "python": ".".join(map(str, sys.version_info[:2])),
            "plugins": plugins, "framework": framework_version(engine.framework),
            "libraries": library_versions((*CORE_LIBRARIES, *engine.libraries))}


def data_versions(provenance: dict[str, Any] | None) -> dict[str, Any] | None:
    """Each dataset's version from ``config.json``'s ``data`` (``None`` when absent)."""
    if not isinstance(provenance, dict):
        return None
    return {name: (entry or {}).get("version") if isinstance(entry, dict) else entry
            for name, entry in sorted(provenance.items())}


def current_data_versions(suite: Suite, registry: Registry,
                          options: Sequence[Options]) -> dict[str, Any] | None:
    """Each dataset's version as it is now, as ``data_provenance`` records it (``options``:
    the datasets' validated options).

    ``None`` when a dataset cannot say (its root is missing, say): the data part is then
    left out of the comparison rather than failing a dry run.
    """
    from harness.data.provenance import dataset_version

    out = {}
    for i, ref in enumerate(suite.datasets):
        try:
            version = dataset_version(suite, registry, i, options[i])
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


def _pin(entry: Any) -> tuple[str, str] | None:
    """``("timm", "1.0.9")`` from ``"timm==1.0.9"``; ``None`` for what names no version."""
    name, sep, version = str(entry).partition("==")
    return (name, version) if sep else None


def version_changes(stored: dict[str, Any]) -> list[str]:
    """Each recorded version that differs from what is installed now (``timm 0.9.16 ->
    1.0.9``): the harness, the framework, each library, each plugin's distribution. Read
    from the run's ``versions`` alone, so no suite or registry is needed to explain it."""
    entries = [stored.get("framework"), *(stored.get("plugins") or {}).values(),
               *(stored.get("libraries") or {}).values()]
    changes = {}
    if stored.get("harness") and stored["harness"] != __version__:
        changes["harness"] = f"harness {stored['harness']} -> {__version__}"
    for entry in entries:
        pin = _pin(entry)
        if pin is None or pin[0] in changes or (pin[0] == "cxr-harness" and "harness" in changes):
            continue
        now = _pin(installed(pin[0]))
        now_version = now[1] if now else "not installed"
        if now_version != pin[1]:
            changes[pin[0]] = f"{pin[0]} {pin[1]} -> {now_version}"
    return list(changes.values())


def why_stale(config: RunConfig, parts: list[str]) -> str:
    """One line saying why a run is stale: the changed parts and, for code, which versions.

    ``code changed: timm 0.9.16 -> 1.0.9``; a run recorded before libraries were part of
    the fingerprint says ``code changed: its libraries not recorded``.
    """
    if not parts:
        return ""
    names = {"run": "settings", "code": "code", "data": "data"}
    said = []
    for part in parts:
        detail = []
        if part == "code":
            versions = config.versions or {}
            detail = version_changes(versions)
            if not detail and isinstance(versions, dict) and "libraries" not in versions:
                detail = ["its libraries not recorded"]
        said.append(f"{names.get(part, part)} changed" + (f": {', '.join(detail)}"
                                                          if detail else ""))
    return "; ".join(said)
