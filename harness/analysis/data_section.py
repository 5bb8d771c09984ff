"""The report's "Data" section: which copy of each dataset the runs came from.

Read from the runs' ``config.json`` (``"data"``: version, options and class counts per
dataset; ``"data_notes"``: warnings such as "differs from the paper's Table 1").
"""

from __future__ import annotations

import json
from typing import Any


def data_section(runs: list[Any]) -> dict[str, Any]:
    """``{"datasets": {...}, "notes": [...], "mixed": bool}`` for the template.

    ``mixed`` is true when the runs of one report record different data (another version,
    mapping or counts), which makes their figures incomparable.
    """
    seen: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    for r in runs:
        data = r.config.get("data")
        if data:
            seen.setdefault(json.dumps(data, sort_keys=True), data)
        notes += [n for n in r.config.get("data_notes") or [] if n not in notes]
    first = next(iter(seen.values()), {})
    datasets = {}
    for name, d in first.items():
        version = d.get("version") or {}
        ident = (f"git commit {version['git_commit']}" + (" (modified)" if version.get("git_dirty") else "")
                 if version.get("git_commit") else
                 f"content sha256 {version['content_sha256'][:16]}" if version.get("content_sha256")
                 else f"fingerprint {version['fingerprint']}" if version.get("fingerprint") else "unknown")
        datasets[name] = {"version": ident, "mapping": version.get("mapping", ""),
                          "counts": d.get("counts", {}), "images": d.get("images", 0)}
    return {"datasets": datasets, "notes": notes, "mixed": len(seen) > 1}
