"""Register a callable without importing its module: the framework loads only when it runs."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy(target: str) -> Callable[..., Any]:
    """``"package.module:name"`` as a callable that imports its module on the first call: an
    engine registers ``build=lazy(...)`` without importing its framework. The callable's
    ``__module__`` is the target's, which warm worker hosts preload."""
    module, _, name = target.partition(":")

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__module__, call.__name__, call.__qualname__ = module, name, name
    call.__doc__ = f"Calls {module}.{name} (imported on first use)."
    return call
