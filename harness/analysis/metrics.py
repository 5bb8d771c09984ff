"""Figures from a predictions table alone: the paper's Tables 3 and 4, and what they lack.

Everything here reads ``predictions.csv`` (``uid,true,pred,p_<class>...``) and knows nothing
about frameworks, so it works on files made outside the harness too. Per class, one class
against the rest (the paper's equations 1-5): TP = correctly detected, FN = not detected,
FP = wrongly detected as that class. JSON output holds fractions; the report shows percent.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.config.suite import ReportConfig
from harness.errors import HarnessError
from harness.rundir.predictions import Predictions, confusion

#: Per-class figures of the paper's Table 4 (equations 1-4), in its column order.
TABLE4_FIGURES = ("sensitivity", "specificity", "accuracy", "precision")


def figures(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Every count-based figure from confusion matrices of shape (..., k, k).

    Vectorised over leading axes so one call serves a single run and a thousand bootstrap
    resamples alike. Undefined ratios (0/0) are NaN.
    """
    cm = np.asarray(cm, dtype=np.float64)
    n = cm.sum(axis=(-2, -1))
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support = cm.sum(axis=-1)      # images of the class
    predicted = cm.sum(axis=-2)    # images called the class
    fn = support - tp
    fp = predicted - tp
    tn = n[..., None] - tp - fn - fp
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of an all-NaN slice
        out = {
            "sensitivity": tp / support,
            "specificity": tn / (tn + fp),
            "accuracy_c": (tp + tn) / n[..., None],
            "precision": tp / predicted,
            "f1": 2 * tp / (2 * tp + fp + fn),
            "accuracy": tp.sum(axis=-1) / n,
        }
        # As sklearn: balanced accuracy averages recall over classes present in the truth,
        # macro F1 over classes present in the truth or the predictions.
        out["balanced_accuracy"] = np.nanmean(np.where(support > 0, out["sensitivity"], np.nan),
                                              axis=-1)
        out["macro_f1"] = np.nanmean(out["f1"], axis=-1)
        # Multiclass MCC (Gorodkin's R_K, as sklearn.metrics.matthews_corrcoef); 0 when undefined.
        cov_tp = tp.sum(axis=-1) * n - (predicted * support).sum(axis=-1)
        cov_pp = n * n - (predicted * predicted).sum(axis=-1)
        cov_tt = n * n - (support * support).sum(axis=-1)
        denom = np.sqrt(cov_pp * cov_tt)
        out["mcc"] = np.where(denom > 0, cov_tp / np.where(denom > 0, denom, 1.0), 0.0)
    return out


def bootstrap_intervals(true: np.ndarray, pred: np.ndarray, n_classes: int, n: int = ReportConfig.bootstrap,
                        seed: int = 0, level: float = 0.95, chunk: int = 200,
                        clusters: Sequence[Any] | None = None) -> dict[str, np.ndarray]:
    """Percentile bootstrap intervals of every figure in ``figures``: arrays (2, ...).

    ``clusters`` (one id per prediction, e.g. the patient) makes it a cluster bootstrap:
    whole clusters are resampled, so images of one patient, and one image predicted in
    several folds, count as one draw (``intervals.bootstrap_cluster_totals``). Without it,
    images are resampled one by one.

    Written here rather than with ``scipy.stats.bootstrap`` (sklearn has none): scipy
    resamples once per statistic and gives a NaN interval as soon as one resample leaves a
    rare class out (COVID-19 has ~31 test images), while one ``bincount`` over all
    resamples yields every per-class figure at once and ``nanpercentile`` skips such
    resamples.
    """
    codes = np.asarray(true) * n_classes + np.asarray(pred)
    kk = n_classes * n_classes
    if clusters is not None:
        from harness.analysis.intervals import bootstrap_cluster_totals

        onehot = np.zeros((len(codes), kk))
        onehot[np.arange(len(codes)), codes] = 1.0
        cms = [bootstrap_cluster_totals(onehot, clusters, n, seed, chunk).reshape(
            n, n_classes, n_classes)]
    else:
        rng = np.random.default_rng(seed)
        cms = []
        for start in range(0, n, chunk):
            b = min(chunk, n - start)
            idx = rng.integers(0, len(codes), size=(b, len(codes)))
            flat = codes[idx] + (np.arange(b) * kk)[:, None]
            cms.append(np.bincount(flat.ravel(), minlength=b * kk).reshape(b, n_classes,
                                                                          n_classes))
    boot = figures(np.concatenate(cms))
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        return {k: np.nanpercentile(v, q, axis=0) for k, v in boot.items()}


def auroc_per_class(true: np.ndarray, proba: np.ndarray | None, n_classes: int) -> np.ndarray:
    """One-vs-rest AUROC per class; NaN where a class is absent (or alone) in the truth."""
    from sklearn.metrics import roc_auc_score  # imported when used: a second to import

    out = np.full(n_classes, np.nan)
    if proba is None:
        return out
    for k in range(n_classes):
        positive = np.asarray(true) == k
        if 0 < positive.sum() < len(positive):
            out[k] = roc_auc_score(positive, proba[:, k])
    return out


