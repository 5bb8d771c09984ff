"""Turn plain YAML data into typed dataclasses, with errors that name file, key and expectation.

Written here rather than taken from a library because the messages are the product: each
names the file, the dotted key path and what was expected, and suggests a close key name.
It supports exactly the types the suite model uses: scalars, Literal, Optional, list, dict
and nested dataclasses.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any, Literal, Union

from harness.errors import HarnessError


class SuiteError(HarnessError):
    """A suite file is malformed: the message names the file, the key and what was expected."""


def between(lo: float | None = None, hi: float | None = None, *, above: bool = False,
            note: str = "") -> dict[str, Any]:
    """Field metadata bounding a number (or each number of a list) at load time.

    ``above`` makes ``lo`` exclusive (``lr > 0``); ``note`` says what a bound means
    (``null: no cap``). Used as ``field(default=..., metadata=between(1, 10_000))``.
    """
    return {"between": (lo, hi, above, note)}


def _check_bounds(value: Any, meta: tuple, where: str, source: str) -> None:
    lo, hi, above, note = meta
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_bounds(v, meta, f"{where}[{i}]", source)
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    low_ok = lo is None or (value > lo if above else value >= lo)
    if low_ok and (hi is None or value <= hi):
        return
    kind = "an integer" if isinstance(value, int) else "a number"

    def num(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else f"{x:g}"
    if lo is not None and hi is not None and not above:
        expected = f"{kind} from {num(lo)} to {num(hi)}"
    else:
        parts = ([f"{'>' if above else '>='} {num(lo)}"] if lo is not None else []) + \
                ([f"<= {num(hi)}"] if hi is not None else [])
        expected = f"{kind} {' and '.join(parts)}"
    shown = repr(value) if len(repr(value)) <= 30 else repr(value)[:27] + "..."
    raise SuiteError(f"{source}: {where}: expected {expected}{f' ({note})' if note else ''}, "
                     f"got {shown}")


def suggest(name: str, known: list[str]) -> str | None:
    """The closest known name: a spelling neighbour, or one the name starts."""
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return close[0]
    starts = [k for k in known if k.startswith(name) or name.startswith(k)]
    return starts[0] if len(starts) == 1 else None


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is Any:
        return "any value"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    if origin is dict:
        return "a mapping"
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) if a is not type(None) else "null"
                           for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return f"a mapping with keys {', '.join(f.name for f in dataclasses.fields(tp))}"
    return getattr(tp, "__name__", str(tp))


def convert(value: Any, tp: Any, where: str, source: str) -> Any:
    """Convert ``value`` to type ``tp``; ``where`` is the dotted key path for messages."""

    def fail(extra: str = "") -> SuiteError:
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        return SuiteError(f"{source}: {where or '(top level)'}: expected {_describe(tp)}, "
                          f"got {shown}{extra}")

    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return convert(value, arg, where, source)
            except SuiteError:
                continue
        raise fail()
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        close = difflib.get_close_matches(str(value), [str(a) for a in typing.get_args(tp)], 1)
        raise fail(f" (did you mean {close[0]!r}?)" if close else "")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise fail()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise fail()
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value) if abs(value) < 1e300 else math.inf
        elif isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is not None and math.isfinite(number):
            return number
        raise fail(" (not a finite number)" if number is not None else "")
    if tp is str:
        if isinstance(value, str):
            return value
        raise fail()
    if origin in (list, tuple):
        (item_tp,) = typing.get_args(tp)[:1]
        if not isinstance(value, list):
            if isinstance(value, (str, int, float)):  # a lone value stands for a list of one
                value = [value]
            else:
                raise fail()
        return [convert(v, item_tp, f"{where}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise fail()
        _, val_tp = typing.get_args(tp)
        return {str(k): convert(v, val_tp, f"{where}.{k}" if where else str(k), source)
                for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return to_dataclass(value, tp, where, source)
    raise TypeError(f"validate: unsupported type {tp!r}")


def to_dataclass(data: Any, cls: type, where: str, source: str) -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and missing required ones."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SuiteError(f"{source}: {where or '(top level)'}: expected {_describe(cls)}, "
                         f"got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            close = suggest(str(key), list(fields))
            hint = f" Did you mean {close!r}?" if close else ""
            path = f"{where}.{key}" if where else str(key)
            raise SuiteError(f"{source}: {path}: unknown key.{hint} "
                             f"Known keys here: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        path = f"{where}.{name}" if where else name
        if name in data:
            kwargs[name] = convert(data[name], hints[name], path, source)
            if "between" in f.metadata:
                _check_bounds(kwargs[name], f.metadata["between"], path, source)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SuiteError(f"{source}: {path}: missing; expected {_describe(hints[name])}")
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        problem = check()
        if problem:
            key, message = problem
            raise SuiteError(f"{source}: {where + '.' if where else ''}{key}: {message}")
    return obj
