"""cxr-harness: a plugin-based benchmark harness for imbalanced chest X-ray classification.

Everything a plugin needs is exported here (see README, "Writing a plugin"). Importing this
package imports no deep-learning framework.
"""

from harness.errors import HarnessError
from harness.plugin.budget import SamplerOptions, meet_budget
from harness.plugin.hookspecs import hookimpl
from harness.plugin.options import Options
from harness.plugin.specs import (
    BACKBONE_CONTRACT,
    DEFAULT_CLASSES,
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
    suite_of,
)
from harness.plugin.trackers import RunEnd, RunInfo, SuiteEnd, SuiteInfo, Tracker

__version__ = "0.1.0"


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
    "hookimpl",
    "load_results",
    "meet_budget",
    "run",
    "suite_of",
]
