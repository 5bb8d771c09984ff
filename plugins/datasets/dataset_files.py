"""File-system rules shared by the real-dataset plugins: where the root is, which file a
row names, and a cheap fingerprint of a dataset's content.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from harness import DatasetContext, HarnessError


def resolve_root(root: str, context: DatasetContext, dataset: str, how_to_get: str) -> Path:
    """The dataset folder from option ``root``; a relative root is relative to the suite file."""
    if not root:
        raise HarnessError(f"{dataset}: option 'root' is required: the folder of your copy of "
                           f"the dataset ({how_to_get})")
    path = context.resolve(str(root))
    path = Path(os.path.normpath(path.absolute()))  # "suites/../data" reads better as "data"
    if not path.is_dir():
        raise HarnessError(f"{dataset}: option 'root' points to {path}, which is not a folder. "
                           f"Set 'root' to your copy of the dataset ({how_to_get}).")
    return path


def missing(root: str, context: DatasetContext, dataset: str, how_to_get: str,
            files: list[str] = (), folders: list[str] = ()) -> list[str]:
    """What ``DatasetSpec.check`` reports: the root, then each file and (non-empty) folder
    a dataset needs inside it; the same messages as loading it would give, found without
    reading it."""
    try:
        path = resolve_root(root, context, dataset, how_to_get)
    except HarnessError as exc:
        return [str(exc)]
    problems = [f"{dataset}: {path / name} does not exist ({how_to_get})"
                for name in files if name and not (path / name).is_file()]
    for name in folders:
        folder = path / name
        if not folder.is_dir():
            problems.append(f"{dataset}: image folder {folder} does not exist ({how_to_get})")
        elif next(os.scandir(folder), None) is None:
            problems.append(f"{dataset}: image folder {folder} is empty ({how_to_get})")
    return problems


def listing(folder: Path) -> dict[str, str]:
    """``{name with surrounding spaces removed: real name}`` of the files in a folder.

    Looking names up here tolerates trailing spaces on either side (metadata or disk).
    """
    names: dict[str, str] = {}
    if folder.is_dir():
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_file():
                    names.setdefault(entry.name.strip(), entry.name)
    return names


def inside(root: Path, relative: str, where: str, remedy: str = "fix or remove this row") -> Path:
    """``root / relative``, refusing absolute paths, ``..`` and symlinks that leave the root."""
    candidate = Path(relative)
    resolved_root = root.resolve()
    target = (resolved_root / candidate).resolve()
    if candidate.is_absolute() or (target != resolved_root and resolved_root not in target.parents):
        raise HarnessError(f"{where}: path {relative!r} leaves the dataset root {root}; "
                           f"{remedy}")
    return root / candidate


def fingerprint(files: list[Path], folders: list[Path], salt: str) -> str:
    """Hash of the metadata files' bytes plus the name, size and mtime of every image file.

    Cheap (one ``stat`` per image, no image bytes read) and changes when any file changes.
    """
    h = hashlib.sha1(salt.encode())
    for file in files:
        h.update(str(file.name).encode())
        h.update(file.read_bytes() if file.is_file() else b"<missing>")
    for folder in folders:
        h.update(b"\0folder " + str(folder.name).encode())
        if not folder.is_dir():
            continue
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                st = entry.stat()
                h.update(f"{entry.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def git_commit(root: Path) -> str | None:
    """The checked-out commit when ``root`` is the top of a git clone, else None."""
    if not (root / ".git").exists() or shutil.which("git") is None:
        return None
    out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                         text=True, check=False)
    return out.stdout.strip() if out.returncode == 0 else None


def git_dirty(root: Path) -> bool:
    out = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                         capture_output=True, text=True, check=False)
    return bool(out.stdout.strip())


def content_hash(files: list[Path], folders: list[Path]) -> str:
    """SHA-256 of the metadata files' bytes and the sorted image file names of each folder.

    Unlike ``fingerprint`` it ignores modification times, so two copies of one release hash
    alike wherever they were unpacked.
    """
    h = hashlib.sha256()
    for file in files:
        h.update(b"\0file " + file.name.encode())
        h.update(file.read_bytes() if file.is_file() else b"<missing>")
    for folder in folders:
        h.update(b"\0folder " + folder.name.encode())
        for name in sorted(listing(folder).values()):
            h.update(name.encode() + b"\n")
    return h.hexdigest()


def version(root: Path, files: list[Path], folders: list[Path]) -> dict[str, Any]:
    """``{"git_commit": sha}`` (plus ``git_dirty``) for a clone, else ``{"content_sha256"}``."""
    commit = git_commit(root)
    if commit:
        return {"git_commit": commit, "git_dirty": git_dirty(root)}
    return {"content_sha256": content_hash(files, folders)}


_COMMIT = re.compile(r"[0-9a-fA-F]{4,40}")


def git_clone(url: str, dest: Path, commit: str | None = None,
              before: str | None = None) -> str:
    """Clone ``url`` into ``dest`` and check out ``commit`` (or the last commit before the
    date ``before``); returns the commit checked out. ``--`` keeps a URL that starts with
    ``-`` from being read as a git option."""
    if shutil.which("git") is None:
        raise HarnessError(f"'git' is not installed; install git, or download {url} yourself")
    if dest.exists() and any(dest.iterdir()):
        raise HarnessError(f"{dest} exists and is not empty; choose a new folder")
    if commit is not None and not _COMMIT.fullmatch(commit):
        raise HarnessError(f"--commit {commit!r}: expected a commit id (4 to 40 hex digits) "
                           "or 'latest'")
    _git(["clone", "--quiet", "--", url, str(dest)], f"cloning {url}")
    if commit is None and before:
        commit = _git(["-C", str(dest), "rev-list", "-1", f"--before={before}", "HEAD"],
                      f"finding the last commit before {before}")
        if not commit:
            raise HarnessError(f"{url} has no commit before {before}; pass --commit latest "
                               "or a commit id")
    if commit:
        _git(["-C", str(dest), "checkout", "--quiet", "--detach", commit, "--"],
             f"checking out commit {commit}")
    return _git(["-C", str(dest), "rev-parse", "HEAD"], "reading the commit")


def _git(args: list[str], what: str) -> str:
    result = subprocess.run(["git", *args], check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise HarnessError(f"{what} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout.strip()
