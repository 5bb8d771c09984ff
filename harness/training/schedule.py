"""When the selection split is scored: every k epochs, or exactly N times per run.

``training.select_every: k`` scores after every k-th epoch of the run (counted over all
phases) and after the last one; ``training.select_evaluations: N`` scores exactly N times,
spread evenly over the run's epochs, the last epoch always included, so strategies with
different epoch counts get the same number of chances to be picked.
"""

from __future__ import annotations

import math

from harness.errors import HarnessError


def selection_epochs(total_epochs: int, every: int = 1, evaluations: int | None = None
                     ) -> set[int]:
    """1-based run-wide epoch numbers after which the selection split is scored."""
    if total_epochs <= 0:
        return set()
    if evaluations is not None:
        if evaluations < 1:
            raise HarnessError(f"training.select_evaluations: expected an integer >= 1, "
                               f"got {evaluations}")
        if evaluations > total_epochs:
            raise HarnessError(f"training.select_evaluations: {evaluations} evaluations "
                               f"asked for, but the run has only {total_epochs} epochs")
        return {math.ceil(k * total_epochs / evaluations) for k in range(1, evaluations + 1)}
    if every < 1:
        raise HarnessError(f"training.select_every: expected an integer >= 1, got {every}")
    return set(range(every, total_epochs + 1, every)) | {total_epochs}
