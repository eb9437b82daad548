"""The paper's six-layer CNN for CIFAR-10."""

from __future__ import annotations

import torch
from torch import nn


class PaperCNN(nn.Module):
    """Six 3×3 convs of width C with ReLU (+ dropout when regularised), max-pool after 2, 4, 6.

    Input: float ``[N, 3, 32, 32]``, RGB pixels/255. Output: logits ``[N, 10]``.
    ``features(x)`` is the flattened last block, ``[N, 16·C]``, flattened in TensorFlow's
    NHWC order (4×4×C) so that the authors' ``W_fc1`` loads unchanged.

    Weights are Glorot-uniform, as in the authors' code. ``bias_init`` picks the biases:
    ``"pytorch"`` (default) keeps PyTorch's U(±1/√fan_in); ``"tensorflow"`` reproduces the
    authors' quirk of Glorot-uniform biases, which for a bias of length n is U(±√(3/n)):
    ±0.31 at C = 32 and ±0.55 for the 10 output biases, 5-12x PyTorch's bound.
    """

    BIAS_INITS = ("pytorch", "tensorflow")

    def __init__(
        self,
        width: int = 32,
        regularized: bool = True,
        n_classes: int = 10,
        bias_init: str = "pytorch",
    ):
        super().__init__()
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive int, got {width!r}")
        if bias_init not in self.BIAS_INITS:
            raise ValueError(
                f"bias_init must be one of {', '.join(map(repr, self.BIAS_INITS))}, "
                f"got {bias_init!r}"
            )
        self.width = width
        self.regularized = regularized
        self.bias_init = bias_init
        self.dropout_p = 0.1 if regularized else 0.0
        chans = [3] + [width] * 6
        self.convs = nn.ModuleList(
            nn.Conv2d(chans[i], chans[i + 1], 3, padding=1) for i in range(6)
        )
        self.fc = nn.Linear(16 * width, n_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # The weights are drawn first, so "pytorch" and "tensorflow" share them for one seed.
        for m in [*self.convs, self.fc]:
            nn.init.xavier_uniform_(m.weight)
        if self.bias_init == "tensorflow":
            # TensorFlow's glorot_uniform takes fan_in = fan_out = n for a 1-D shape [n].
            for m in [*self.convs, self.fc]:
                bound = (3.0 / m.bias.numel()) ** 0.5
                nn.init.uniform_(m.bias, -bound, bound)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 3, 32, 32]`` → ``[N, 16·C]``: the last conv block after ReLU and pooling."""
        if x.ndim != 4 or x.shape[1:] != (3, 32, 32):
            raise ValueError(
                f"PaperCNN expects float images [N, 3, 32, 32] (NCHW, pixels/255), "
                f"got {tuple(x.shape)}"
            )
        for i, conv in enumerate(self.convs):
            x = torch.relu_(conv(x))  # in place: saves re-faulting a fresh activation buffer
            if self.dropout_p:
                x = nn.functional.dropout(x, self.dropout_p, self.training)
            if i % 2 == 1:
                x = nn.functional.max_pool2d(x, 2)
        return x.permute(0, 2, 3, 1).flatten(1)  # NHWC order, as TensorFlow flattened it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def resnet18(n_classes: int = 10, seed: int = 0) -> nn.Module:
    """torchvision's ResNet-18 with random weights (``weights=None``: nothing is downloaded),
    initialised from ``seed`` without touching the global RNG.

    It is the ImageNet architecture unchanged (a 7×7 stride-2 stem and a max-pool), so CIFAR's
    ``[N, 3, 32, 32]`` inputs shrink to 8×8 before ``layer1`` and to 1×1 at ``layer4``; that
    keeps it about 15× cheaper than the CIFAR variant with a 3×3 stem, which matters on a CPU.
    Output: logits ``[N, n_classes]``; ``fc``'s input is the 512-d average-pooled ``layer4``.
    """
    from torchvision.models import resnet18 as torchvision_resnet18

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torchvision_resnet18(weights=None, num_classes=n_classes)
