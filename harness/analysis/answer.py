"""The answer first: per headline figure, each strategy's difference from the reference and
the strategies' mean ranks.

Nothing new is tested here. The differences, intervals and flags are the rows of the paired
comparison (``compare.compare_strategies``: corrected resampled t-test, p adjusted within
its family) against the suite's first reference; the ranks are Friedman / Nemenyi over
fold × seed blocks (``ranks``). The headline figures are the suite's ``report.headline``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.analysis.compare import RunLike
from harness.analysis.ranks import mean_ranks

#: ``report.headline`` entries that name the focus class rather than a class.
FOCUS = "focus"
#: Whole-table figures shown in percent (the others from 0 to 1, MCC from -1 to 1).
PERCENT = ("balanced_accuracy",)


def resolve(headline: Sequence[str], focus: str) -> list[str]:
    """``report.headline`` as comparison keys: ``sensitivity:focus`` names the focus class."""
    out = []
    for key in headline:
        fig, _, cls = key.partition(":")
        out.append(f"{fig}:{focus}" if cls == FOCUS else key)
    return list(dict.fromkeys(out))


def in_percent(key: str) -> bool:
    return ":" in key or key in PERCENT


def answer_section(runs: Sequence[RunLike], data: dict[str, Any], headline: Sequence[str],
                   alpha: float) -> dict[str, Any]:
    """Forest rows and mean ranks per headline figure of one comparison (``data``)."""
    labels = dict(data["metrics"])
    keys = [k for k in resolve(headline, data["focus_class"]) if k in labels]
    reference = data["references"][0] if data["references"] else None
    metrics = []
    for key in keys:
        rows = [p for p in data["paired"] if p["reference"] == reference and p["metric"] == key]
        by_strategy = {p["strategy"]: p for p in rows}
        forest = [{"strategy": s, "diff": p["mean_diff"], "ci": p["ci"],
                   "verdict": p["verdict"], "p_adjusted": p["p_adjusted"],
                   "sentence": p["sentence"]}
                  for s in data["strategies"] if (p := by_strategy.get(s)) is not None]
        metrics.append({"key": key, "label": labels[key], "percent": in_percent(key),
                        "forest": forest,
                        "better": [f["strategy"] for f in forest if f["verdict"] == "better"],
                        "worse": [f["strategy"] for f in forest if f["verdict"] == "worse"],
                        # How many strategies the corrected test could judge: with none, "no
                        # strategy differs" would claim a test that was never run.
                        "tested": sum(f["verdict"] in ("better", "worse", "flat") for f in forest),
                        "ranks": mean_ranks(runs, data["strategies"], key, alpha)})
    return {"reference": reference, "metrics": metrics,
            "untested": sum(f["verdict"] == "untested" for m in metrics for f in m["forest"])}
