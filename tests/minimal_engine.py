"""A minimal engine: plain PyTorch on the CPU, the primitives of ``harness.engine_api``
and nothing more (the reference for writing a new engine; ``tests/test_minimal_engine.py``
installs it as a third-party plugin and trains it through ``harness run``).

The core does the rest: the loop (phases, epochs, data order, selection, checkpoints,
resume, history), and the framework-free parts below (``harness.engine_api``): the
input on the host (augmentation, scaling, normalisation: ``host_inputs``), the classifier
re-draw (``classifier_init``), the epoch's sums (``Tally``), the state's keys
(``pack_state``, ``flatten``). It builds every backbone written for torch
(``backbones="torch"``). No ``check_backbone``, no bench/describe primitives (optional).
"""

from __future__ import annotations

import math

import numpy as np

from harness import EngineSpec, hookimpl
from harness.engine_api import (
    PROB_FLOOR,
    Tally,
    classifier_init,
    flatten,
    host_inputs,
    optimizer_def,
    pack_state,
    stack_probabilities,
    unflatten,
    unpack_state,
)


class MinimalModel:
    def __init__(self, ctx):
        import torch
        from torch import nn

        if ctx.threads:
            torch.set_num_threads(ctx.threads)
        torch.manual_seed(ctx.seed)
        t = ctx.training
        self.torch, self.ctx = torch, ctx
        self.backbone = ctx.build_backbone("torch")
        # The head: global average pooling → dropout → the final linear classifier.
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Dropout(getattr(t, "dropout", 0.5)),
                                  nn.Linear(self.backbone.out_channels, ctx.n_classes))
        self.model = nn.Sequential(self.backbone, self.head)
        self.reset_classifier(ctx.seed)
        d = optimizer_def(t.optimizer)
        if d.name == "sgd":
            self.optimizer = torch.optim.SGD(self.model.parameters(), t.lr,
                                             momentum=d.momentum, nesterov=d.nesterov)
        else:
            kind = torch.optim.NAdam if d.name == "nadam" else torch.optim.Adam
            self.optimizer = kind(self.model.parameters(), t.lr, betas=(d.beta1, d.beta2),
                                  eps=d.epsilon)
        as_tensor = lambda v: None if v is None else torch.tensor(v)
        self.class_weights, self.alpha = as_tensor(ctx.loss.class_weights), \
            as_tensor(ctx.loss.alpha)
        self.part = "all"

    def set_trainable(self, part: str) -> None:
        self.part = part
        trains = {"all": self.model, "head": self.head, "classifier": self.head[-1]}[part]
        for p in self.model.parameters():
            p.requires_grad_(False)
        for p in trains.parameters():
            p.requires_grad_(True)

    def reset_classifier(self, seed: int) -> None:
        layer = self.head[-1]
        kernel, bias = classifier_init(seed, layer.in_features, layer.out_features)
        with self.torch.no_grad():
            layer.weight.copy_(self.torch.from_numpy(kernel.T))
            layer.bias.copy_(self.torch.from_numpy(bias))

    def _input(self, images: np.ndarray, params=None):
        t = self.ctx.training
        return self.torch.from_numpy(host_inputs(images, params, t.normalization,
                                                 t.augmentation.fill))

    def train_epoch(self, batches, seed: int):
        torch = self.torch
        torch.manual_seed(seed)  # dropout
        self.model.train()
        if self.part != "all":
            self.backbone.eval()  # a frozen backbone keeps its BatchNorm statistics
        t = self.ctx.training
        params = [p for p in self.model.parameters() if p.requires_grad]
        tally = Tally()
        for batch in batches:
            y = torch.from_numpy(batch.labels)
            logits = self.model(self._input(batch.images, batch.augment))
            logp = torch.log_softmax(logits, 1).gather(1, y[:, None]).squeeze(1)
            nll = -logp.clamp(min=math.log(PROB_FLOOR))
            if self.ctx.loss.name == "focal":  # harness.engine_api.LOSSES
                nll = (1.0 - logp.exp()).pow(self.ctx.loss.gamma) * nll
                nll = nll * self.alpha[y] if self.alpha is not None else nll
            if self.class_weights is not None:
                nll = nll * self.class_weights[y]
            loss = nll.mean()
            self.optimizer.zero_grad()
            loss.backward()
            with torch.no_grad():  # decoupled weight decay, before the update
                for p in params:
                    p.mul_(1.0 - t.lr * t.weight_decay)
            self.optimizer.step()
            tally.add(loss.item(), int((logits.argmax(1) == y).sum()), len(y))
        return tally.result()

    def predict(self, batches) -> np.ndarray:
        self.model.eval()
        with self.torch.no_grad():
            out = [self.torch.softmax(self.model(self._input(b)), 1).numpy() for b in batches]
        return stack_probabilities(out, self.ctx.n_classes)

    def get_weights(self) -> dict[str, np.ndarray]:
        return {k: v.numpy().copy() for k, v in self.model.state_dict().items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        self.model.load_state_dict({k: self.torch.from_numpy(np.asarray(v))
                                    for k, v in weights.items()})

    def get_state(self) -> dict[str, np.ndarray]:
        slots = flatten(self.optimizer.state_dict()["state"], lambda v: v.numpy().copy())
        return pack_state(model=self.get_weights(), optim=slots)

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.set_weights(unpack_state(state, "model"))
        saved = self.optimizer.state_dict()
        saved["state"] = {int(i): {k: self.torch.from_numpy(np.array(v))
                                   for k, v in slots.items()}
                          for i, slots in unflatten(unpack_state(state, "optim")).items()}
        self.optimizer.load_state_dict(saved)


@hookimpl
def register_engines(register):
    register(EngineSpec(name="minimal", description="Plain PyTorch on the CPU (a test engine)",
                        build=MinimalModel, framework="torch", backbones="torch"))
