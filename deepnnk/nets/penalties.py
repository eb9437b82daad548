"""Training-time explanation penalties: CDEP and right-for-the-right-reasons (issue 15, item 4).

Each penalty is a small callable, ``penalty(model, xb, yb, masks_b) -> scalar tensor``, that
:func:`deepnnk.nets.train.train` adds to the cross-entropy of every batch
(``train(..., penalty=CDEPPenalty(100.0), masks=patch_masks)``):

- ``xb``: float ``[B, 3, 32, 32]`` pixels/255, the batch as the model sees it (after flips);
- ``yb``: int64 ``[B]`` labels; ``masks_b``: bool ``[B, 32, 32]``, True on the pixels whose
  influence is penalised (the decoy patch, :func:`deepnnk.nets.decoy.add_decoy`), flipped with
  the images.

Both run the model in the mode it is in. In train mode :func:`~deepnnk.nets.train.run_epoch`
replays the random state of the batch's cross-entropy forward pass for the penalty, so the
penalty sees the *same* dropout draw as the cross-entropy (one thinned network per step), and
the training's own random stream is untouched by it. ``tag`` names the penalty and λ; it is
recorded in the checkpoint config, and a checkpoint of another tag is not resumed.

>>> penalty = CDEPPenalty(100.0)  # doctest: +SKIP
>>> loss = F.cross_entropy(model(xb), yb) + penalty(model, xb, yb, masks_b)  # doctest: +SKIP
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from deepnnk.nets.cd import cd_propagate

SIDE = 32


def _check_lam(lam) -> float:
    if isinstance(lam, bool) or not isinstance(lam, (int, float)):
        raise ValueError(f"lam must be a number >= 0, got {lam!r}.")
    lam = float(lam)
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(f"lam must be a finite number >= 0, got {lam!r}.")
    return lam


def _mask(masks_b, xb: torch.Tensor) -> torch.Tensor:
    """bool ``[B, 32, 32]`` → float ``[B, 1, 32, 32]`` in ``xb``'s dtype and device."""
    m = torch.as_tensor(masks_b, device=xb.device)
    if m.dtype != torch.bool or tuple(m.shape) != (len(xb), SIDE, SIDE):
        raise ValueError(
            f"masks_b must be bool [B, 32, 32] with B = {len(xb)} (one mask per image), "
            f"got {m.dtype} {list(m.shape)}."
        )
    return m[:, None].to(xb.dtype)


class Penalty:
    """Base class: ``lam`` (λ ≥ 0, the penalty's weight) and the ``tag`` recorded by train()."""

    name = "penalty"

    def __init__(self, lam: float):
        self.lam = _check_lam(lam)

    @property
    def tag(self) -> str:
        """``"<name>(lam=<λ>)"``, e.g. ``"cdep(lam=100.0)"``: what the checkpoint config records."""
        return f"{self.name}(lam={self.lam!r})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.lam!r})"

    def __call__(self, model, xb, yb, masks_b) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class CDEPPenalty(Penalty):
    """CDEP (Rieger, Singh, Murdoch & Yu, ICML 2020): penalise the CD importance of the mask.

    The input splits by the mask, ``rel = xb·mask`` (the patch) and ``irrel = xb − rel``, and
    :func:`deepnnk.nets.cd.cd_propagate` carries both parts to the logits, ``[B, 10]`` each.
    The penalty is, exactly as the authors' ``score_funcs.py::cdep`` (and their DecoyMNIST
    training script) compute it::

        λ · mean over the B×10 (image, class) pairs of softmax((rel_ic, irrel_ic))[0]
          = λ · mean_ic sigmoid(rel_ic − irrel_ic)

    i.e. a two-way softmax between the relevant and irrelevant logit of *every* class (not a
    softmax over classes, and not only the true or predicted class), averaged over classes and
    the batch. ``yb`` is not used. Range [0, λ].

    Choices and consequences, stated because they matter when reading results:

    - The authors' ``cd.cd`` puts the model in eval mode (and leaves it there); here the model
      runs in the mode it is in, and in training with the cross-entropy's dropout draw.
    - The authors penalise one fixed mask of all four corners; here the mask is whatever the
      caller passes (each image's own patch, or
      :func:`deepnnk.nets.decoy.all_corners_mask` for the authors' choice).
    - Not zero for an empty mask: then ``rel = 0`` exactly (bias included, see
      :mod:`deepnnk.nets.cd`) and ``irrel`` is the logits, so the penalty is
      ``λ · mean sigmoid(−logits)``. More generally it depends on the logits' level, not only
      on the patch's share: raising every logit alike (which the cross-entropy does not see)
      lowers it. It is minimised by ``rel`` ≪ ``irrel`` for every class.
    """

    name = "cdep"

    def __call__(self, model, xb, yb, masks_b) -> torch.Tensor:
        m = _mask(masks_b, xb)
        rel = xb * m
        rel_logits, irrel_logits = cd_propagate(model, rel, xb - rel)
        return self.lam * torch.sigmoid(rel_logits - irrel_logits).mean()


class GradientPenalty(Penalty):
    """Right for the right reasons (Ross, Hughes & Doshi-Velez, IJCAI 2017).

    ``λ · mean over the batch of Σ_{masked pixels, channels} (∂ Σ_k log p_k(x) / ∂x)²``: the
    squared input-gradient of the summed log-probabilities of all classes, inside the mask,
    summed over the mask's pixels and the three channels of each image, then averaged over the
    images. Built with ``create_graph=True`` so the optimiser differentiates through it
    (double back-propagation: about three forward passes' cost). Zero for an empty mask.
    """

    name = "rrr"

    def __call__(self, model, xb, yb, masks_b) -> torch.Tensor:
        m = _mask(masks_b, xb)
        x = xb.detach().requires_grad_(True)
        log_p = F.log_softmax(model(x), dim=1)
        (grad,) = torch.autograd.grad(log_p.sum(), x, create_graph=True)
        return self.lam * (grad.square() * m).sum(dim=(1, 2, 3)).mean()
