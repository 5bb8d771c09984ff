"""Figures of the report, as matplotlib ``Figure`` objects (no pyplot, no global state).

Per combination the confusion matrices (the paper's Figure 4); per comparison the ROC and
precision-recall curves per class and the trade-off of the focus class (sensitivity against
false positives). ``png_data_uri`` embeds any of them in the self-contained page.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.analysis.compare import RunLike, focus_class, ordered_strategies


def png_data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def confusion_figure(combo, classes: list[str], folds: list[int]):
    """The paper's Figure 4: one confusion matrix per drawn fold (rows true, columns predicted)."""
    from matplotlib.figure import Figure

    runs = [r for r in combo.runs if not folds or r.fold in folds] or combo.runs
    cols = min(len(runs), 3)
    rows = math.ceil(len(runs) / cols)
    fig = Figure(figsize=(3.3 * cols, 3.1 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, r in zip(axes, runs):
        cm = np.asarray(r.metrics["confusion"])
        share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=10,
                        color="white" if share[i, j] > 0.6 else "black")
        ax.set_xticks(range(len(classes)), classes, fontsize=8)
        ax.set_yticks(range(len(classes)), classes, fontsize=8, rotation=90, va="center")
        ax.set(xlabel="predicted", ylabel="true", title=f"fold {r.fold}" +
               (f", seed {r.seed}" if len({x.seed for x in combo.runs}) > 1 else ""))
    for ax in axes[len(runs):]:
        ax.axis("off")
    return fig


def _pooled(runs: Sequence[RunLike], strategy: str) -> tuple[np.ndarray, np.ndarray, int]:
    parts = [r.predictions for r in runs if r.sampler == strategy
             and r.predictions is not None and r.predictions.proba is not None]
    if not parts:
        return np.zeros(0, int), np.zeros((0, 0)), 0
    return (np.concatenate([p.true for p in parts]), np.concatenate([p.proba for p in parts]),
            len(parts))


def comparison_figures(runs: Sequence[RunLike], classes: Sequence[str],
                       focus: str | None = None) -> dict[str, Any]:
    """Matplotlib figures: ROC and PR per class, and the focus class's trade-off."""
    from matplotlib.figure import Figure
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    strategies = ordered_strategies(runs)
    colors = {s: f"C{i % 10}" for i, s in enumerate(strategies)}
    pooled = {s: _pooled(runs, s) for s in strategies}
    figs: dict[str, Any] = {}
    for k, cls in enumerate(classes):
        fig = Figure(figsize=(8.5, 3.4), layout="constrained")
        roc_ax, pr_ax = fig.subplots(1, 2)
        for s in strategies:
            true, proba, _ = pooled[s]
            positive = true == k
            if proba.size == 0 or positive.all() or not positive.any():
                continue
            fpr, tpr, _ = roc_curve(positive, proba[:, k])
            roc_ax.plot(fpr, tpr, color=colors[s], label=f"{s} (AUC {auc(fpr, tpr):.3f})")
            prec, rec, _ = precision_recall_curve(positive, proba[:, k])
            pr_ax.plot(rec, prec, color=colors[s], label=s, drawstyle="steps-post")
        roc_ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--")
        roc_ax.set(title=f"ROC: {cls}", xlabel="false positive rate",
                   ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1.01))
        pr_ax.set(title=f"precision-recall: {cls}", xlabel="sensitivity (recall)",
                  ylabel="precision", xlim=(0, 1), ylim=(0, 1.01))
        for ax in (roc_ax, pr_ax):
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8, loc="lower right" if ax is roc_ax else "lower left")
        figs[f"curves_{cls}"] = fig

    covid = focus_class(classes, runs, focus)
    k = list(classes).index(covid)
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    for s in strategies:
        true, proba, n_runs = pooled[s]
        positive = true == k
        if proba.size and positive.any() and not positive.all():
            fpr, tpr, _ = roc_curve(positive, proba[:, k])
            ax.plot(fpr * (~positive).sum() / n_runs, tpr, color=colors[s], alpha=0.45, lw=1)
        pts = [(r.metrics["per_class"][covid]["wrong_detected"],
                r.metrics["per_class"][covid]["sensitivity"]) for r in runs if r.sampler == s]
        pts = [(x, y) for x, y in pts if y is not None]
        if pts:
            xs, ys = np.array(pts, float).T
            ax.scatter(xs, ys, color=colors[s], s=18, alpha=0.6)
            ax.scatter([xs.mean()], [ys.mean()], color=colors[s], s=90, marker="D",
                       edgecolor="black", label=f"{s}: {ys.mean() * 100:.1f}% at {xs.mean():.1f} FP")
    ax.set(title=f"{covid}: sensitivity vs false positives per test fold",
           xlabel=f"images wrongly called {covid} (per fold)", ylabel=f"{covid} sensitivity",
           ylim=(0, 1.02))
    # Zoom on the operating points; the threshold curves run far to the right otherwise.
    xs_all = [r.metrics["per_class"][covid]["wrong_detected"] for r in runs]
    ax.set_xlim(0, max(10, 3 * max(xs_all, default=0)))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="lower right")
    figs["tradeoff"] = fig
    return figs
