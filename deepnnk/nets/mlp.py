"""A small ReLU MLP on 2-D input: the network of ``notebooks/00_nnk_geometry.ipynb``.

:func:`make_mlp` builds a seeded ``2 → widths… → n_classes`` ReLU MLP, :func:`train_mlp` trains
it with a hand-written Adam and keeps snapshots at the epochs :func:`snapshot_epochs` picks;
:func:`hidden_features` (the last hidden layer) and :func:`network_labels` evaluate it in
float64, the precision :mod:`deepnnk.nets.geometry` computes its exact linear regions in.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

__all__ = ["hidden_features", "make_mlp", "network_labels", "snapshot_epochs", "train_mlp"]


def make_mlp(widths=(24, 24, 24), n_in: int = 2, n_out: int = 2, seed: int = 0) -> nn.Sequential:
    """``n_in → widths… → n_out`` ReLU MLP (float32), initialised from ``seed``."""
    torch.manual_seed(seed)
    layers, d = [], n_in
    for w in widths:
        layers += [nn.Linear(d, w), nn.ReLU()]
        d = w
    layers.append(nn.Linear(d, n_out))
    return nn.Sequential(*layers)


def train_mlp(
    mlp: nn.Sequential,
    X,
    y,
    epochs: int,
    snapshots=(),
    lr: float = 1e-2,
    batch_size: int = 32,
    seed: int = 0,
) -> dict:
    """Adam (β = 0.9, 0.999) on cross-entropy, mini-batches reshuffled each epoch from ``seed``.

    Returns ``{epoch: state_dict}`` for each epoch in ``snapshots`` (0 = before training); the
    model is left at its final state. Adam is written out here because constructing
    ``torch.optim.Adam`` the first time imports ~1.5 s of torch modules, a tenth of the smoke
    profile's budget; the update is the textbook one.
    """
    Xt = torch.as_tensor(np.asarray(X), dtype=torch.float32)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    params = list(mlp.parameters())
    m1 = [torch.zeros_like(p) for p in params]
    m2 = [torch.zeros_like(p) for p in params]
    b1, b2, eps, step = 0.9, 0.999, 1e-8, 0
    wanted = set(int(e) for e in snapshots)
    states = {0: copy.deepcopy(mlp.state_dict())} if 0 in wanted else {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: extra threads only add overhead
    try:
        for epoch in range(1, epochs + 1):
            for b in torch.randperm(len(Xt), generator=gen).split(batch_size):
                for p in params:
                    p.grad = None
                nn.functional.cross_entropy(mlp(Xt[b]), yt[b]).backward()
                step += 1
                with torch.no_grad():
                    for p, g1, g2 in zip(params, m1, m2, strict=True):
                        g1.mul_(b1).add_(p.grad, alpha=1 - b1)
                        g2.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                        denom = (g2 / (1 - b2**step)).sqrt_().add_(eps)
                        p.addcdiv_(g1, denom, value=-lr / (1 - b1**step))
            if epoch in wanted:
                states[epoch] = copy.deepcopy(mlp.state_dict())
    finally:
        torch.set_num_threads(threads)
    return states


def snapshot_epochs(epochs: int, n: int) -> list[int]:
    """0, then ``n − 1`` roughly log-spaced epochs up to ``epochs`` (distinct, sorted)."""
    if n < 2 or epochs < 1:
        return [0]
    steps = np.unique(np.round(np.geomspace(1, epochs, n - 1)).astype(int))
    return [0, *(int(s) for s in steps)]


def _double(mlp: nn.Sequential) -> nn.Sequential:
    return copy.deepcopy(mlp).to(torch.float64).eval()


def hidden_features(mlp: nn.Sequential, X) -> np.ndarray:
    """The last hidden layer (post-ReLU) of ``mlp`` at ``X [n, 2]``, float64 ``[n, h]``."""
    with torch.no_grad():
        return _double(mlp)[:-1](torch.as_tensor(np.asarray(X), dtype=torch.float64)).numpy()


def network_labels(mlp: nn.Sequential, X) -> np.ndarray:
    """The class ``mlp`` predicts at ``X [n, 2]`` (float64 forward pass), int ``[n]``."""
    with torch.no_grad():
        logits = _double(mlp)(torch.as_tensor(np.asarray(X), dtype=torch.float64))
    return logits.argmax(1).numpy()
