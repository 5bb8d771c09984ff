"""Calibration and ranking of a combination's predicted probabilities.

A classifier whose "95 % COVID-19" means 60 % misleads a reader even at high accuracy.
Per run: expected calibration error (ECE) and Brier score; macro AUROC with a 95 %
bootstrap interval, computed once when the run ends and stored in its ``metrics.json``
(``run_calibration``). Per combination: their means over runs and a reliability diagram of
the pooled predictions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.config.suite import ReportConfig

#: Equal-width confidence bins of the ECE and the reliability diagram (Guo et al. 2017).
N_BINS = 15


def expected_calibration_error(true: np.ndarray, proba: np.ndarray, n_bins: int = N_BINS) -> float:
    """Top-label ECE: the support-weighted gap between confidence and accuracy per bin.

    Hand-written: scikit-learn has a binary reliability curve but no ECE.
    """
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == true
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        inside = which == b
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(ece)


def brier_score(true: np.ndarray, proba: np.ndarray) -> float:
    """Multi-class Brier score: mean over images of the squared error to the one-hot label."""
    onehot = np.eye(proba.shape[1])[true]
    return float(((proba - onehot) ** 2).sum(axis=1).mean())


def macro_auroc(true: np.ndarray, proba: np.ndarray) -> float | None:
    """Mean one-vs-rest AUROC over the classes present (None when no class has both
    positives and negatives).

    Each AUROC is the Mann-Whitney statistic with ties counted ½ (the value
    ``sklearn.metrics.roc_auc_score`` gives; the tests check it): ``macro_auroc_resampled``
    with every image counted once.
    """
    true = np.asarray(true)
    value = macro_auroc_resampled(true, proba, np.ones((1, len(true)), dtype=np.int32))[0]
    return None if np.isnan(value) else float(value)


def resample_counts(true: np.ndarray, n_classes: int, n_boot: int,
                    rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) how often each image is drawn when every class is resampled to its own
    size (so a rare class is never resampled away): one index matrix per class, counted."""
    # int32: what macro_auroc_resampled computes in (no copy there)
    counts = np.zeros((n_boot, len(true)), dtype=np.int32 if len(true) < 30_000 else np.int64)
    for k in range(n_classes):
        members = np.flatnonzero(true == k)
        m = len(members)
        if m:
            draws = rng.integers(0, m, size=(n_boot, m)) + (np.arange(n_boot) * m)[:, None]
            counts[:, members] = np.bincount(draws.ravel(), minlength=n_boot * m).reshape(n_boot, m)
    return counts


