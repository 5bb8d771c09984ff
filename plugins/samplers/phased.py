"""Phased balanced sampling, the paper's method and the harness's default sampler.

Training runs as N consecutive phases (model and optimizer state carry over). Every phase is
near class balance: each class contributes ``quota`` images. A class whose quota covers all
its images (by default the smallest class) is entirely in every phase; a larger class gives
every phase a fresh chunk, disjoint from the chunks before it, so that across phases the
model sees many different images of the common classes while always seeing all of the rare
one. ``common: {class: k}`` keeps k images of a class in every phase (the paper's 34 ieee8023
pneumonia images); the rest of that class's quota is fresh per phase.

When a class runs out of fresh images (more phases × chunk than it has), it wraps around: a
new seeded permutation of its images follows, with the images of the unfinished chunk moved
to its end, so no image is repeated within a phase and none is reused before every image
of its class has been used. ``Plan.notes`` says which classes wrapped.

The default number of phases is the smallest that shows every training image at least once
(with the paper's quotas and training set: 8). Deterministic from ``rng``. When the split
fixes the phases (``context.split_phases``, e.g. the authors' published phase files),
they are used as they are and ``Plan.notes`` says which options that overrides.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field, NonNegativeInt, PositiveInt, ValidationInfo, field_validator

from harness import (
    ClassKey,
    Phase,
    Plan,
    SamplerContext,
    SamplerOptions,
    SamplerSpec,
    hookimpl,
    meet_budget,
    suite_of,
)

from .common import SamplerOptionError, class_counts, class_names, per_class

NAME = "phased"


def fresh_chunks(pool: np.ndarray, size: int, n_phases: int,
                 rng: np.random.Generator) -> list[np.ndarray]:
    """``n_phases`` chunks of ``size`` images from ``pool``, each image used before any reuse."""
    order = list(pool)
    pos = 0
    chunks = []
    for _ in range(n_phases):
        take = order[pos:pos + size]
        pos += len(take)
        if len(take) < size:  # the class is exhausted: wrap around with a fresh permutation
            used = set(take)
            nxt = [int(i) for i in rng.permutation(pool)]
            order = [i for i in nxt if i not in used] + [i for i in nxt if i in used]
            pos = size - len(take)
            take = take + order[:pos]
        chunks.append(np.asarray(take, dtype=np.int64))
    return chunks


class PhasedOptions(SamplerOptions):
    phases: PositiveInt | None = Field(
        None, description="number of phases (default: the fewest that show every image once)")
    quotas: dict[ClassKey, NonNegativeInt | Literal["all"]] | None = Field(
        None, description="images per phase by class, e.g. {normal: 250, pneumonia: 234, "
        "covid19: all}; default: the smallest class's count")
    common: dict[ClassKey, NonNegativeInt] = Field(
        default_factory=dict, description="images of a class kept in every phase, e.g. "
        "{pneumonia: 34}")

    @field_validator("quotas")
    @classmethod
    def _some_images(cls, value, info: ValidationInfo):
        """Quotas of 0 for every class leave no image to train on (checked at --dry-run)."""
        suite = suite_of(info)
        every_class = suite is None or len(value or {}) >= len(suite.classes)
        if value and every_class and all(q == 0 for q in value.values()):
            raise ValueError(f"every quota is 0, so no phase would have an image to train "
                             f"on; got {value}")
        return value


def plan_phased(labels: np.ndarray, options: PhasedOptions, context: SamplerContext) -> Plan:
    rng = context.rng
    names = class_names(NAME, labels, context)
    labels = np.asarray(labels, dtype=np.int64)
    counts = class_counts(labels, len(names))
    if counts.sum() == 0:
        raise SamplerOptionError(f"sampler {NAME!r}: the training set is empty")
    if context.split_phases is not None:
        return plan_from_split(labels, options, context)
    smallest = int(counts[counts > 0].min())
    quotas = per_class(NAME, "quotas", options.quotas, names, allow_all=True)
    common = per_class(NAME, "common", options.common, names)

    quota, keep, fresh = [], [], []
    for c, name in enumerate(names):
        q = quotas.get(c, smallest)
        q = int(counts[c]) if q is None else min(int(q), int(counts[c]))  # "all" or clamped
        k = int(common.get(c, 0))
        if k > counts[c]:
            raise SamplerOptionError(
                f"sampler {NAME!r}: option common.{name}: {k} images asked for, but the "
                f"training set has only {counts[c]} {name} images")
        if k > q:
            raise SamplerOptionError(
                f"sampler {NAME!r}: option common.{name} ({k}) exceeds the quota of {name} "
                f"({q}); the common images are part of the quota")
        quota.append(q)
        keep.append(k)
        fresh.append(q - k)

    pools, commons = [], []
    for c in range(len(names)):
        perm = rng.permutation(np.flatnonzero(labels == c))
        commons.append(perm[:keep[c]])
        pools.append(perm[keep[c]:])

    needed = [math.ceil(len(pools[c]) / fresh[c]) for c in range(len(names)) if fresh[c]]
    default_phases = max(needed, default=1)
    phases_opt = options.phases
    n_phases = default_phases if phases_opt is None else phases_opt

    chunks = [fresh_chunks(pools[c], fresh[c], n_phases, rng) for c in range(len(names))]
    phases = []
    for i in range(n_phases):
        parts = [np.concatenate([commons[c], chunks[c][i]]) for c in range(len(names))]
        phases.append(Phase(indices=sorted(int(x) for x in np.concatenate(parts))))

    phases, budget_note = meet_budget(phases, context, options.epochs)
    distinct = len({i for p in phases for i in p.indices})
    how = "default: every image seen at least once" if phases_opt is None else "set"
    lines = [f"{n_phases} phases of {sum(quota)} images ({how})"]
    for c, name in enumerate(names):
        if counts[c] == 0:
            lines.append(f"{name}: absent from the training set")
        elif fresh[c] == len(pools[c]):
            lines.append(f"{name}: all {counts[c]} images in every phase")
        else:
            text = f"{name}: {keep[c]} common + {fresh[c]} fresh per phase of {counts[c]}"
            if fresh[c] * n_phases > len(pools[c]):
                text += (f"; exhausted after {len(pools[c]) // fresh[c]} phases, then reused "
                         "from a fresh permutation")
            lines.append(text)
    lines.append(f"{distinct} distinct images")
    lines.append(budget_note)
    return Plan(phases=phases, notes="; ".join(lines))


def plan_from_split(labels: np.ndarray, options: PhasedOptions, context: SamplerContext) -> Plan:
    """The phases a split fixed (the authors' published phase files), taken as they are."""
    phases = []
    for n, given in enumerate(context.split_phases or [], start=1):
        indices = sorted(int(i) for i in given)
        if indices and not 0 <= indices[0] <= indices[-1] < len(labels):
            raise SamplerOptionError(
                f"sampler {NAME!r}: phase {n} fixed by the split holds a position outside "
                f"the {len(labels)} training images")
        phases.append(Phase(indices=indices))
    if not phases:
        raise SamplerOptionError(f"sampler {NAME!r}: the split fixed an empty list of phases")
    count = len(phases)
    sizes = sorted({len(p.indices) for p in phases})
    distinct = len({i for p in phases for i in p.indices})
    phases, budget_note = meet_budget(phases, context, options.epochs)
    shown = "/".join(map(str, sizes))
    lines = [f"{count} phases fixed by the split ({shown} images each, {distinct} distinct)"]
    unused = [k for k in ("phases", "quotas", "common") if getattr(options, k)]
    if unused:
        lines.append(f"options {', '.join(unused)} not used: the split fixes the phases")
    lines.append(budget_note)
    return Plan(phases=phases, notes="; ".join(lines))


@hookimpl
def register_samplers(register):
    register(SamplerSpec(
        name=NAME,
        description="phased balanced sampling: smallest class in every phase, "
                    "fresh disjoint chunks of the others (the paper's method)",
        plan=plan_phased,
        options=PhasedOptions,
        source="Rahimzadeh & Attar 2020, Informatics in Medicine Unlocked 19:100360, "
               "section 2.2 (8 phases of 633 images)",
    ))
