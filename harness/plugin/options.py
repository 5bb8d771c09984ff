"""Typed plugin options: one pydantic model per plugin, validated before anything runs.

A plugin declares its options as a subclass of :class:`Options` (pydantic v2, unknown keys
forbidden) and names it in its spec (``options=MyOptions``). Each field carries its type,
default, bounds (``Field(ge=...)``) and help (``Field(description=...)``). The core turns the
suite's plain option mapping into that model with :func:`validate_options`, so a plugin only
ever sees checked, typed values, and every mistake is one line naming the suite file and the
key path. An option that must fit the suite (name one of its classes or datasets, one
value per fold) says so in its type or a validator: ``harness.plugin.specs.OptionsContext``.

pydantic does the checking; this module only rewrites its errors into the harness's
one-line form and adds the "did you mean" hint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from typing_extensions import Self

from harness.config.frozen import freeze
from harness.config.validate import SuiteError, suggest

O = TypeVar("O", bound="Options")


class Options(BaseModel):
    """Base of every plugin's options: unknown keys are an error, never silently ignored;
    frozen, the dicts and lists inside too.

    A plugin without options uses this class itself (it accepts only an empty mapping).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    @model_validator(mode="after")
    def _frozen_inside(self) -> Self:
        """The model is frozen; so are the dicts and lists it holds (``config.frozen``)."""
        for name in type(self).model_fields:
            value = getattr(self, name)
            frozen = freeze(value)
            if frozen is not value:
                object.__setattr__(self, name, frozen)
        return self

    @classmethod
    def of(cls, value: Mapping[str, Any] | Options | None = None) -> Self:
        """``value`` as this model: an instance as is, a mapping validated, ``None`` defaults.

        For code that calls a plugin function directly (tests, notebooks, one backbone
        building another); suites go through :func:`validate_options`.
        """
        if isinstance(value, cls):
            return value
        try:
            return cls.model_validate(dict(value or {}))
        except ValidationError as exc:
            raise OptionsError(error_message(exc, cls, "options", cls.__name__)) from None


class OptionsError(SuiteError):
    """A plugin option block of a suite is wrong: names the file, key path and expectation."""


def _path(where: str, loc: tuple[Any, ...]) -> str:
    out = where
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _user_loc(loc: tuple[Any, ...], raw: Mapping[str, Any]) -> tuple[Any, ...]:
    """``loc`` without the parts pydantic adds that are no key of the user's data: the
    member of a union it tried (``'dict[str,...]'``) and ``'[key]'`` (the error is in a
    mapping's key, which the path already ends with). Walks ``raw`` to tell them apart;
    the first part (an option name, present or missing) is always kept."""
    if not loc:
        return loc
    kept: list[Any] = [loc[0]]
    data = raw.get(loc[0]) if isinstance(loc[0], str) else None
    for part in loc[1:]:
        if part == "[key]":
            break
        if isinstance(data, Mapping) and part in data:
            kept.append(str(part))  # a key, even a number: ``quotas.5``, not ``quotas[5]``
            data = data[part]
        elif (isinstance(data, (list, tuple)) and isinstance(part, int)
              and 0 <= part < len(data)):
            kept.append(part)
            data = data[part]
    return tuple(kept)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _field_help(model: type[Options], name: str) -> str:
    field = model.model_fields.get(name)
    if field is None:
        return ""
    kind = getattr(field.annotation, "__name__", None) or str(field.annotation)
    kind = kind.replace("typing.", "")
    text = f" (expected {kind}"
    if field.description:
        text += f": {field.description}"
    return text + ")"


