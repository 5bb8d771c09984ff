"""Plugins that misbehave on purpose, for the hostile-input tests (``tests/hostile/``).

Load with ``plugins: [harness.testing.fakes, harness.testing.hostile]``. Each registers a
thing named ``hostile`` that behaves like a well-behaved built-in until the environment
variable ``HARNESS_HOSTILE`` names a fault (it reaches the worker processes too): e.g.
``plan-raises``, ``predict-rows``, ``records-formula``. The faults are listed in ``FAULTS``.
"""

from __future__ import annotations

import os

import numpy as np

from harness import DatasetSpec, EngineSpec, Phase, Plan, SamplerSpec, SplitterSpec, hookimpl
from harness.testing.fakes import CentroidModel

FAULTS = ("records-raises", "records-wrong-type", "records-formula", "split-raises",
          "split-bad-index", "plan-raises", "plan-wrong-type", "plan-bad-index",
          "build-raises", "train-raises", "predict-raises", "predict-wrong-type",
          "predict-rows", "predict-sum", "predict-nan")


def fault() -> str:
    return os.environ.get("HARNESS_HOSTILE", "")


def _synthetic():
    from harness_plugins.datasets import synthetic

    return synthetic


def records(options, context):
    if fault() == "records-raises":
        raise PermissionError(13, "Permission denied", "/data/cxr")
    if fault() == "records-wrong-type":
        return [{"uid": "a"}]
    frame = _synthetic().records(options, context)
    if fault() == "records-formula":  # values a spreadsheet would run as formulas
        frame["source"] = "=HYPERLINK(\"http://x\")"
        frame["patient_id"] = ["@" + str(p) for p in frame["patient_id"]]
    return frame


def read_image(record, options, context):
    return _synthetic().read_image(record, options, context)


def split(records, options, context):
    from harness_plugins.splitters import grouped_kfold

    if fault() == "split-raises":
        raise KeyError("patient_id")
    folds = grouped_kfold.split(records, options, context)
    if fault() == "split-bad-index":
        folds[0].test[0] = len(records) + 7
    return folds


def plan(labels, options, context):
    if fault() == "plan-raises":
        raise ZeroDivisionError("division by zero")
    if fault() == "plan-wrong-type":
        return [list(range(len(labels)))]
    indices = list(range(len(labels)))
    if fault() == "plan-bad-index":
        indices.append(len(labels) + 3)
    return Plan(phases=[Phase(indices=indices)])


class HostileModel(CentroidModel):
    def __init__(self, ctx):
        if fault() == "build-raises":
            raise MemoryError("out of device memory")
        super().__init__(ctx)

    def train_epoch(self, batches, seed):
        if fault() == "train-raises":
            raise AttributeError("'NoneType' object has no attribute 'backward'")
        return super().train_epoch(batches, seed)

    def predict(self, batches):
        probs = super().predict(batches)
        if fault() == "predict-raises":
            raise IndexError("index 3 is out of bounds")
        if fault() == "predict-wrong-type":
            return "probabilities"
        if fault() == "predict-rows":
            return probs[:-1]
        if fault() == "predict-sum":
            return probs * 0.5
        if fault() == "predict-nan":
            probs[0, 0] = np.nan
        return probs


@hookimpl
def register_datasets(register):
    synthetic = _synthetic()
    register(DatasetSpec(name="hostile", description="synthetic, with faults (tests)",
                         records=records, read_image=read_image,
                         fingerprint=synthetic.fingerprint, options=synthetic.SyntheticOptions,
                         distinct_images=True))


@hookimpl
def register_splitters(register):
    register(SplitterSpec(name="hostile", description="grouped k-fold, with faults (tests)",
                          split=split))


@hookimpl
def register_samplers(register):
    register(SamplerSpec(name="hostile", description="all images, with faults (tests)",
                         plan=plan))


@hookimpl
def register_engines(register):
    register(EngineSpec(name="hostile", description="centroid, with faults (tests)",
                        build=HostileModel, framework="numpy", backbones="centroid"))
