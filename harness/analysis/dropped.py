"""Images left out of a suite because they could not be read, as the report shows them.

Each run's ``config.json`` lists them under ``dropped_images`` (uid, dataset, file, reason);
the report shows the union over runs, so a test set that shrank is never shrunk unseen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any


def dropped_images(configs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """``{"images": [...], "by_reason": {reason: count}}`` over every run's config."""
    images: dict[str, dict[str, str]] = {}
    for config in configs:
        for row in config.get("dropped_images") or []:
            if isinstance(row, dict) and "uid" in row:
                images.setdefault(str(row["uid"]), row)
    rows = sorted(images.values(), key=lambda r: (str(r.get("dataset")), str(r.get("file"))))
    reasons = Counter(_short(str(r.get("reason", ""))) for r in rows)
    return {"images": rows, "by_reason": dict(reasons.most_common())}


def _short(reason: str) -> str:
    """The kind of failure (exception name and first clause), so reasons group by cause."""
    return ": ".join(part.strip() for part in reason.split(":", 2)[:2])
