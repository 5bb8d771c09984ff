"""The optimism gap: the same runs chosen on test images versus on training patients.

``suites/paper.yaml`` picks each run's checkpoint by accuracy on test images (the authors'
protocol) and ``suites/paper-clean.yaml`` by accuracy on held-out training patients. Both
are scored on the same test images, so the difference per metric, paired by backbone,
sampler, engine, fold and seed, is how much the leak flatters the figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.rundir.folder import SuiteRuns

#: Figures compared (besides per-class sensitivity, specificity and precision).
OVERALL = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auroc")
PER_CLASS = ("sensitivity", "specificity", "precision")


def _finished(runs_dir: Path, damaged: list[str] | None = None
              ) -> dict[tuple, dict[str, Any]]:
    """``{(backbone, sampler, engine, fold, seed): {"metrics", "test"}}`` of finished runs.

    Read as the report reads them (``loading.load_run``): a damaged run is left out, and
    its one-line reason added to ``damaged``.
    """
    from harness.analysis.loading import DAMAGED, load_run

    found = {}
    for folder in SuiteRuns(runs_dir).folders():
        result = load_run(folder.path, bootstrap=0)
        if result.state == DAMAGED and damaged is not None:
            damaged.append(result.error)
        if result.state != "done" or result.metrics is None or result.predictions is None:
            continue
        try:
            key = tuple(result.run[k] for k in ("backbone", "sampler", "engine", "fold", "seed"))
        except KeyError:
            continue
        found[key] = {"metrics": result.metrics, "test": sorted(result.predictions.uids)}
    return found


def _figures(metrics: dict[str, Any]) -> dict[str, float]:
    out = {k: metrics[k] for k in OVERALL if metrics.get(k) is not None}
    for cls, values in (metrics.get("per_class") or {}).items():
        for k in PER_CLASS:
            if values.get(k) is not None:
                out[f"{cls}_{k}"] = values[k]
    return out


def optimism_gap(optimistic_runs: Path, clean_runs: Path) -> dict[str, Any]:
    """Per metric: mean, min and max over paired runs of optimistic minus clean (fractions).

    Runs pair only when both finished and were scored on the same test images; pairs whose
    test sets differ are counted and left out, and damaged runs are named and left out.
    """
    damaged: list[str] = []
    a, b = _finished(optimistic_runs, damaged), _finished(clean_runs, damaged)
    keys = sorted(set(a) & set(b), key=str)
    if not keys:
        raise HarnessError(f"no finished run of {optimistic_runs} has a finished counterpart "
                           f"(same backbone, sampler, engine, fold, seed) in {clean_runs}")
    pairs = [k for k in keys if a[k]["test"] == b[k]["test"]]
    diffs: dict[str, list[float]] = {}
    for k in pairs:
        fa, fb = _figures(a[k]["metrics"]), _figures(b[k]["metrics"])
        for name in fa.keys() & fb.keys():
            diffs.setdefault(name, []).append(float(fa[name]) - float(fb[name]))
    order = list(OVERALL) + sorted(n for n in diffs if n not in OVERALL)
    return {
        "optimistic": str(optimistic_runs), "clean": str(clean_runs),
        "pairs": len(pairs), "different_test_sets": len(keys) - len(pairs),
        "damaged": damaged,
        "note": "optimistic minus clean, fractions (0-1), paired runs on the same test images",
        "metrics": {n: {"mean": float(np.mean(diffs[n])), "min": float(np.min(diffs[n])),
                        "max": float(np.max(diffs[n])), "n": len(diffs[n])}
                    for n in order if n in diffs},
    }


def format_gap(gap: dict[str, Any]) -> str:
    lines = [(f"optimism gap: {gap['optimistic']} minus {gap['clean']} "
              f"({gap['pairs']} paired runs on the same test images)"),
             f"  {'metric':<28}{'mean':>10}{'min':>10}{'max':>10}  (percentage points)"]
    for name, v in gap["metrics"].items():
        lines.append(f"  {name:<28}" + "".join(f"{100 * v[k]:>+10.2f}"
                                                for k in ("mean", "min", "max")))
    if gap["different_test_sets"]:
        lines.append(f"  {gap['different_test_sets']} pair(s) left out: their test sets differ")
    for error in gap.get("damaged", []):
        lines.append(f"  left out, damaged: {error}")
    return "\n".join(lines)


def optimism_section(runs_dir: Path, against: str) -> dict[str, Any] | None:
    """The report's optimism gap: suite ``against`` (beside ``runs_dir``) minus this one."""
    if not against:
        return None
    if "/" in against or "\\" in against or against.startswith("."):
        return {"against": against, "error": "report.optimism_against must be a suite name"}
    other = Path(runs_dir).parent / against
    try:
        gap = optimism_gap(other, runs_dir)
    except HarnessError as exc:
        return {"against": against, "error": str(exc)}
    return {"against": against, **gap}
