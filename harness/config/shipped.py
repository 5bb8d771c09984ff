"""Suites shipped with the harness, found by name: ``harness run demo``.

The repository's ``suites/`` folder is installed as the package ``harness_suites``
(``package-dir`` in pyproject.toml), so one copy serves both ``harness run suites/demo.yaml``
in a checkout and ``harness run demo`` anywhere after ``pip install``; no symlink, which an
sdist or a Windows checkout would not keep.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

PACKAGE = "harness_suites"


def shipped_suites() -> dict[str, Path]:
    """Name -> file of every shipped suite (empty when the package is not installed)."""
    try:
        folder = resources.files(PACKAGE)
    except ModuleNotFoundError:
        return {}
    found = {Path(f.name).stem: Path(str(f)) for f in folder.iterdir()
             if f.name.endswith(".yaml")}
    return dict(sorted(found.items()))


def find_suite(name_or_path: str | Path) -> Path:
    """A suite file: the path as given when it exists, else the shipped suite of that name
    (``demo`` or ``demo.yaml``); otherwise the path as given, for the caller's message."""
    path = Path(name_or_path)
    if path.is_file() or path.parent != Path("."):
        return path
    return shipped_suites().get(path.stem if path.suffix == ".yaml" else path.name, path)
