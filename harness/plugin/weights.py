"""``training.weights``: one reading of the setting for every backbone and engine.

``none`` (also ``random``, ``null`` or empty) builds the backbone untrained; a name its
builder knows (``imagenet``, ``keras-imagenet``) loads that source; anything else is the
path of a weights file. Builders call :func:`parse_weights` instead of comparing strings,
so a value means the same in every engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

#: Values that mean "no weights": the backbone starts from its random initialisation.
NO_WEIGHTS = ("", "none", "null", "random")
#: Named sources the built-in backbones know (a builder refuses one it does not have).
NAMED_WEIGHTS = ("imagenet", "keras-imagenet")


@dataclass(frozen=True)
class Weights:
    """What a builder is asked to load: nothing, a named source, or a file."""

    kind: Literal["none", "named", "file"]
    #: The source's name (``named``) or the file's path (``file``).
    value: str = ""


def parse_weights(value: Any, named: tuple[str, ...] = NAMED_WEIGHTS) -> Weights:
    """``training.weights`` as a :class:`Weights`."""
    text = "" if value is None else str(value).strip()
    if text.lower() in NO_WEIGHTS:
        return Weights("none")
    if text.lower() in named:
        return Weights("named", text.lower())
    return Weights("file", text)
