"""Suite files are read with this loader only: ``yaml.SafeLoader`` made strict.

``yaml.safe_load`` silently keeps the last of two equal keys, builds any depth of nesting
(the composer recurses: a ``RecursionError``) and expands aliases without limit ("billion
laughs": a few lines that stand for millions of values, a ``MemoryError`` later). Each of
these is refused here with the line it happened on. PyYAML has no option for any of them,
hence this subclass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.config.validate import SuiteError

#: Deeper than any suite needs (a suite is about 4 levels deep).
MAX_DEPTH = 64
#: Aliases in one file, and values once every alias is expanded.
MAX_ALIASES = 1000
MAX_EXPANDED = 200_000


class YamlError(SuiteError):
    """A YAML file that cannot be read as a suite; the message names the file and line."""


def _at(node_or_mark: Any) -> str:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "?"


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and caps nesting depth and alias expansion."""

    def __init__(self, stream: Any):
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise yaml.YAMLError(f"{_at(self.peek_event())}: more than {MAX_ALIASES} "
                                     "aliases (*name)")
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.YAMLError(f"{_at(self.peek_event())}: nested more than "
                                     f"{MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:  # an unhashable key: SafeLoader's own error follows
                    continue
                if first is not key_node:
                    raise yaml.YAMLError(f"{_at(key_node)}: duplicate key {key!r} (first at "
                                         f"{_at(first)})")
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: yaml.Node) -> int:
    """How many values ``node`` stands for once every alias is expanded (shared nodes once
    per use, memoised so the count itself stays cheap)."""
    sizes: dict[int, int] = {}

    def size(n: yaml.Node) -> int:
        if id(n) in sizes:
            return sizes[id(n)]
        if isinstance(n, yaml.SequenceNode):
            total = 1 + sum(size(v) for v in n.value)
        elif isinstance(n, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in n.value)
        else:
            total = 1
        sizes[id(n)] = total
        return total

    return size(node)


def parse_yaml(text: str, source: str) -> Any:
    """The value of a YAML document; ``YamlError`` naming ``source`` and the line."""
    loader = StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node) > MAX_EXPANDED:
            raise yaml.YAMLError(f"aliases expand to more than {MAX_EXPANDED} values")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise YamlError(f"{source}: not valid YAML: {where}{what}") from None
    except RecursionError:
        raise YamlError(f"{source}: not valid YAML: nested too deeply") from None
    finally:
        loader.dispose()


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file as UTF-8 text (a BOM allowed) and parse it with ``parse_yaml``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise YamlError(f"{path}: is a folder, not a file") from None
    except OSError as exc:
        raise YamlError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise YamlError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line "
                        f"{line}); save the file as UTF-8") from None
    return parse_yaml(text, str(path))
