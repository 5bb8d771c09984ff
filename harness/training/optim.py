"""One optimizer and loss table for every engine: names, settings and semantics.

Engines build their framework's optimizer from ``OPTIMIZERS[name]`` and compute the loss of
``LOSSES[name]``; ``reference_loss`` is the numpy definition both engines are tested against.
The semantics are Keras's (the paper's framework):

- ``nadam``: Adam with Nesterov momentum and Dozat's momentum schedule
  ``mu_t = beta1 * (1 - 0.5 * 0.96**t)`` (Keras ``Nadam``; torch ``NAdam`` with
  ``momentum_decay=1``), epsilon 1e-7.
- ``adam`` / ``adamw``: Adam, epsilon 1e-7. ``adamw`` is ``adam`` with decoupled weight decay
  by name only: every optimizer here decays decoupled.
- ``sgd``: momentum 0.9, Nesterov (Keras ``SGD(nesterov=True)``; torch ``SGD(nesterov=True)``
  is the same update for a constant learning rate).
- ``weight_decay`` is decoupled in every optimizer (Keras semantics): before each update
  ``w -= lr * weight_decay * w``, not an L2 term added to the gradient.

Differences kept by necessity (documented, covered by the parity test's tolerance): Keras's
Adam adds epsilon to ``sqrt(v)`` before bias correction, torch after it, so Keras's
effective epsilon is ``eps / sqrt(1 - beta2**t)``; with epsilon 1e-7 this matters only for
gradients near 1e-7.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.errors import HarnessError


@dataclass(frozen=True)
class OptimizerDef:
    name: str
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-7
    momentum: float = 0.0
    nesterov: bool = False
    #: Dozat's schedule exponent: ``mu_t = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))``.
    momentum_decay: float = 1.0


OPTIMIZERS: dict[str, OptimizerDef] = {
    "nadam": OptimizerDef("nadam"),
    "adam": OptimizerDef("adam"),
    "adamw": OptimizerDef("adamw"),
    "sgd": OptimizerDef("sgd", momentum=0.9, nesterov=True),
}

#: ``cross_entropy``: ``-log p_y``; ``focal``: ``alpha_y * (1 - p_y)**gamma * -log p_y``.
#: Either is multiplied by the plan's class weight of the target, and a batch's loss is the
#: plain mean over its samples (Keras ``class_weight``: not divided by the sum of weights).
LOSSES = ("cross_entropy", "focal")

#: Probabilities are clipped to at least this before the log (Keras's epsilon).
PROB_FLOOR = 1e-7


def optimizer_def(name: str) -> OptimizerDef:
    try:
        return OPTIMIZERS[name]
    except KeyError:
        raise HarnessError(f"training.optimizer {name!r} is not known; use "
                           f"{', '.join(OPTIMIZERS)}") from None


def check_loss(name: str) -> str:
    if name not in LOSSES:
        raise HarnessError(f"plan.loss {name!r} is not known; use {', '.join(LOSSES)}")
    return name


def reference_loss(probs: np.ndarray, labels: np.ndarray, class_weights=None,
                   loss: str = "cross_entropy", gamma: float = 2.0, alpha=None) -> float:
    """The batch loss of the table in numpy (what both engines must compute)."""
    check_loss(loss)
    p = np.clip(probs[np.arange(len(labels)), labels], PROB_FLOOR, 1.0)
    per = -np.log(p)
    if loss == "focal":
        per = (1.0 - p) ** gamma * per
        if alpha is not None:
            per = np.asarray(alpha, dtype=np.float64)[labels] * per
    if class_weights is not None:
        per = np.asarray(class_weights, dtype=np.float64)[labels] * per
    return float(per.mean())
