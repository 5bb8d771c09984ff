"""Meeting a training budget: the helper every sampler uses, so strategies compare fairly.

The rule is the same for every sampler:

* Without a budget (``context.budget is None``) a plan keeps its strategy's *natural*
  budget: each phase runs the suite's ``epochs_per_phase`` epochs, or ``epochs`` when the
  sampler passes its own.
* With a budget ``B`` (images seen in the whole run; under ``budget: equal`` the runner
  passes the reference sampler's budget on the same fold) the phases get explicit epochs so
  that ``Plan.budget()`` is exactly ``B``. Images are shared out between phases in
  proportion to their natural size; a phase that cannot fill its share with whole epochs is
  followed by one partial epoch: a seeded random subset of its images (or fewer weighted
  draws).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pydantic import Field, PositiveInt, model_validator

from harness.errors import HarnessError
from harness.plugin.options import Options
from harness.plugin.specs import Phase, SamplerContext


class SamplerOptions(Options):
    """Options every sampler may take: its own ``epochs`` or ``budget``.

    Subclass it for a sampler's options. When either is set, the runner leaves the suite's
    ``budget`` rule aside for this sampler: ``budget`` reaches the plan as
    ``context.budget``; ``epochs`` is passed by the sampler to :func:`meet_budget`.
    """

    epochs: PositiveInt | None = Field(
        None, description="epochs per phase (default: the suite's epochs_per_phase); "
                          "the suite's budget rule is then not applied")
    budget: PositiveInt | None = Field(
        None, description="images seen in the run; epochs are set to meet it exactly "
                          "(default: the suite's budget rule)")

    @model_validator(mode="after")
    def _budget_or_epochs(self):
        if self.budget is not None and self.epochs is not None:
            raise ValueError("options 'budget' and 'epochs' are both set; with a budget the "
                             "epochs follow from it. Remove one of them")
        return self


class BudgetError(HarnessError):
    """A budget cannot be met by the phases a sampler made."""


def share(total: int, sizes: list[int]) -> list[int]:
    """Split ``total`` into integers proportional to ``sizes`` (largest remainders)."""
    sizes_arr = np.asarray(sizes, dtype=np.float64)
    exact = total * sizes_arr / sizes_arr.sum()
    parts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - parts), kind="stable")
    parts[order[: total - int(parts.sum())]] += 1
    return [int(p) for p in parts]


def fit_budget(phases: list[Phase], budget: int, rng: np.random.Generator) -> list[Phase]:
    """Give every phase explicit epochs so that the plan sees exactly ``budget`` images.

    Every phase keeps at least one image, so no stage of a strategy disappears under a small
    budget. A partial epoch continues its phase: it never re-draws the classifier again
    (``reset_classifier`` stays with the phase's first part).
    """
    sizes = [p.images_per_epoch() for p in phases]
    if sum(sizes) == 0:
        raise BudgetError("the plan has no images to spend its budget on")
    used = sum(1 for size in sizes if size)
    if budget < used:
        raise BudgetError(f"a budget of {budget} images cannot give each of the plan's {used} "
                          "phases one image")
    parts = share(budget, sizes)
    for i, (size, images) in enumerate(zip(sizes, parts)):
        if size and not images:  # rounded away: one image from the largest share
            parts[int(np.argmax(parts))] -= 1
            parts[i] = 1
    out: list[Phase] = []
    for phase, size, images in zip(phases, sizes, parts):
        if size == 0:
            continue
        whole, rest = divmod(images, size)
        if whole:
            out.append(replace(phase, epochs=whole))
        if rest:
            first = not whole
            if phase.sample_weights is not None:
                part = replace(phase, draws=rest, epochs=1)
            else:
                subset = rng.permutation(np.asarray(phase.indices))[:rest]
                part = replace(phase, indices=[int(i) for i in subset], epochs=1)
            out.append(part if first else replace(part, reset_classifier=False))
    return out


def meet_budget(phases: list[Phase], context: SamplerContext,
                epochs: int | None = None) -> tuple[list[Phase], str]:
    """Phases that meet ``context.budget`` (or ``epochs`` each, or the natural budget).

    Returns the phases and a one-line note for ``Plan.notes``. ``epochs`` is the sampler's
    own epochs per phase; the runner passes no budget when a sampler sets it. Randomness
    (the partial epoch's subset) comes from ``context.rng``.
    """
    per_epoch = sum(p.images_per_epoch() for p in phases)
    if context.budget is not None:
        fitted = fit_budget(phases, int(context.budget), context.rng)
        note = (f"budget: {context.budget} images seen, fixed by the suite (natural: "
                f"{per_epoch} images per epoch of every phase); epochs set per phase to meet "
                "it exactly")
        return fitted, note
    if epochs is not None:
        return [replace(p, epochs=epochs) for p in phases], (
            f"budget: natural, {per_epoch * epochs} images seen ({epochs} epochs per phase)")
    suite_epochs = context.epochs_per_phase
    return phases, (f"budget: natural, {per_epoch * int(suite_epochs)} images seen "
                    f"({per_epoch} per epoch x {suite_epochs} epochs per phase)")
