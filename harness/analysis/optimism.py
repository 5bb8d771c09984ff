"""The optimism gap: the same runs chosen on test images versus on training patients.

``suites/paper-clean.yaml`` picks each run's checkpoint by accuracy on held-out training
patients; ``suites/paper-clean-testselect.yaml`` trains exactly as it (same images, phases,
settings and seeds) but picks the checkpoint on the authors' 631 test images. Both are scored
on the same test images, so the difference per metric, paired by backbone, sampler, engine,
fold and seed, is how much choosing on test images alone flatters the figures.

``suites/paper.yaml`` (the authors' protocol) also selects on test images, but trains on
more images than ``paper-clean`` (its phases keep the patients ``paper-clean`` holds out for
selection), so its gap to ``paper-clean`` mixes selection with training data. Each pair's
training is therefore compared (``training_of``), and the gap says which it measures:
``selection only`` or ``selection and training``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.rundir.folder import SuiteRuns

#: Figures compared (besides per-class sensitivity, specificity and precision).
OVERALL = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auroc")
PER_CLASS = ("sensitivity", "specificity", "precision")
#: Training settings that only choose the checkpoint; every other setting must match for a
#: pair to differ in selection alone.
SELECTION_SETTINGS = ("selection", "select_per_class", "selection_metric", "select_every",
                      "select_evaluations")


def training_of(folder: Path, run: dict[str, Any]) -> dict[str, Any]:
    """What a run trained on and with: its training images and phases (``plan.json``) and
    every setting that is not about selection."""
    from harness.rundir.folder import RunFolder

    plan = RunFolder(folder).plan()
    settings = {k: v for k, v in (run.get("training") or {}).items()
                if k not in SELECTION_SETTINGS}
    return {"images": len(set(plan.train.uids)),
            "key": json.dumps([plan.train.uids, plan.plan, settings,
                               run.get("sampler_options")], sort_keys=True, default=str),
            "settings": settings, "selection": (run.get("training") or {}).get("selection")}


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """What differs in training between two runs (empty: they trained alike)."""
    if a["key"] == b["key"]:
        return []
    out = []
    if a["images"] != b["images"]:
        out.append(f"{a['images']:,} vs {b['images']:,} training images")
    keys = sorted(k for k in a["settings"].keys() | b["settings"].keys()
                  if a["settings"].get(k) != b["settings"].get(k))
    if keys:
        out.append("settings " + ", ".join(keys))
    return out or ["other training images or phases"]


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
        found[key] = {"metrics": result.metrics, "test": sorted(result.predictions.uids),
                      "training": training_of(folder.path, result.run)}
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
    trained = {k: _differences(a[k]["training"], b[k]["training"]) for k in pairs}
    unlike = [k for k in pairs if trained[k]]
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
        "selection_only": bool(pairs) and not unlike,
        "compared": compared_text(pairs, unlike, trained),
        "unlike_pairs": [{"backbone": k[0], "sampler": k[1], "engine": k[2], "fold": k[3],
                          "seed": k[4], "differences": trained[k]} for k in unlike],
        "note": "optimistic minus clean, fractions (0-1), paired runs on the same test images",
        "metrics": {n: {"mean": float(np.mean(diffs[n])), "min": float(np.min(diffs[n])),
                        "max": float(np.max(diffs[n])), "n": len(diffs[n])}
                    for n in order if n in diffs},
    }


def compared_text(pairs: list[tuple], unlike: list[tuple],
                  trained: dict[tuple, list[str]]) -> str:
    """Which pair of protocols the gap compares, in one sentence."""
    if not unlike:
        return ("selection only: every pair trained on the same images and phases with the "
                "same settings and seed, and differs only in where its checkpoint was chosen")
    first = unlike[0]
    return (f"selection and training: {len(unlike)} of {len(pairs)} pairs also differ in "
            f"training (e.g. {first[0]} fold {first[3]} seed {first[4]}: "
            f"{'; '.join(trained[first])}), so the gap is not selection alone; compare a "
            "suite that trains as the clean one and selects on test images (e.g. "
            "suites/paper-clean-testselect.yaml against suites/paper-clean.yaml)")


def format_gap(gap: dict[str, Any]) -> str:
    from harness.analysis.metrics import signed

    lines = [(f"optimism gap: {gap['optimistic']} minus {gap['clean']} "
              f"({gap['pairs']} paired runs on the same test images)"),
             f"  compared: {gap['compared']}",
             f"  {'metric':<28}{'mean':>10}{'min':>10}{'max':>10}  (percentage points)"]
    for name, v in gap["metrics"].items():
        lines.append(f"  {name:<28}" + "".join(f"{signed(v[k], 100, 2):>10}"
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
