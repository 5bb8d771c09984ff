"""Settings that cannot change once read: a resolved run is frozen all the way down.

``FrozenDict`` and ``FrozenList`` subclass ``dict`` and ``list`` and refuse every change.
Written here rather than using ``types.MappingProxyType`` and tuples: pydantic, ``json``,
``dataclasses.asdict`` and ``==`` treat a subclass exactly as the dict or list it was, so
``config.json``, the run ids and the plugins' option models see the same values as before.
``yaml.safe_dump`` does not: ``thaw`` first.
"""

from __future__ import annotations

from typing import Any, NoReturn


def _refuse(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
    raise TypeError(f"{type(self).__name__} cannot be changed: settings are read-only once "
                    "resolved (dataclasses.replace or a new mapping makes a changed copy)")


class FrozenDict(dict):
    """A ``dict`` that refuses every change."""

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self):  # pickle and deepcopy rebuild it whole, never item by item
        return type(self), (dict(self),)

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items(), key=repr)))


class FrozenList(list):
    """A ``list`` that refuses every change."""

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse

    def __reduce__(self):
        return type(self), (list(self),)

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self))


def freeze(value: Any) -> Any:
    """``value`` with every dict and list in it (nested too) a frozen copy; a frozen one
    (made here, so frozen all the way down) as it is."""
    if isinstance(value, (FrozenDict, FrozenList)):
        return value
    if isinstance(value, dict):
        return FrozenDict({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return FrozenList(freeze(v) for v in value)
    if type(value) is tuple:
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Plain dicts and lists again (for ``yaml.safe_dump``, which knows no subclass)."""
    if isinstance(value, dict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list) or type(value) is tuple:
        return [thaw(v) for v in value]
    return value
