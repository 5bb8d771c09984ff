"""The plugin registry: loads plugins through pluggy and indexes what they register.

Built-in plugins come through the same ``harness`` entry-point group as third-party ones,
so nothing here knows which plugins exist.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from harness.config.validate import suggest
from harness.errors import HarnessError
from harness.names import SLUG_RULE, is_slug
from harness.plugin import hookspecs
from harness.plugin.specs import (
    BackboneSpec,
    DatasetSpec,
    EngineSpec,
    ExecutorSpec,
    Family,
    SamplerSpec,
    SplitterSpec,
    TrackerSpec,
)

ENTRY_POINT_GROUP = "harness"

#: kind -> (hook name, spec class); the order is the order of ``harness list``.
KINDS: dict[str, tuple[str, type]] = {
    "datasets": ("register_datasets", DatasetSpec),
    "backbones": ("register_backbones", BackboneSpec),
    "samplers": ("register_samplers", SamplerSpec),
    "splitters": ("register_splitters", SplitterSpec),
    "engines": ("register_engines", EngineSpec),
    "executors": ("register_executors", ExecutorSpec),
    "trackers": ("register_trackers", TrackerSpec),
}


class UnknownNameError(HarnessError):
    """A suite or command named a plugin thing that nobody registered."""


class PluginError(HarnessError):
    """A plugin failed to load or to register, or two plugins clash."""


@dataclass
class Entry:
    spec: Any
    plugin: str


@dataclass
class Registry:
    """Everything registered, by kind and name, with the plugin that registered it."""

    entries: dict[str, dict[str, Entry]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )
    #: plugin name -> "distribution version" (empty where unknown)
    distributions: dict[str, str] = field(default_factory=dict)
    #: kind -> prefix -> the family that resolves names with that prefix (``Family``)
    families: dict[str, dict[str, Entry]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )

    def get(self, kind: str, name: str) -> Any:
        return self.entry(kind, name).spec

    def entry(self, kind: str, name: str) -> Entry:
        """The registered thing (and its plugin); a family member is resolved on first use."""
        known = self.entries[kind]
        if name not in known:
            family = self.family_of(kind, name)
            if family is None:
                raise UnknownNameError(unknown_message(kind, name, known, self.families[kind]))
            known[name] = self._resolve(kind, name, family)
        return known[name]

    def family_of(self, kind: str, name: str) -> Entry | None:
        """The family whose prefix ``name`` starts with (the longest prefix wins)."""
        found = [p for p in self.families[kind] if name.startswith(p)]
        return self.families[kind][max(found, key=len)] if found else None

    def _resolve(self, kind: str, name: str, family: Entry) -> Entry:
        prefix = family.spec.prefix
        try:
            spec = family.spec.resolve(name[len(prefix):])
        except LookupError as exc:
            message = exc.args[0] if exc.args else f"no such member of {prefix}"
            raise UnknownNameError(f"unknown {kind[:-1]} {name!r}: {message}") from None
        except Exception as exc:  # a broken plugin must say who it is
            raise PluginError(f"plugin {family.plugin!r}: family {prefix!r} failed to resolve "
                              f"{name!r}: {type(exc).__name__}: {exc}") from exc
        expected = KINDS[kind][1]
        if not isinstance(spec, expected) or spec.name != name:
            raise PluginError(f"plugin {family.plugin!r}: family {prefix!r} resolved {name!r} "
                              f"to {spec!r}; expected a {expected.__name__} named {name!r}")
        return Entry(spec, family.plugin)

    def plugins_used(self) -> set[str]:
        return {e.plugin for entries in [*self.entries.values(), *self.families.values()]
                for e in entries.values()}

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def add(self, kind: str, spec: Any, plugin: str) -> None:
        if isinstance(spec, Family):
            existing = self.families[kind].get(spec.prefix)
            if existing is not None:
                raise PluginError(
                    f"{kind[:-1]} family {spec.prefix!r} is registered twice: by plugin "
                    f"{existing.plugin!r} and by plugin {plugin!r}")
            self.families[kind][spec.prefix] = Entry(spec, plugin)
            return
        expected = KINDS[kind][1]
        if not isinstance(spec, expected):
            raise PluginError(
                f"plugin {plugin!r} registered {spec!r} with {KINDS[kind][0]}; "
                f"expected a {expected.__name__}"
            )
        if not is_slug(spec.name):  # names become run ids, hence folder names
            raise PluginError(
                f"plugin {plugin!r} registered a {kind[:-1]} named {spec.name!r}; a name "
                f"becomes part of folder names: expected {SLUG_RULE}"
            )
        existing = self.entries[kind].get(spec.name)
        if existing is not None:
            raise PluginError(
                f"{kind[:-1]} {spec.name!r} is registered twice: by plugin "
                f"{existing.plugin!r} and by plugin {plugin!r}; uninstall or rename one of them"
            )
        self.entries[kind][spec.name] = Entry(spec, plugin)


def unknown_message(kind: str, name: str, known: Iterable[str],
                    families: Iterable[str] = ()) -> str:
    known = sorted(known)
    close = suggest(name, known)
    hint = f" Did you mean {close!r}?" if close else ""
    more = "".join(f", {prefix}<name>" for prefix in sorted(families))
    return (f"unknown {kind[:-1]} {name!r}.{hint} Known {kind}: "
            f"{', '.join(known) or '(none)'}{more}")


def plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


@functools.lru_cache(maxsize=1)
def _packages_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distribution_of(module: Any) -> str:
    """``"name version"`` of the installed distribution that provides ``module``, or ``""``."""
    top = str(getattr(module, "__name__", "")).split(".")[0]
    try:
        names = _packages_distributions().get(top) or []
        return f"{names[0]} {importlib.metadata.version(names[0])}" if names else ""
    except Exception:  # noqa: BLE001 - broken metadata must not stop the registry
        return ""


#: ``"name version"`` by metadata folder: each lookup parses a METADATA file, and every run's
#: worker builds a registry (a warm host's children inherit the host's lookups). A folder's
#: name holds the version, so an upgrade is a new key.
_DIST_LABELS: dict[str, str] = {}


def _dist_label(dist: Any) -> str:
    key = str(getattr(dist, "_path", "") or "")
    label = _DIST_LABELS.get(key) if key else None
    if label is None:
        meta = dist.metadata  # one parse for both fields (``dist.name``, ``dist.version``)
        label = f"{meta['Name']} {meta['Version']}"
        if key:
            _DIST_LABELS[key] = label
    return label


def load_entry_points(pm: pluggy.PluginManager, found: dict[str, str] | None = None) -> None:
    """Register every module of the ``harness`` entry-point group (built-ins included)."""
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            module = ep.load()
        except Exception as exc:  # a broken third-party plugin must say who it is
            dist = getattr(getattr(ep, "dist", None), "name", "?")
            raise PluginError(
                f"plugin {ep.name!r} (entry point {ep.value!r} of distribution {dist!r}) "
                f"failed to import: {type(exc).__name__}: {exc}"
            ) from exc
        pm.register(module, name=ep.name)
        if found is not None:
            dist = getattr(ep, "dist", None)
            found[ep.name] = _dist_label(dist) if dist is not None else ""


def load_modules(pm: pluggy.PluginManager, modules: Iterable[str]) -> None:
    """Register plugin modules named by import path (a suite's ``plugins:`` list)."""
    for dotted in modules:
        if pm.get_plugin(dotted) is not None:
            continue
        try:
            module = importlib.import_module(dotted)
        except Exception as exc:
            raise PluginError(
                f"plugin module {dotted!r} could not be imported: {type(exc).__name__}: {exc}. "
                "Check the name in the suite's 'plugins:' list and that it is installed."
            ) from exc
        pm.register(module, name=dotted)


def collect(pm: pluggy.PluginManager) -> Registry:
    """Call every ``register_*`` hook on every plugin and index the results."""
    pm.check_pending()  # a misspelled hook name fails loudly
    registry = Registry()
    for kind, (hook_name, _) in KINDS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            plugin = pm.get_name(impl.plugin) or repr(impl.plugin)
            try:
                impl.function(register=lambda spec, k=kind, p=plugin: registry.add(k, spec, p))
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(
                    f"plugin {plugin!r} raised in {hook_name}: {type(exc).__name__}: {exc}"
                ) from exc
    return registry


def build_registry(
    modules: Iterable[str] = (), extra_plugins: Iterable[Any] = (), entry_points: bool = True
) -> Registry:
    """The one way to get a registry: entry points, then suite modules, then objects."""
    pm = plugin_manager()
    found: dict[str, str] = {}
    if entry_points:
        load_entry_points(pm, found)
    load_modules(pm, modules)
    for plugin in extra_plugins:
        pm.register(plugin, name=plugin_name(plugin))
    registry = collect(pm)
    for name, plugin in pm.list_name_plugin():
        if name in found:
            registry.distributions[name] = found[name]
        elif name in registry.plugins_used():
            registry.distributions[name] = distribution_of(plugin)
    return registry


def plugin_name(plugin: Any) -> str:
    """A readable name for a plugin object: its module name, or its class name."""
    name = getattr(plugin, "__name__", None) or type(plugin).__name__
    return name if isinstance(name, str) else repr(plugin)
