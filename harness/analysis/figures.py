"""Figures of the report, as matplotlib ``Figure`` objects (no pyplot, no global state).

Per combination the confusion matrices (the paper's Figure 4, as shaded HTML tables); per comparison the forest
plot of differences from the reference and the mean-rank chart of the headline figures, the
ROC and precision-recall curves per class and the trade-off of the focus class (sensitivity
against false positives). ``image_src`` embeds any of them in the self-contained page, as
SVG or PNG, whichever is smaller.
"""

from __future__ import annotations

import base64
import io
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from markupsafe import Markup

from harness.analysis.compare import RunLike, focus_class, ordered_strategies

#: Green where the corrected test finds the strategy better, red where worse (the page's colours).
FLAG_COLOURS = {"better": "#1f7a3d", "worse": "#b3261e", "flat": "#3b4252", "untested": "#9aa3b2",
                "none": "#9aa3b2"}
_LONG_FLOAT = re.compile(r"(\d+\.\d)\d+")


def png_data_uri(fig, dpi: int = 110) -> str:
    """The figure as a PNG data URI, its colours reduced to a 256-colour palette (Pillow):
    plots use few colours, and the palette roughly thirds the bytes of the page."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    image = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    small = io.BytesIO()
    image.quantize(256, method=Image.Quantize.MEDIANCUT).save(small, format="png", optimize=True)
    data = min(buf.getvalue(), small.getvalue(), key=len)
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def svg_data_uri(fig, dpi: int = 110) -> Markup:
    """The figure as an SVG data URI, ready for an ``src="..."`` attribute: text kept as
    text (the browser's sans-serif draws it), coordinates to 0.1 pt, no date, no ids that
    nothing refers to, so the same figure gives the same, few bytes. Only what HTML or the
    URL would misread is escaped (``%``, ``#``, ``&``, ``"``)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "cxr-harness"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]                       # drop the XML header and doctype
    text = re.sub(r"<!--.*?-->|<metadata>.*?</metadata>", "", text, flags=re.DOTALL)
    text = re.sub(r"font-family: [^;\"]*;? ?", "", text)
    text = text.replace("*{stroke-linejoin", "text{font-family:sans-serif}*{stroke-linejoin")
    text = re.sub(r' transform="rotate\(-0 [^)]*\)"', "", text)
    used = set(re.findall(r"#([\w.-]+)", text))
    text = re.sub(r' id="([^"]+)"', lambda m: m.group(0) if m.group(1) in used else "", text)
    text = re.sub(r"\s*\n\s*", " ", text)
    # Coordinates only (inside tags): tick labels and other text keep every digit.
    text = re.sub(r"<[^>]+>", lambda tag: _LONG_FLOAT.sub(r"\1", tag.group(0)), text)
    text = re.sub(r"> <", "><", text)
    for _ in range(4):   # groups left holding a single element or nothing
        text = re.sub(r"<g>(<[^<>]+/>|<(\w+)[^<>]*>[^<>]*</\2>)</g>", r"\1", text)
        text = text.replace("<g></g>", "")
    text = re.sub(r"<[^>]+>", lambda tag: re.sub(   # "fill: x; ", "1 L 2": inside tags only
        r"(?<=[:;]) | (?=z')|(?<=\d) (?=[LMCz]\b)", "", tag.group(0)), text)
    # Shown as large as the PNG would be (``dpi`` pixels an inch rather than 72 points).
    text = re.sub(r'(width|height)="([\d.]+)pt"',
                  lambda m: f'{m.group(1)}="{float(m.group(2)) * dpi / 72:.0f}px"', text, count=2)
    text = text.replace("%", "%25").replace("#", "%23").replace("&", "%26")
    text = text.replace('"', "'") if "'" not in text else text.replace('"', "%22")
    return Markup("data:image/svg+xml," + text)


#: Above this many plotted points a figure goes as PNG: each point is a few bytes of SVG
#: (ROC curves over thousands of test images), while a PNG costs its pixels whatever it shows.
SVG_MAX_POINTS = 1500


def plotted_points(fig) -> int:
    """Data points drawn by the figure's lines and collections (its SVG's bulk)."""
    n = 0
    for ax in fig.axes:
        n += sum(len(line.get_xdata()) for line in ax.get_lines())
        for c in ax.collections:
            n += len(c.get_offsets()) + sum(len(p.vertices) for p in c.get_paths())
    return n


def image_src(fig) -> str:
    """The figure as a data URI for ``<img src>``: SVG (sharp at any zoom, text as text)
    unless it plots so many points that a PNG is smaller. One rendering, not both: each
    costs about a second on a busy machine, times every figure of the page."""
    if plotted_points(fig) > SVG_MAX_POINTS:
        return png_data_uri(fig)
    return svg_data_uri(fig)


def strategy_colours(strategies: Sequence[str]) -> dict[str, Any]:
    """One colour per strategy: matplotlib's 10-colour cycle, or with more strategies its
    20-colour map, the ten dark shades first, then the light ones, so no two of up to 20
    curves share a colour."""
    if len(strategies) <= 10:
        return {s: f"C{i}" for i, s in enumerate(strategies)}
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    order = list(range(0, 20, 2)) + list(range(1, 20, 2))
    return {s: cmap(order[i % 20]) for i, s in enumerate(strategies)}


def confusion_grid(combo, classes: list[str], folds: list[int]) -> list[dict[str, Any]]:
    """The paper's Figure 4 as HTML tables: one confusion matrix per drawn fold (rows true,
    columns predicted), each cell shaded by its share of the row (matplotlib's ``Blues``).

    Tables, not a matplotlib figure: the counts stay text, and 12 figures of 15 panels each
    were about a third of the 180-run study's report time (axes, layout and two draws per
    panel), for a few kilobytes of HTML here."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    blues = colormaps["Blues"]
    runs = [r for r in combo.runs if not folds or r.fold in folds] or combo.runs
    seeds = len({x.seed for x in combo.runs}) > 1
    panels = []
    for r in runs:
        cm = np.asarray(r.metrics["confusion"])
        share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        panels.append({
            "title": f"fold {r.fold}" + (f", seed {r.seed}" if seeds else ""),
            "rows": [{"label": classes[i], "cells": [
                {"n": int(cm[i, j]), "bg": to_hex(blues(float(share[i, j]))),
                 "fg": "#fff" if share[i, j] > 0.6 else "#000"} for j in range(len(classes))]}
                for i in range(len(classes))]})
    return panels


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
    colors = strategy_colours(strategies)
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


def _scaled(v: float | None, percent: bool) -> float:
    return math.nan if v is None else v * (100.0 if percent else 1.0)


def forest_figure(answer: dict[str, Any]):
    """One panel per headline figure: each strategy's mean difference from the reference
    with its corrected interval; coloured where the corrected test flags it."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    metrics = answer["metrics"]
    strategies = list(dict.fromkeys(f["strategy"] for m in metrics for f in m["forest"]))
    n = max(len(strategies), 1)
    fig = Figure(figsize=(min(4.0 * len(metrics), 12.5), 0.95 + 0.27 * n), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(metrics), sharey=True))
    ypos = {s: i for i, s in enumerate(strategies)}
    for ax, m in zip(axes, metrics):
        for f in m["forest"]:
            y = ypos[f["strategy"]]
            colour = FLAG_COLOURS.get(f["verdict"], FLAG_COLOURS["flat"])
            lo, hi = (_scaled(v, m["percent"]) for v in f["ci"])
            diff = _scaled(f["diff"], m["percent"])
            if math.isfinite(lo) and math.isfinite(hi):
                ax.plot([lo, hi], [y, y], color=colour, lw=1.6,
                        ls="--" if f["verdict"] == "untested" else "-")
            flagged = f["verdict"] in ("better", "worse")
            ax.plot([diff], [y], marker="o", ms=6.5 if flagged else 5, color=colour,
                    markerfacecolor=colour if flagged else "white", markeredgewidth=1.4)
        ax.axvline(0, color="0.35", lw=0.9)
        unit = "points" if m["percent"] else "difference"
        ax.set_title(m["label"], fontsize=10.5)
        ax.set_xlabel(f"− {answer['reference']} ({unit})", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(labelsize=8.5)
    axes[0].set_yticks(range(len(strategies)), strategies)
    axes[0].set_ylim(n - 0.5, -0.5)
    handles = [Line2D([], [], marker="o", color=FLAG_COLOURS[v], markerfacecolor=fill,
                      ls=ls, label=label) for v, fill, ls, label in (
        ("better", FLAG_COLOURS["better"], "-", "better (corrected test)"),
        ("worse", FLAG_COLOURS["worse"], "-", "worse (corrected test)"),
        ("flat", "white", "-", "not flagged"),
        ("untested", "white", "--", "too few folds/seeds to test"))]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=8.5, frameon=False)
    return fig


def rank_figure(answer: dict[str, Any]):
    """One panel per headline figure: mean rank of every strategy (1 = best), Nemenyi's
    critical difference as a band from the best rank, and Demšar's bars joining strategies
    the test cannot tell apart (drawn only where Friedman's test rejects)."""
    from matplotlib.figure import Figure

    metrics = [m for m in answer["metrics"] if m["ranks"]["ranks"]]
    k = max((len(m["ranks"]["ranks"]) for m in metrics), default=1)
    fig = Figure(figsize=(min(4.2 * max(len(metrics), 1), 12.5), 1.25 + 0.27 * k),
                 layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(len(metrics), 1)))
    for ax, m in zip(axes, metrics):
        r = m["ranks"]
        order = sorted(r["ranks"], key=r["ranks"].get)
        ranks = [r["ranks"][s] for s in order]
        cd, rejects = r["cd"], r["rejects"]
        if cd is not None:
            ax.axvspan(ranks[0], ranks[0] + cd, color="#2457a6" if rejects else "0.6",
                       alpha=0.12 if rejects else 0.10, lw=0)
        ax.scatter(ranks, range(len(order)), color="#2457a6" if rejects else "0.35", s=26,
                   zorder=3)
        for i, g in enumerate(r["groups"][:8] if rejects else []):
            rows = [order.index(s) for s in g]
            x = len(order) + 0.6 + 0.35 * i
            ax.plot([x, x], [min(rows) - 0.2, max(rows) + 0.2], color="0.2", lw=2.5,
                    solid_capstyle="butt", clip_on=False)
        ax.set_yticks(range(len(order)), order, fontsize=8.5)
        ax.set_ylim(len(order) - 0.5, -0.5)
        ax.set_xlim(0.5, len(order) + 0.5 + (0.35 * min(len(r["groups"]), 8) if rejects else 0))
        ax.tick_params(axis="x", labelsize=8.5)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlabel("mean rank (1 = best)", fontsize=9)
        p = r["p"]
        test = ("Friedman: fewer than 3 strategies" if p is None else
                f"Friedman p {'< 0.001' if p < 0.001 else f'= {p:.3f}'}")
        ax.set_title(f"{m['label']}\n{test}; CD {cd:.2f}, N = {r['blocks']}"
                     if cd is not None else m["label"], fontsize=9.5)
    return fig
