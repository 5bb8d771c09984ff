"""The per-combination tables: the paper's Tables 3 and 4 per fold, and pooled figures."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.analysis.loading import Combination, RunResult
from harness.analysis.metrics import TABLE4_FIGURES, Predictions, compute_metrics

OTHER_FIGURES = (("balanced_accuracy", "Balanced accuracy", "pct"),
                 ("macro_f1", "Macro F1", "fmt"), ("mcc", "MCC", "fmt"),
                 ("macro_auroc", "Macro AUROC", "fmt"))


def _mean(values: list[float | None]) -> float | None:
    a = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(a)) if a else None


def _row_label(run: RunResult, several_seeds: bool) -> str:
    return f"{run.fold} (seed {run.seed})" if several_seeds else str(run.fold)


def combination_tables(combo: Combination, classes: list[str]) -> dict[str, Any]:
    """Table 3 rows (counts) and Table 4 rows (fractions) per fold plus the summary rows."""
    several = len({r.seed for r in combo.runs}) > 1
    t3, t4, other = [], [], []
    for r in combo.runs:
        m, pc = r.metrics, r.metrics["per_class"]
        label = _row_label(r, several)
        t3.append({"label": label, "run_id": r.run_id,
                   "cells": [pc[c][k] for c in classes
                             for k in ("correct", "not_detected", "wrong_detected")]})
        t4.append({"label": label, "run_id": r.run_id, "accuracy": m["accuracy"],
                   "cells": [pc[c][f] for f in TABLE4_FIGURES for c in classes]})
        other.append({"label": label, "run_id": r.run_id,
                      "cells": [m.get(k) for k, _, _ in OTHER_FIGURES]})
    t3_total = [int(sum(row["cells"][i] for row in t3)) for i in range(len(t3[0]["cells"]))]
    t4_avg = {"accuracy": _mean([row["accuracy"] for row in t4]),
              "cells": [_mean([row["cells"][i] for row in t4]) for i in range(len(t4[0]["cells"]))]}
    other_avg = [_mean([row["cells"][i] for row in other]) for i in range(len(OTHER_FIGURES))]
    return {"table3": t3, "table3_total": t3_total, "table4": t4, "table4_average": t4_avg,
            "other": other, "other_average": other_avg}


def clusters_of(runs: list[RunResult]) -> tuple[list[str], str]:
    """One bootstrap cluster per prediction of ``runs`` and a caption of what one draw is.

    The patient where the run folder records it, else the image: either way an image
    predicted in several folds (or seeds) is one cluster, drawn once with all its predictions.
    """
    clusters, known = [], 0
    for r in runs:
        for u in r.predictions.uids:
            p = r.patients.get(u)
            known += p is not None
            clusters.append(f"patient:{p}" if p is not None else f"image:{u}")
    if known == len(clusters):
        what = "patients (all their test images, in every fold and seed, drawn together)"
    elif known:
        what = "patients where recorded, else distinct images (all their predictions together)"
    else:
        what = "distinct test images (an image's predictions in every fold and seed together)"
    return clusters, what


def pooled_metrics(combo: Combination, classes: list[str], bootstrap: int) -> dict[str, Any]:
    """Figures with patient-cluster bootstrap intervals on the predictions of all folds."""
    preds = [r.predictions for r in combo.runs]
    clusters, what = clusters_of(combo.runs)
    table = Predictions(classes=list(classes), uids=[u for p in preds for u in p.uids],
                        true=np.concatenate([p.true for p in preds]),
                        pred=np.concatenate([p.pred for p in preds]),
                        proba=None if any(p.proba is None for p in preds)
                        else np.concatenate([p.proba for p in preds]))
    return compute_metrics(table, bootstrap=bootstrap, clusters=clusters, resampled=what)