def compute_metrics(table: Predictions, classes: Sequence[str] | None = None, *,
                    bootstrap: int = ReportConfig.bootstrap, seed: int = 0, level: float = 0.95,
                    clusters: Sequence[Any] | None = None,
                    resampled: str = "images") -> dict[str, Any]:
    """All figures of one predictions table as a JSON-ready dict (fractions, None for n/a).

    ``clusters`` (one id per row) makes the intervals a cluster bootstrap; ``resampled``
    names what one draw is (recorded with the intervals, shown in captions).
    """
    classes = list(classes) if classes is not None else list(table.classes)
    if classes != list(table.classes):
        raise HarnessError(f"{table.source}: read with classes {table.classes}, "
                           f"asked for {classes}")
    k = len(classes)
    cm = confusion(table.true, table.pred, k)
    fig = figures(cm)
    auroc = auroc_per_class(table.true, table.proba, k)
    ci = bootstrap_intervals(table.true, table.pred, k, n=bootstrap, seed=seed,
                             level=level, clusters=clusters) if bootstrap > 0 else None
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    tp = np.diag(cm)
    per_class = {}
    for i, name in enumerate(classes):
        entry = {
            "support": int(support[i]),
            "correct": int(tp[i]),
            "not_detected": int(support[i] - tp[i]),
            "wrong_detected": int(predicted[i] - tp[i]),
            "true_negative": int(cm.sum() - support[i] - predicted[i] + tp[i]),
            "sensitivity": _num(fig["sensitivity"][i]),
            "specificity": _num(fig["specificity"][i]),
            "accuracy": _num(fig["accuracy_c"][i]),
            "precision": _num(fig["precision"][i]),
            "f1": _num(fig["f1"][i]),
            "auroc": _num(auroc[i]),
        }
        if ci is not None:
            entry["ci"] = {name_: [_num(ci[key][0][i]), _num(ci[key][1][i])]
                           for name_, key in (("sensitivity", "sensitivity"),
                                              ("specificity", "specificity"),
                                              ("accuracy", "accuracy_c"),
                                              ("precision", "precision"), ("f1", "f1"))}
        per_class[name] = entry
    result: dict[str, Any] = {
        "classes": classes,
        "n": int(cm.sum()),
        "accuracy": _num(fig["accuracy"]),
        "balanced_accuracy": _num(fig["balanced_accuracy"]),
        "macro_f1": _num(fig["macro_f1"]),
        "mcc": _num(fig["mcc"]),
        "macro_auroc": _num(np.nanmean(auroc)) if np.isfinite(auroc).any() else None,
        "confusion": cm.tolist(),
        "per_class": per_class,
    }
    if ci is not None:
        result["ci"] = {key: [_num(ci[key][0]), _num(ci[key][1])]
                        for key in ("accuracy", "balanced_accuracy", "macro_f1", "mcc")}
        result["bootstrap"] = {"n": bootstrap, "seed": seed, "level": level,
                               "method": "percentile", "resampled": resampled}
    return result


def _num(value: Any) -> float | None:
    """A plain float for JSON; NaN (undefined) becomes None."""
    value = float(value)
    return None if math.isnan(value) else value


def format_text(metrics: dict[str, Any]) -> str:
    """Tables 3 and 4 and the other figures as plain text (``harness metrics``)."""
    classes = metrics["classes"]
    pc = metrics["per_class"]
    width = max(16, *(len(c) + 2 for c in classes))
    lines = [f"{metrics['n']} images, classes: {', '.join(classes)}", "",
             "Table 3 (counts)".ljust(16) + "".join(c.rjust(width) for c in classes)]
    for key, label in (("correct", "correct"), ("not_detected", "not detected"),
                       ("wrong_detected", "wrong detected"), ("support", "images")):
        lines.append(label.ljust(16) + "".join(str(pc[c][key]).rjust(width) for c in classes))
    lines += ["", "Table 4 (%)".ljust(16) + "".join(c.rjust(width) for c in classes)]
    for key in TABLE4_FIGURES:
        lines.append(key.ljust(16) + "".join(pct(pc[c][key]).rjust(width) for c in classes))
    lines.append("auroc".ljust(16) + "".join(fmt(pc[c]["auroc"]).rjust(width) for c in classes))
    if "ci" in next(iter(pc.values())):
        level = round(metrics["bootstrap"]["level"] * 100)
        lines += ["", f"{level}% bootstrap intervals (%, n={metrics['bootstrap']['n']})"]
        for key in TABLE4_FIGURES:
            lines.append(key.ljust(16) + "".join(
                f"{pct(pc[c]['ci'][key][0])}-{pct(pc[c]['ci'][key][1])}".rjust(width)
                for c in classes))
    lines += ["", f"overall accuracy   {pct(metrics['accuracy'])} %",
              f"balanced accuracy  {pct(metrics['balanced_accuracy'])} %",
              f"macro F1           {fmt(metrics['macro_f1'])}",
              f"MCC                {fmt(metrics['mcc'])}",
              f"macro AUROC        {fmt(metrics['macro_auroc'])}"]
    return "\n".join(lines)


def _undefined(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value: float, spec: str) -> str:
    """``value`` formatted by ``spec``, without a minus on a value that rounds to zero: a
    "−0.00" reads as a measured, if tiny, drop where there is none."""
    text = format(value, spec)
    return text.replace("-", "", 1) if float(text) == 0 and text.startswith("-") else text


def pct(value: float | None) -> str:
    """A fraction as the paper prints it: percent, two decimals; n/a when undefined."""
    return "n/a" if _undefined(value) else _number(value * 100, ".2f")


def fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if _undefined(value) else _number(value, f".{digits}f")


def signed(value: float | None, scale: float = 1.0, digits: int = 3) -> str:
    """A difference with its sign (``+1.25``, ``−0.40``; zero as ``0.00``, never ``−0.00``),
    ``value × scale`` at ``digits`` decimals; n/a when undefined."""
    if _undefined(value):
        return "n/a"
    text = format(value * scale, f"+.{digits}f")
    return text[1:] if float(text) == 0 else text
