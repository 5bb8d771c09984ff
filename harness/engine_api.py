"""Everything an engine plugin needs, in one public module.

An engine is the one kind of plugin with a toolkit: besides its spec (``harness.EngineSpec``)
it gets the contract its model meets and the framework-free pieces the core shares between
engines (input on the host, augmentation geometry, the classifier re-draw, state keys, the
optimizer and loss table), so that an engine's own module holds only calls into its
framework. Built-in engines import nothing else from the core; neither should yours
(``tests/minimal_engine.py`` is a whole engine written against this module).

The contract (``harness.plugin.engine``):

- required primitives (``REQUIRED_PRIMITIVES``): ``set_trainable``, ``train_epoch``,
  ``predict``, ``get_state``/``set_state``, ``get_weights``/``set_weights``;
- optional (``OPTIONAL_PRIMITIVES``): ``reset_classifier`` (plans whose sampler lists it in
  ``SamplerSpec.needs``: ``--dry-run`` refuses such a sampler with an engine whose model
  class lacks it), and ``Describable``'s ``prepare``/``describe``/``forward_flops`` for
  ``harness describe`` and ``harness bench``.

``build(context)`` gets an ``EngineContext``: the run's typed ``Training`` settings (read back
from the run's resolved run, ``harness.ResolvedRun``), its backbone and the backbone's
validated options.

Importing this module imports no deep-learning framework.
"""

from harness.config.suite import Augmentation, Training
from harness.plugin.engine import (
    OPTIONAL_PRIMITIVES,
    REQUIRED_PRIMITIVES,
    AugmentParams,
    Batch,
    Describable,
    EngineContext,
    EngineModel,
    EpochResult,
    LossSpec,
    build_backbone,
    missing_primitives,
)
from harness.training.augment import (
    INTERPOLATION,
    TF_FILL_MODE,
    TORCH_PADDING,
    affine_matrices,
    apply_on_host,
    projective_transforms,
)
from harness.training.engine import (
    CLASSIFIER_STD,
    NORMALIZATION,
    StateMismatch,
    Tally,
    classifier_init,
    compute_dtype,
    feature_map_problem,
    flatten,
    host_inputs,
    in_order,
    numbered,
    pack_state,
    param_counts,
    stack_probabilities,
    unflatten,
    unpack_state,
)
from harness.training.optim import LOSSES, PROB_FLOOR, OptimizerDef, check_loss, optimizer_def

__all__ = [
    "CLASSIFIER_STD",
    "INTERPOLATION",
    "LOSSES",
    "NORMALIZATION",
    "OPTIONAL_PRIMITIVES",
    "PROB_FLOOR",
    "REQUIRED_PRIMITIVES",
    "TF_FILL_MODE",
    "TORCH_PADDING",
    "AugmentParams",
    "Augmentation",
    "Batch",
    "Describable",
    "EngineContext",
    "EngineModel",
    "EpochResult",
    "LossSpec",
    "OptimizerDef",
    "StateMismatch",
    "Tally",
    "Training",
    "affine_matrices",
    "apply_on_host",
    "build_backbone",
    "check_loss",
    "classifier_init",
    "compute_dtype",
    "feature_map_problem",
    "flatten",
    "host_inputs",
    "in_order",
    "missing_primitives",
    "numbered",
    "optimizer_def",
    "pack_state",
    "param_counts",
    "projective_transforms",
    "stack_probabilities",
    "unflatten",
    "unpack_state",
]
