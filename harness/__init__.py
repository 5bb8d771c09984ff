"""cxr-harness: a plugin-based benchmark harness for imbalanced chest X-ray classification.

Importing this package imports no deep-learning framework.
"""

from harness.plugin.hookspecs import hookimpl
from harness.plugin.specs import (
    DEFAULT_CLASSES,
    BackboneSpec,
    DatasetSpec,
    EngineSpec,
    ExecutorSpec,
    Fold,
    Option,
    Phase,
    Plan,
    SamplerSpec,
    SplitterSpec,
    TrackerSpec,
)
from harness.plugin.trackers import RunEnd, RunInfo, SuiteEnd, SuiteInfo, Tracker

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_CLASSES",
    "BackboneSpec",
    "DatasetSpec",
    "EngineSpec",
    "ExecutorSpec",
    "Fold",
    "Option",
    "Phase",
    "Plan",
    "RunEnd",
    "RunInfo",
    "SamplerSpec",
    "SplitterSpec",
    "SuiteEnd",
    "SuiteInfo",
    "Tracker",
    "TrackerSpec",
    "hookimpl",
]
