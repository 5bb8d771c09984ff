"""cxr-harness: a plugin-based benchmark harness for imbalanced chest X-ray classification.

The public contract: everything a plugin of any kind needs is exported here, and an engine's
toolkit from ``harness.engine_api`` (README, "Plugins"; docs/architecture.md). Built-in
plugins import nothing else from the core (``tests/test_public_contract.py``). Importing this
package imports no deep-learning framework.
"""

from harness.config.suite import DEFAULT_CLASSES
from harness.config.validate import suggest
from harness.data.cache import fill_cache, to_square_uint8, usable_cores
from harness.errors import HarnessError
from harness.plugin.budget import SamplerOptions, meet_budget
from harness.plugin.hookspecs import hookimpl
from harness.plugin.lazy import lazy
from harness.plugin.options import Options
from harness.plugin.specs import (
    BACKBONE_CONTRACT,
    RANDOM_WEIGHTS,
    BackboneSpec,
    ClassKey,
    ClassName,
    DatasetContext,
    DatasetName,
    DatasetSpec,
    EngineSpec,
    ExecutorSpec,
    Family,
    Fold,
    OptionsContext,
    Phase,
    Plan,
    SamplerContext,
    SamplerSpec,
    SplitterContext,
    SplitterSpec,
    TrackerSpec,
    WeightSource,
    suite_of,
)
from harness.plugin.trackers import RunEnd, RunInfo, SuiteEnd, SuiteInfo, Tracker
from harness.runs.launch import run_worker
from harness.version import __version__ as __version__


def run(suite, **kwargs):
    """Run a suite (a file or a dict); see :func:`harness.api.run`."""
    from harness.api import run as _run

    return _run(suite, **kwargs)


def load_results(runs_dir):
    """Every figure of the finished runs as a long DataFrame; see ``harness.api``."""
    from harness.analysis.results import load_results as _load

    return _load(runs_dir)

__all__ = [
    "BACKBONE_CONTRACT",
    "DEFAULT_CLASSES",
    "RANDOM_WEIGHTS",
    "BackboneSpec",
    "ClassKey",
    "ClassName",
    "DatasetContext",
    "DatasetName",
    "DatasetSpec",
    "EngineSpec",
    "ExecutorSpec",
    "Family",
    "Fold",
    "HarnessError",
    "Options",
    "OptionsContext",
    "Phase",
    "Plan",
    "RunEnd",
    "RunInfo",
    "SamplerContext",
    "SamplerOptions",
    "SamplerSpec",
    "SplitterContext",
    "SplitterSpec",
    "SuiteEnd",
    "SuiteInfo",
    "Tracker",
    "TrackerSpec",
    "WeightSource",
    "fill_cache",
    "hookimpl",
    "lazy",
    "load_results",
    "meet_budget",
    "run",
    "run_worker",
    "suggest",
    "suite_of",
    "to_square_uint8",
    "usable_cores",
]