def error_message(exc: ValidationError, model: type[Options], where: str, source: str,
                  raw: Any = None) -> str:
    """The first pydantic error as one line: ``FILE: KEY.PATH: problem``.

    An unknown key comes first: a misspelt required option (``rot:`` for ``root:``) is then
    reported as the typo it is, not as a missing ``root``. A validator's own message comes
    next: of a union's members, the one the value was meant for says what is wrong.
    """
    errors = exc.errors(include_url=False)
    err = min(errors, key=lambda e: (e.get("type") != "extra_forbidden",
                                     e.get("type") != "value_error"))
    loc = tuple(p for p in err.get("loc", ()) if p != "__root__")
    if raw is not None:
        loc = _user_loc(loc, raw)
    path = _path(where, loc)
    kind = err.get("type", "")
    known = list(model.model_fields)
    if kind == "extra_forbidden" and len(loc) == 1:
        close = suggest(str(loc[-1]), known)
        hint = f" Did you mean {close!r}?" if close else ""
        options = ", ".join(known) if known else "(none: this plugin takes no options)"
        return f"{source}: {path}: unknown option.{hint} Options here: {options}"
    if kind == "extra_forbidden":
        return f"{source}: {path}: unknown key"
    if kind == "missing":
        return f"{source}: {path}: required option missing{_field_help(model, str(loc[0]))}"
    message = err.get("msg", "invalid value")
    if "input" in err and kind not in ("value_error", "assertion_error"):
        message += f", got {_shown(err['input'])}"
    message = message.removeprefix("Value error, ")
    return f"{source}: {path}: {message}"


def validate_options(model: type[O] | None, raw: Mapping[str, Any] | Options | None,
                     where: str, source: str, context: Any = None) -> O:
    """``raw`` (a suite's option mapping) as an instance of ``model``, or an ``OptionsError``.

    ``where`` is the key path of the block in the suite (``datasets[0].options``) and
    ``source`` the suite file; both appear in the message. ``context`` is the suite the
    options are checked against (``harness.plugin.specs.OptionsContext``), handed to the
    model's validators as pydantic's validation context.
    """
    model = model or Options  # type: ignore[assignment]
    if isinstance(raw, model):
        return raw
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise OptionsError(f"{source}: {where}: expected a mapping of option names to values, "
                           f"got {_shown(raw)}")
    _comparable_keys(raw, where, source)
    try:
        return model.model_validate(dict(raw), context=context)
    except ValidationError as exc:
        raise OptionsError(error_message(exc, model, where, source, dict(raw))) from None


def _comparable_keys(value: Any, where: str, source: str) -> None:
    """Refuse a mapping whose keys mix numbers and names (``{covid19: all, 0: 5}``): run ids
    and staleness hash the suite as sorted JSON, which cannot order such keys."""
    if isinstance(value, Mapping):
        try:
            sorted(value)
        except TypeError:
            keys = ", ".join(repr(k) for k in value)
            raise OptionsError(f"{source}: {where}: keys mix numbers and names ({keys}); "
                               "write them all as names or all as numbers") from None
        for key, item in value.items():
            _comparable_keys(item, _path(where, (str(key),)), source)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _comparable_keys(item, _path(where, (i,)), source)


_JSON_TYPES = {"integer": "int", "number": "float", "string": "str", "boolean": "bool",
               "null": "None"}
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minItems",
           "maxItems", "minLength", "maxLength")


def _type_name(prop: dict[str, Any]) -> str:
    """A short Python-like type from a JSON-schema property (``int | None``, ``list[str]``)."""
    if "anyOf" in prop:
        return " | ".join(_type_name(p) for p in prop["anyOf"])
    if "enum" in prop:
        return " | ".join(repr(v) for v in prop["enum"])
    if "const" in prop:
        return repr(prop["const"])
    kind = prop.get("type")
    if kind == "array":
        return f"list[{_type_name(prop.get('items', {}))}]"
    if kind == "object":
        values = prop.get("additionalProperties")
        return f"dict[str, {_type_name(values)}]" if isinstance(values, dict) else "dict"
    return _JSON_TYPES.get(kind, "any")


def _bounds(prop: dict[str, Any]) -> dict[str, Any]:
    found = {k: prop[k] for k in _BOUNDS if k in prop}
    for branch in prop.get("anyOf", []):
        found.update(_bounds(branch))
    items = prop.get("items")
    if isinstance(items, dict):
        found.update({f"each {k}": v for k, v in _bounds(items).items()})
    return found


def option_rows(model: type[Options] | None) -> list[dict[str, Any]]:
    """One row per option (name, type, default, required, help, bounds) for ``describe``."""
    model = model or Options
    schema = model.model_json_schema()
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    rows = []
    for name, field in model.model_fields.items():
        prop = props.get(name, {})
        rows.append({
            "name": name,
            "type": _type_name(prop),
            "default": None if field.is_required()
            else field.get_default(call_default_factory=True),
            "required": name in required,
            "help": field.description or "",
            "bounds": _bounds(prop),
        })
    return rows