def _ranked(true: np.ndarray, proba: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    """Per class with both positives and negatives: (positives, negatives sorted by the
    class's score, each positive's first and past-last place among those scores). Sorted
    once per run, whatever the number of resamples."""
    ranked = []
    for k in range(proba.shape[1]):
        positive = true == k
        pos, neg = np.flatnonzero(positive), np.flatnonzero(~positive)
        if not len(pos) or not len(neg):
            continue
        neg = neg[np.argsort(proba[neg, k], kind="stable")]
        scores = proba[neg, k]
        ranked.append((pos, neg, np.searchsorted(scores, proba[pos, k], side="left"),
                       np.searchsorted(scores, proba[pos, k], side="right")))
    return ranked


#: Resamples computed together: 64 rows of a few thousand counts stay in the CPU's cache
#: through the cumulative sum and the gathers (measured 2x faster than 250 at once, on
#: 3,000 images; the values do not depend on it: every sum is of integers).
ROWS = 64


def _macro_auroc_ranked(ranked: list[tuple[np.ndarray, ...]], counts: np.ndarray
                        ) -> np.ndarray:
    """``macro_auroc_resampled`` with the ranks of ``_ranked`` (see there)."""
    # int32 halves the memory traffic; exact while 2 × positives × negatives < 2**31
    dtype = np.int32 if counts.shape[1] < 30_000 else np.int64
    counts = np.asarray(counts, dtype=dtype)
    if not ranked:
        return np.full(len(counts), np.nan)
    per_class = np.empty((len(ranked), len(counts)))
    for start in range(0, len(counts), ROWS):
        block = counts[start:start + ROWS]
        for j, (pos, neg, left, right) in enumerate(ranked):
            below = np.zeros((len(block), len(neg) + 1), dtype=dtype)
            np.cumsum(block[:, neg], axis=1, out=below[:, 1:])
            w_pos = block[:, pos]
            twice = np.einsum("ij,ij->i", w_pos, below[:, left] + below[:, right])  # 2 × U
            n_pos, n_neg = w_pos.sum(axis=1), below[:, -1]
            with np.errstate(divide="ignore", invalid="ignore"):
                per_class[j, start:start + len(block)] = np.where(
                    (n_pos > 0) & (n_neg > 0), twice / (2.0 * n_pos * n_neg), np.nan)
    present = np.isfinite(per_class)
    return np.where(present.any(axis=0),
                    np.where(present, per_class, 0.0).sum(axis=0) / np.maximum(present.sum(axis=0), 1),
                    np.nan)


def macro_auroc_resampled(true: np.ndarray, proba: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Macro AUROC of every resample that ``counts`` (n_boot, n) describes, NaN where no class
    has both positives and negatives.

    The Mann-Whitney statistic ``macro_auroc`` computes from ranks, with each image counted
    as often as it was drawn: per class, the negatives' scores are sorted once and every
    positive's place among them found once (``searchsorted``); per resample it is then a
    cumulative sum of the negatives' counts, read at those places (a tie counts ½). All
    resamples at once, instead of ranking every resample.
    """
    return _macro_auroc_ranked(_ranked(np.asarray(true), proba), counts)


def macro_auroc_interval(true: np.ndarray, proba: np.ndarray, n_boot: int = ReportConfig.bootstrap,
                         seed: int = 0, chunk: int = 250) -> tuple[float | None, float | None]:
    """95 % percentile bootstrap interval of the macro AUROC, resampling images within each
    class (so a rare class is never resampled away); ``chunk`` resamples are drawn at a
    time (it fixes the order of the draws, so the interval depends on it)."""
    if n_boot < 1:
        return None, None
    true = np.asarray(true)
    ranked = _ranked(true, proba)
    rng = np.random.default_rng(seed)
    values = np.concatenate([
        _macro_auroc_ranked(ranked, resample_counts(true, proba.shape[1],
                                                    min(chunk, n_boot - start), rng))
        for start in range(0, n_boot, chunk)])
    values = values[np.isfinite(values)]
    if not values.size:
        return None, None
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def run_calibration(true: np.ndarray, proba: np.ndarray, n_boot: int, seed: int
                    ) -> dict[str, Any]:
    """A run's ECE, Brier score and macro AUROC [95 %]: computed once when the run ends and
    stored in its ``metrics.json`` (``calibration``), so no report recomputes them."""
    low, high = macro_auroc_interval(true, proba, n_boot, seed=seed)
    return {"ece": expected_calibration_error(true, proba), "brier": brier_score(true, proba),
            "auroc": macro_auroc(true, proba), "auroc_ci": [low, high], "n_bins": N_BINS,
            "bootstrap": n_boot, "seed": seed}


def stored_calibration(run, n_boot: int) -> dict[str, Any]:
    """The run's stored figures when they were computed with ``n_boot`` resamples; else (an
    older run folder, or ``harness report --bootstrap`` with another count) computed now."""
    stored = (run.metrics or {}).get("calibration")
    if isinstance(stored, dict) and stored.get("bootstrap") == n_boot and \
            stored.get("n_bins") == N_BINS:
        return stored
    p = run.predictions
    return run_calibration(p.true, p.proba, n_boot, seed=int(run.fold or 0))


def reliability_figure(true: np.ndarray, proba: np.ndarray, title: str):
    """Accuracy against confidence per bin (the diagonal is perfect calibration)."""
    from matplotlib.figure import Figure
    from sklearn.calibration import calibration_curve

    correct = (proba.argmax(axis=1) == true).astype(int)
    confidence = proba.max(axis=1)
    fig = Figure(figsize=(4.2, 3.6))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfectly calibrated")
    if len(set(correct)) > 1:
        accuracy, mean_conf = calibration_curve(correct, confidence, n_bins=N_BINS,
                                                strategy="uniform")
        ax.plot(mean_conf, accuracy, marker="o", lw=1.5, label="this combination")
    ax.set_xlabel("confidence (highest probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def calibration_block(combo, n_boot: int = ReportConfig.bootstrap) -> dict[str, Any] | None:
    """Per run and mean: ECE, Brier, macro AUROC [95 %]; reliability diagram (data URI, SVG:
    its ~17 points are a few hundred bytes of vector, where a PNG costs its pixels and the
    largest share of the report's time)."""
    from harness.analysis.figures import image_src

    runs = [r for r in combo.runs if r.predictions is not None and r.predictions.proba is not None]
    if not runs:
        return None
    rows = []
    for r in runs:
        figures = stored_calibration(r, n_boot)
        rows.append({"run_id": r.run_id, "fold": r.fold, "seed": r.seed,
                     **{k: figures[k] for k in ("ece", "brier", "auroc", "auroc_ci")}})
    true = np.concatenate([r.predictions.true for r in runs])
    proba = np.concatenate([r.predictions.proba for r in runs])

    def mean(key):
        values = [row[key] for row in rows if row[key] is not None]
        return float(np.mean(values)) if values else None

    return {"runs": rows, "ece": mean("ece"), "brier": mean("brier"), "auroc": mean("auroc"),
            "n_bins": N_BINS, "bootstrap": n_boot,
            "figure": image_src(reliability_figure(true, proba, combo.name))}


def write_calibration_exports(out: Path, blocks: list[dict[str, Any]]) -> None:
    """``calibration.csv`` (per run) and ``sources.csv`` (per class and source), next to the
    report's other exports; figures are fractions (0-1)."""
    from harness.analysis.exports import _csv

    cal, src = [], []
    for b in blocks:
        c = b["combo"]
        key = [c.backbone, c.sampler, c.engine]
        for row in (b.get("calibration") or {}).get("runs", []):
            cal.append(key + [row["fold"], row["seed"], row["run_id"], row["ece"], row["brier"],
                              row["auroc"], *row["auroc_ci"]])
        for row in (b.get("sources") or {}).get("rows", []):
            src.append(key + [row["class"], row["source"], row["images"], row["runs"],
                              row["sensitivity"], row["sd"]])
    _csv(out / "calibration.csv", ["backbone", "sampler", "engine", "fold", "seed", "run_id",
                                   "ece", "brier", "macro_auroc", "auroc_ci_low",
                                   "auroc_ci_high"], cal)
    _csv(out / "sources.csv", ["backbone", "sampler", "engine", "class", "source",
                               "test_images", "runs", "sensitivity", "sd"], src)
