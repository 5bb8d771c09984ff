"""The suite file as a JSON Schema, derived from the same dataclasses the validator reads.

Editors use it to complete and check suite files (README, "Suite files"). It is generated
from ``harness.config.suite`` by the rules ``harness.config.validate.convert`` applies (types,
``Literal`` choices, bounds, unknown keys refused, a lone value standing for a list of one),
so the schema and the validator cannot drift apart; the plugins' option models (pydantic)
give their own schemas, placed under the keys that hold each plugin's options.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

from harness.config.suite import Suite, TrackerRef, Training

#: A number written as YAML 1.1 reads ``1e-4`` (a string), which the validator accepts.
FLOAT_TEXT = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


def _bounded(schema: dict[str, Any], bounds: tuple | None) -> dict[str, Any]:
    if not bounds:
        return schema
    lo, hi, above, _ = bounds
    if lo is not None:
        schema["exclusiveMinimum" if above else "minimum"] = lo
    if hi is not None:
        schema["maximum"] = hi
    return schema


def type_schema(tp: Any, bounds: tuple | None = None) -> dict[str, Any]:
    """The JSON Schema of what ``convert(value, tp, ...)`` accepts."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return {}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return _bounded({"type": "integer"}, bounds)
    if tp is float:
        return {"anyOf": [_bounded({"type": "number"}, bounds),
                          {"type": "string", "pattern": FLOAT_TEXT}]}
    if tp is str:
        return {"type": "string"}
    if origin is Literal:
        return {"enum": list(typing.get_args(tp))}
    if origin in (list, tuple):
        item = type_schema(typing.get_args(tp)[0], bounds)
        return {"anyOf": [{"type": "array", "items": item}, item]}  # a lone value: a list of one
    if origin is dict:
        return {"type": ["object", "null"],
                "additionalProperties": type_schema(typing.get_args(tp)[1], bounds)}
    if origin in (Union, types.UnionType):
        return {"anyOf": [{"type": "null"} if a is type(None) else type_schema(a, bounds)
                          for a in typing.get_args(tp)]}
    if dataclasses.is_dataclass(tp):
        return dataclass_schema(tp)
    raise TypeError(f"schema: unsupported type {tp!r}")


def dataclass_schema(cls: type, required: bool = True) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    properties, needed = {}, []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        properties[f.name] = type_schema(hints[f.name], f.metadata.get("between"))
        if f.default is not dataclasses.MISSING and isinstance(
                f.default, (str, int, float, bool, type(None))):
            properties[f.name]["default"] = f.default
        if required and f.default is dataclasses.MISSING \
                and f.default_factory is dataclasses.MISSING:
            needed.append(f.name)
    schema: dict[str, Any] = {"type": ["object", "null"], "properties": properties,
                              "additionalProperties": False}
    if needed:
        schema["required"] = needed
    return schema


def _by_name(key: str, options: Mapping[str, dict[str, Any]], where: str = "options"
             ) -> list[dict[str, Any]]:
    """``if key == name then where follows that plugin's schema``, one per plugin."""
    return [{"if": {"properties": {key: {"const": name}}, "required": [key]},
             "then": {"properties": {where: schema}}} for name, schema in options.items()]


def suite_schema(options: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The suite's JSON Schema; ``options`` maps a plugin kind (``datasets``, ``backbones``,
    ``samplers``, ``splitters``, ``executors``, ``trackers``) to ``{name: options model}``
    (pydantic models: their ``model_json_schema`` is placed where the suite holds them)."""
    defs: dict[str, Any] = {}

    def plugin(model: Any) -> dict[str, Any]:
        schema = model.model_json_schema(ref_template="#/$defs/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            if defs.setdefault(name, sub) != sub:
                raise ValueError(f"two option models define {name!r} differently")
        return schema

    kinds = {kind: {name: plugin(model) for name, model in sorted(models.items())}
             for kind, models in options.items()}
    root = dataclass_schema(Suite)
    props = root["properties"]
    root["type"] = "object"
    dataset = props["datasets"]["anyOf"][0]["items"]
    dataset["allOf"] = _by_name("name", kinds.get("datasets", {}))
    props["split"]["allOf"] = _by_name("kind", kinds.get("splitters", {}))
    props["executor"]["allOf"] = _by_name("name", kinds.get("executors", {}))
    # trackers: a bare name stands for a tracker with its default options
    tracker = dataclass_schema(TrackerRef)
    tracker["allOf"] = _by_name("name", kinds.get("trackers", {}))
    one = {"anyOf": [{"type": "string"}, tracker]}
    props["trackers"] = {"anyOf": [{"type": "array", "items": one}, one]}
    samplers = kinds.get("samplers", {})
    props["samplers"] = {"type": ["object", "null"], "properties": samplers,
                         "additionalProperties": {"type": ["object", "null"]}}
    override = dataclass_schema(Training, required=False)
    props["backbones"] = {"type": ["object", "null"], "properties": {
        name: {**override, "properties": {**override["properties"], "backbone_options": schema}}
        for name, schema in kinds.get("backbones", {}).items()},
        "additionalProperties": override}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "cxr-harness suite", **root, "$defs": defs}
