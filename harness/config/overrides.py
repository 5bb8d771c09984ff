"""Command-line overrides of a suite: ``key.path=value`` (as Hydra and Lightning users type).

An override sets one key of the suite's raw mapping, before validation, so every override
is checked by the same validator as the file, and the run ids follow the resolved suite
(an override that changes a run changes its id; one that does not, such as
``report.title``, keeps it). The value is YAML (``yaml.safe_load``): ``training.lr=1e-3``
is a number, ``matrix.sampler=[none,focal]`` a list, ``training.max_steps_per_epoch=null``
null. A numeric part indexes a list: ``datasets.0.options.root=/data/ieee8023`` (or
``datasets[0].options.root=...``, as error messages write it).

Written here because the rules are few and the messages must name the override; Hydra's
grammar (``+key``, ``~key``, sweeps) is far more than a suite needs.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import Any

import yaml

from harness.config.validate import SuiteError
from harness.errors import HarnessError

_INDEX = re.compile(r"\[(\d+)\]")


def parse_override(item: str) -> tuple[list[str | int], Any]:
    """``"training.lr=1e-3"`` -> ``(["training", "lr"], 0.001)``."""
    key, sep, text = item.partition("=")
    parts = [p for p in _INDEX.sub(r".\1", key.strip()).split(".")]
    if not sep or not key.strip() or any(not p for p in parts):
        raise SuiteError(f"override {item!r}: expected key.path=value, e.g. training.lr=0.001")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SuiteError(f"override {item}: the value is not valid YAML: {what}") from None
    return [int(p) if p.isdigit() else p for p in parts], value


def key_path(parts: list[str | int]) -> str:
    """The path as the validator's messages write it: ``datasets[0].options.root``."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def apply_overrides(data: Any, overrides: Iterable[str]) -> Any:
    """A copy of the suite mapping ``data`` with every override set, in order."""
    overrides = list(overrides)
    if not overrides:
        return data
    if not isinstance(data, dict):
        return data  # the validator names what the file should be
    data = copy.deepcopy(data)
    for item in overrides:
        parts, value = parse_override(item)
        node: Any = data
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            where = key_path(parts[:depth]) or "the suite"
            if isinstance(node, list):
                if not isinstance(part, int) or not 0 <= part < len(node):
                    raise SuiteError(f"override {item}: {where} is a list of {len(node)}; "
                                     f"expected an index from 0 to {len(node) - 1}")
            elif isinstance(node, dict):
                part = str(part)
                if not last and node.get(part) is None:
                    node[part] = {}  # a new block: the validator says if it is not known
            else:
                raise SuiteError(f"override {item}: {where} is {node!r}, not a mapping "
                                 "or a list")
            if last:
                node[part] = value
            else:
                node = node[part]
    return data


def blame_override(exc: HarnessError, overrides: Iterable[str], source: str) -> HarnessError:
    """The validator's ``SOURCE: KEY: problem`` as ``override ITEM: problem`` when ``KEY``
    is what an override set (or lies inside it, or above it), so the message names what
    the user typed rather than a file that does not hold it."""
    message = str(exc)
    if not message.startswith(f"{source}: "):
        return exc
    rest = message[len(source) + 2:]
    key, _, problem = rest.partition(": ")
    for item in reversed(list(overrides)):
        try:
            path = key_path(parse_override(item)[0])
        except SuiteError:
            continue
        if key == path:
            return _like(exc, f"override {item}: {problem}")
        if _inside(key, path) or _inside(path, key):
            return _like(exc, f"override {item}: {rest}")
    return exc


def _like(exc: HarnessError, message: str) -> HarnessError:
    try:
        return type(exc)(message)
    except TypeError:  # a subclass with other arguments
        return HarnessError(message)


def _inside(path: str, parent: str) -> bool:
    return path.startswith((f"{parent}.", f"{parent}["))
