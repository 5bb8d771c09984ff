"""How often does the strategy comparison flag a difference that is not there?

Simulated suites of the ``sampling`` design (5 folds × 3 seeds on the same folds), no
training: per fold a test set of patients with two images each, and per run the predictions
of a noisy classifier. Two strategies with the *same* skill are compared with
``harness.analysis.compare.compare_strategies`` as the report does, and every flag is a
false one. The design and its results: ``docs/statistics.md``.

The classifier of a run: logits N(0, 1) per image and class, plus ``skill + fold effect`` on
the true class (the fold effect, N(0, 0.3), is shared by every run of the fold). Seed-to-seed
training noise (``--noise`` σ) makes each trained network a different draw of its strategy: a
skill offset N(0, σ) and a per-class bias N(0, σ) on its logits, fixed for the run. With
σ = 0 two networks of one strategy differ only image by image (the simulation behind the
README's earlier "20 of 100 / 3 of 100"); real retraining also moves the whole network.

    python docs/simulations/comparison_error_rates.py            # the numbers in docs/statistics.md
    python docs/simulations/comparison_error_rates.py --suites 50 --noise 0 0.3
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from harness.analysis.compare import compare_strategies
from harness.analysis.metrics import Predictions, compute_metrics

CLASSES = ["normal", "pneumonia", "covid19"]
ALPHA = 0.05
NOISE_LEVELS = (0.0, 0.1, 0.2, 0.3)


@dataclass
class Run:
    sampler: str
    fold: int
    seed: int
    metrics: dict
    predictions: Predictions
    budget: int | None = None
    n_train: int = 800
    n_test: int = 200
    patients: dict = field(default_factory=dict)
    exposure: dict = field(default_factory=dict)


def simulate(rng: np.random.Generator, skills: dict[str, float], folds: int = 5,
             seeds: int = 3, patients: int = 100, noise: float = 0.0) -> list[Run]:
    """One suite: every strategy of ``skills`` trained with every seed on every fold."""
    runs = []
    for fold in range(1, folds + 1):
        true = np.repeat(rng.choice(3, size=patients, p=[0.6, 0.3, 0.1]), 2)
        uids = [f"f{fold}-{i}" for i in range(true.size)]
        owner = {u: f"p{fold}-{i // 2}" for i, u in enumerate(uids)}
        fold_effect = rng.normal(0, 0.3)
        for seed in range(seeds):
            for sampler, skill in skills.items():
                logits = rng.normal(size=(true.size, 3))
                logits[np.arange(true.size), true] += skill + fold_effect
                if noise:   # this network's own skill offset and class lean
                    logits[np.arange(true.size), true] += rng.normal(0, noise)
                    logits += rng.normal(0, noise, size=3)
                preds = Predictions(CLASSES, uids, true, logits.argmax(axis=1), None)
                runs.append(Run(sampler, fold, seed, compute_metrics(preds, bootstrap=0),
                                preds, patients=owner))
    return runs


def flagged(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["verdict"] in ("better", "worse", "networks-differ")]


def null_suite_rates(suites: int, noise: float, seed: int = 2024,
                     strategies: int = 2) -> dict[str, float]:
    """Shares of null suites (``strategies`` identical ones) with some false flag, by kind,
    and the seed spread and noise band the report would show."""
    rng = np.random.default_rng([seed, round(noise * 1000), strategies])
    skills = {"none": 1.2, "phased": 1.2} | {f"same{i}": 1.2 for i in range(strategies - 2)}
    counts = dict.fromkeys(("figure", "page", "all", "mcnemar", "mcnemar_rows",
                            "within_noise"), 0)
    rows_total = within_total = 0
    seed_sd = []
    for _ in range(suites):
        runs = simulate(rng, skills, noise=noise)
        by_figure = compare_strategies(runs, CLASSES, alpha=ALPHA, bootstrap=0)
        together = compare_strategies(runs, CLASSES, alpha=ALPHA, bootstrap=0, family="all")
        tests = [r for r in by_figure["paired"] if not r["mirror"]]
        counts["figure"] += any(r["metric"] == "balanced_accuracy" for r in flagged(tests))
        counts["page"] += bool(flagged(tests))
        counts["all"] += bool(flagged([r for r in together["paired"] if not r["mirror"]]))
        network_flags = flagged(by_figure["mcnemar"])
        counts["mcnemar"] += bool(network_flags)
        counts["mcnemar_rows"] += len(network_flags)
        rows_total += len(by_figure["mcnemar"])
        judged = [r for r in tests if r["within_seed_noise"] is not None]
        counts["within_noise"] += sum(r["within_seed_noise"] for r in judged)
        within_total += len(judged)
        seed_sd.append(by_figure["seed_spread"]["by_strategy"]["none"]["balanced_accuracy"]["sd"])
    return {"suites": suites, "noise": noise, "strategies": strategies,
            "figure": counts["figure"] / suites, "page": counts["page"] / suites,
            "all": counts["all"] / suites, "mcnemar": counts["mcnemar"] / suites,
            "mcnemar_rows": counts["mcnemar_rows"] / max(rows_total, 1),
            "within_noise": counts["within_noise"] / max(within_total, 1),
            "seed_sd_points": 100 * float(np.mean(seed_sd))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suites", type=int, default=100, help="null suites per noise level")
    parser.add_argument("--noise", type=float, nargs="+", default=list(NOISE_LEVELS),
                        help="seed-to-seed training noise σ (skill offset and class bias)")
    parser.add_argument("--twelve", type=int, default=20,
                        help="null suites of 12 identical strategies per level of "
                             "--twelve-noise (0: skip)")
    parser.add_argument("--twelve-noise", type=float, nargs="+", default=[0.0, 0.3])
    args = parser.parse_args(argv)
    gc.freeze()   # statsmodels' multipletests calls gc.collect(); frozen objects make it cheap
    start = time.perf_counter()
    print(f"null suites: 5 folds x 3 seeds on the same folds, 200 test images per fold, "
          f"alpha {ALPHA}, Holm; share of suites with some false flag")
    print(f"{'strategies':>10} {'noise':>6} {'suites':>6} {'seed sd':>8} "
          f"{'one figure':>10} {'any figure':>10} {'family all':>10} {'McNemar':>8} "
          f"{'McN rows':>8} {'in noise':>8}")
    plans = [(2, args.suites, args.noise)] + (
        [(12, args.twelve, args.twelve_noise)] if args.twelve else [])
    for strategies, suites, levels in plans:
        for noise in levels:
            r = null_suite_rates(suites, noise, strategies=strategies)
            print(f"{strategies:>10} {noise:>6.2f} {suites:>6} {r['seed_sd_points']:>7.2f}p "
                  f"{r['figure']:>10.1%} {r['page']:>10.1%} {r['all']:>10.1%} "
                  f"{r['mcnemar']:>8.1%} {r['mcnemar_rows']:>8.1%} {r['within_noise']:>8.1%}",
                  flush=True)
    print(f"({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
