"""The classifier heads every torch backbone shares (the paper's and a lighter one).

``paper``: 1×1 conv to 1024 channels, no activation → flatten → dropout 0.5 → dense, the
dense kernel drawn from N(0, 0.001) as the authors' Keras ``RandomNormal(0, 0.001)``.
``gap``: global average pooling → dropout 0.5 → dense. Both return logits; softmax is
applied by the loss and at prediction time.
"""

from __future__ import annotations

HEADS = ("paper", "gap")


def _global_average_pool():
    import torch
    from torch import nn

    class GlobalAveragePool(nn.Module):
        """``AdaptiveAvgPool2d(1)`` as a mean: the same numbers, and a backward pass that is
        deterministic on a GPU (``AdaptiveAvgPool2d``'s is not, so
        ``training.deterministic`` would refuse it)."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3), keepdim=True)

    return GlobalAveragePool()


def build_classifier(backbone, head: str, n_classes: int, image_size: int,
                     dropout: float = 0.5):
    """``backbone`` + ``head`` as one module with ``.backbone`` and ``.head`` attributes."""
    import torch
    from torch import nn

    if head not in HEADS:
        from harness import HarnessError
        raise HarnessError(f"unknown head {head!r}; known heads: {', '.join(HEADS)}")
    with torch.no_grad():
        was = backbone.training
        backbone.eval()
        fh, fw = backbone(torch.zeros(1, 3, image_size, image_size)).shape[-2:]
        backbone.train(was)
    chs = backbone.out_channels

    if head == "paper":
        conv = nn.Conv2d(chs, 1024, 1)
        nn.init.xavier_uniform_(conv.weight)  # Keras Conv2D default: glorot_uniform, zero bias
        nn.init.zeros_(conv.bias)
        dense = nn.Linear(1024 * fh * fw, n_classes)
        layers = [conv, nn.Flatten(), nn.Dropout(dropout), dense]
    else:
        dense = nn.Linear(chs, n_classes)
        layers = [_global_average_pool(), nn.Flatten(), nn.Dropout(dropout), dense]
    nn.init.normal_(dense.weight, mean=0.0, std=0.001)
    nn.init.zeros_(dense.bias)

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = backbone
            self.head = nn.Sequential(*layers)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.backbone(x))

    return Classifier()
