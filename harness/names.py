"""The one rule for names that become folder or file names: a slug, never a path.

Suite names, plugin names (datasets, backbones, samplers, engines, …) and therefore run ids
all end up as folders under ``runs/`` and ``reports/``; a ``/`` or ``..`` in any of them
would put files where the user did not choose.
"""

from __future__ import annotations

import re

SLUG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SLUG_RULE = ("letters, digits, '.', '_' or '-', starting with a letter or digit, "
             "at most 64 characters")


def is_slug(value: object) -> bool:
    return isinstance(value, str) and SLUG_RE.fullmatch(value) is not None
