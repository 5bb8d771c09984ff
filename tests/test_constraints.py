"""``constraints.txt``: the tested versions, pinned, used by CI and by README's test command,
and the versions this environment (where the tests pass) has for the project's own
dependencies."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
REPO = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)$")


def pins() -> dict[str, str]:
    out = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            match = PIN.match(line.strip())
            assert match, f"not a name==version pin: {line!r}"
            out[match[1].lower().replace("_", "-")] = match[2]
    return out


def direct_dependencies() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in ("torch", "tf", "dev", "mlflow", "tensorboard"):
        specs += project["optional-dependencies"].get(extra, [])
    names = {re.split(r"[<>=!~;\[ ]", s, maxsplit=1)[0].lower().replace("_", "-") for s in specs}
    return names - {"cxr-harness", "tensorflow"}  # tensorflow: the non-x86 marker of [tf]


def test_every_direct_dependency_is_pinned_and_the_project_is_not():
    pinned = pins()
    assert "cxr-harness" not in pinned
    assert direct_dependencies() - set(pinned) == set()


def test_ci_and_readme_install_with_the_constraints():
    ci = (REPO / ".ci" / "run").read_text()
    assert "python -m pip install -q -c constraints.txt -e '.[torch,tf,dev]'" in ci
    readme = (REPO / "README.md").read_text()
    assert "pip install -c constraints.txt -e '.[torch,tf,dev]' && python -m pytest -q" in readme


def test_this_environment_has_the_pinned_versions_of_the_direct_dependencies():
    """The tests that pass here vouch for the pins; a changed environment must refresh them
    (the steps are in the file's header)."""
    pinned = pins()
    differ = {}
    for name in sorted(direct_dependencies()):
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # an extra not installed here
        if have.split("+")[0] != pinned[name].split("+")[0]:
            differ[name] = (have, pinned[name])
    if differ:
        pytest.fail(f"installed versions differ from constraints.txt: {differ}")
