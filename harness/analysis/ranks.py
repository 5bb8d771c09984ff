"""Mean ranks of the strategies with the Friedman test and Nemenyi's critical difference.

Demšar (2006, JMLR 7:1-30, section 3.2.2): rank the k strategies within each block (here
one block per fold × seed on which every strategy finished; rank 1 = best, ties share the
mean rank), average the ranks per strategy, test "all equal" with Friedman's χ²; two
strategies differ when their mean ranks are at least CD = q_α·√(k(k+1)/(6N)) apart, with
q_α the studentized range quantile for k groups and infinite df over √2 (Demšar's Table 5).
scipy gives the pieces (``rankdata``, ``friedmanchisquare``, ``studentized_range``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.analysis.compare import RunLike, value


def blocks(runs: Sequence[RunLike], strategies: Sequence[str], key: str) -> tuple[
        list[tuple[int, int]], np.ndarray]:
    """(fold, seed) blocks where every strategy has a finite ``key``, and the values
    (blocks × strategies)."""
    cells = {(r.sampler, r.fold, r.seed): value(r.metrics, key) for r in runs}
    keys = sorted({(r.fold, r.seed) for r in runs})
    kept, rows = [], []
    for fold, seed in keys:
        row = [cells.get((s, fold, seed), math.nan) for s in strategies]
        if all(math.isfinite(v) for v in row):
            kept.append((fold, seed))
            rows.append(row)
    return kept, np.asarray(rows, float).reshape(len(rows), len(strategies))


def nemenyi_cd(k: int, n_blocks: int, alpha: float) -> float:
    """Nemenyi's critical difference of mean ranks for ``k`` strategies over ``n_blocks``."""
    from scipy.stats import studentized_range

    q = float(studentized_range.ppf(1 - alpha, k, np.inf)) / math.sqrt(2)
    return q * math.sqrt(k * (k + 1) / (6.0 * n_blocks))


def mean_ranks(runs: Sequence[RunLike], strategies: Sequence[str], key: str,
               alpha: float = 0.05) -> dict[str, Any]:
    """Mean rank per strategy (1 = best; every figure here is better when higher), the
    Friedman test over the blocks, and Nemenyi's critical difference."""
    from scipy.stats import friedmanchisquare, rankdata

    kept, values = blocks(runs, strategies, key)
    k, n = len(strategies), len(kept)
    out: dict[str, Any] = {"metric": key, "strategies": list(strategies), "blocks": n,
                           "k": k, "alpha": alpha, "ranks": {}, "friedman": None,
                           "p": None, "cd": None, "rejects": False, "groups": []}
    if n == 0 or k < 2:
        return out
    ranks = rankdata(-values, axis=1)          # highest value gets rank 1
    out["ranks"] = {s: float(r) for s, r in zip(strategies, ranks.mean(axis=0))}
    if k >= 3 and n >= 2:
        stat, p = friedmanchisquare(*values.T)
        if math.isfinite(stat):
            out["friedman"], out["p"] = float(stat), float(p)
            out["rejects"] = bool(p < alpha)
    out["cd"] = nemenyi_cd(k, n, alpha)
    out["groups"] = cliques(out["ranks"], out["cd"])
    return out


def cliques(ranks: dict[str, float], cd: float) -> list[list[str]]:
    """Maximal runs of strategies (in rank order) whose mean ranks lie within ``cd`` of each
    other: Demšar's bars of strategies the Nemenyi test cannot tell apart."""
    order = sorted(ranks, key=ranks.get)
    groups: list[list[str]] = []
    for i, s in enumerate(order):
        group = [t for t in order[i:] if ranks[t] - ranks[s] < cd]
        if len(group) > 1 and not any(set(group) <= set(g) for g in groups):
            groups.append(group)
    return groups
