"""File-system rules shared by the real-dataset plugins: where the root is, which file a
row names, and a cheap fingerprint of a dataset's content.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

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


def inside(root: Path, relative: str, where: str) -> Path:
    """``root / relative``, refusing absolute paths and ``..`` that leave the root."""
    candidate = Path(relative)
    resolved_root = root.resolve()
    target = (resolved_root / candidate).resolve()
    if candidate.is_absolute() or (target != resolved_root and resolved_root not in target.parents):
        raise HarnessError(f"{where}: path {relative!r} leaves the dataset root {root}; "
                           "fix or remove this row")
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
