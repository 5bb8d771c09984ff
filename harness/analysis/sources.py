"""Figures per source dataset: does the model recognise the disease, or the hospital?

In the paper's data COVID-19 comes only from ieee8023 and normal only from RSNA, so a model
can score well by telling the sources apart. Per class and source the report gives the
test images and the sensitivity (share called that class), e.g. pneumonia from ieee8023
against pneumonia from RSNA, and says plainly which classes come from one source only.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def sources_of_test_images(run) -> dict[str, str]:
    """``{uid: source}`` of a run's test images, as its plan records them (empty when not)."""
    return dict(getattr(run, "sources", None) or {})


def source_block(combo, classes: list[str]) -> dict[str, Any] | None:
    """Rows ``{class, source, images, sensitivity, sd}`` (mean and sd over runs) and the
    classes whose test images all come from one source."""
    cells: dict[tuple[str, str], list[float]] = {}
    images: dict[tuple[str, str], int] = {}
    sources_of: dict[str, set[str]] = {c: set() for c in classes}
    for r in combo.runs:
        if r.predictions is None:
            continue
        where = sources_of_test_images(r)
        if not where:
            continue
        p = r.predictions
        src = np.array([where.get(u, "?") for u in p.uids])
        for k, cls in enumerate(p.classes):
            for s in np.unique(src[p.true == k]):
                mask = (p.true == k) & (src == s)
                cells.setdefault((cls, s), []).append(float((p.pred[mask] == k).mean()))
                images[(cls, s)] = images.get((cls, s), 0) + int(mask.sum())
                sources_of.setdefault(cls, set()).add(str(s))
    if not cells:
        return None
    rows = [{"class": c, "source": s, "images": images[(c, s)], "runs": len(v),
             "sensitivity": float(np.mean(v)),
             "sd": float(np.std(v, ddof=1)) if len(v) > 1 else None}
            for (c, s), v in sorted(cells.items(), key=lambda kv: (classes.index(kv[0][0])
                                                                   if kv[0][0] in classes
                                                                   else 99, kv[0][1]))]
    single = {c: next(iter(s)) for c, s in sources_of.items() if len(s) == 1}
    all_sources = sorted({s for s in (x for v in sources_of.values() for x in v)})
    return {"rows": rows, "single_source": single, "sources": all_sources}
