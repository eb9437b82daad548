"""Adaptive wavelet distillation (AWD), small (issue 15, item 7).

AWD (Ha, Singh, Lanusse, Upadhyayula & Yu, NeurIPS 2021; the authors' ``awave``) learns the
low-pass filter ``h0`` of an orthogonal wavelet so that a trained model's prediction is carried
by few wavelet coefficients, then uses the wavelet's coefficients as the features of a simple,
interpretable "distilled" model. Here, on grey CIFAR-10 (the mean of RGB, pixels/255):

- one filter ``h0`` (init db3, length 6), J = 3 levels (:mod:`deepnnk.nets.wavelets`);
- loss (:func:`awd_loss`) = reconstruction MSE + λ_valid · (the four validity penalties of
  :func:`deepnnk.nets.wavelets.validity_penalties`: sum, norm, conjugate mirror, even-shift
  orthogonality) + λ_wave · mean |detail coefficients| + λ_attr · mean |TRIM attributions|,
  where the attributions are gradient × coefficient of the model's predicted logit with respect
  to the image's wavelet coefficients (the model is composed with the inverse DWT and sees the
  grey image replicated to 3 channels). The attribution term is differentiated through the
  gradient (second order), as in ``awave``;
- Adam on ``h0`` alone, seeded (the batches are drawn from a seeded generator).

The distilled model (:func:`distilled_accuracy`) is a seeded logistic regression on wavelet
features of the grey image: the J-level approximation (a 4×4 thumbnail) and the mean |detail
coefficient| of each of the 9 detail sub-bands over a 2×2 grid of image quadrants. It is
compared, on the same grey test images, with the same classifier on the db3 filter AWD started
from and with the CNN itself. Expect the distilled model to be far weaker than the CNN: 52
pooled wavelet statistics of a 32×32 grey image carry much less of CIFAR-10's class information
than the CNN extracts, and at the paper's lr 1e-3 the learned filter moves little from db3.
Measured with the authors' C = 16 network (paper profile, 800 steps): every tap within 0.016 of
db3, validity residuals ≤ 2e-3; test accuracy 44.6% (learned) against 44.4% (db3) and 63.0%
(the CNN on the same grey images), so the distillation gains nothing measurable here. Nothing
is tuned for the comparison; the λ values are fixed in :data:`DEFAULT_LAMBDAS`.
"""

from __future__ import annotations

import time

import numpy as np
import pywt
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from deepnnk.nets.features import check_images, images_to_float
from deepnnk.nets.models import PaperCNN
from deepnnk.nets.train import torch_threads
from deepnnk.nets.wavelets import (
    check_filter,
    dwt2,
    idwt2,
    validity_penalties,
    validity_residuals,
)
from deepnnk.studies.profiles import pick

LEVELS = 3
INIT = "db3"
#: Loss weights: λ_valid multiplies each validity penalty; λ_wave as awave's MNIST setting.
DEFAULT_LAMBDAS = {"valid": 1.0, "wave": 0.05, "attr": 0.05}
LOSS_TERMS = ("total", "reconstruction", "sum", "norm", "cmf", "conv", "wave", "attr")

PROFILES = {
    "smoke": {
        "n_train": 64,
        "steps": 4,
        "batch_size": 16,
        "lr": 1e-3,
        "n_clf_train": 300,
        "n_clf_test": 200,
        "seed": 0,
    },
    "quick": {
        "n_train": 2000,
        "steps": 150,
        "batch_size": 32,
        "lr": 1e-3,
        "n_clf_train": 5000,
        "n_clf_test": 2000,
        "seed": 0,
    },
    "paper": {
        "n_train": 10000,
        "steps": 800,
        "batch_size": 32,
        "lr": 1e-3,
        "n_clf_train": 20000,
        "n_clf_test": 10000,
        "seed": 0,
    },
}


def profile(name: str) -> dict:
    """The sizes of profile ``name`` (``"smoke"``, ``"quick"`` or ``"paper"``): AWD's training
    images, Adam steps, batch size and lr; the classifier's train and test images; the seed."""
    return pick(PROFILES, name)


# --------------------------------------------------------------------------- data


def grey(images) -> torch.Tensor:
    """uint8 ``[N, 32, 32, 3]`` or float ``[N, 3, 32, 32]`` pixels/255 → float32 grey images
    ``[N, 1, 32, 32]``, the mean of R, G, B, in [0, 1]."""
    images = check_images(images)
    x = images_to_float(images)
    if not bool(torch.isfinite(x).all()):
        raise ValueError("images contain NaN or inf; pass finite pixels/255 in [0, 1].")
    return x.mean(1, keepdim=True).contiguous()


def _check_grey(g) -> torch.Tensor:
    if not isinstance(g, torch.Tensor) or g.ndim != 4 or g.shape[1] != 1:
        shape = tuple(g.shape) if hasattr(g, "shape") else type(g).__name__
        raise ValueError(
            f"grey images must be a float tensor [N, 1, H, W] (use awd.grey(images)), got {shape}"
        )
    if not bool(torch.isfinite(g).all()):
        raise ValueError("grey images contain NaN or inf; pass finite pixels/255.")
    return g


def _init_filter(init) -> torch.Tensor:
    if isinstance(init, str):
        try:
            init = pywt.Wavelet(init).rec_lo
        except ValueError as err:
            raise ValueError(f"unknown wavelet {init!r}; pass a pywt name such as 'db3'") from err
    return check_filter(torch.as_tensor(np.asarray(init, dtype=np.float32)))


# --------------------------------------------------------------------------- loss


def awd_loss(
    h0: torch.Tensor,
    g: torch.Tensor,
    model: PaperCNN | None,
    *,
    levels: int = LEVELS,
    lambdas: dict | None = None,
) -> dict[str, torch.Tensor]:
    """The AWD loss of filter ``h0`` ``[L]`` on grey images ``g`` ``[N, 1, H, W]``.

    Returns differentiable scalars by term (:data:`LOSS_TERMS`): ``"reconstruction"`` (MSE of
    ``idwt2(dwt2(g))`` against ``g``, pixels/255 squared), the four validity penalties
    (unweighted), ``"wave"`` (mean |detail coefficient|), ``"attr"`` (mean |gradient ×
    coefficient| of the model's predicted logit; 0 when ``model`` is None) and ``"total"``,
    their weighted sum with ``lambdas`` (default :data:`DEFAULT_LAMBDAS`).
    """
    lam = {**DEFAULT_LAMBDAS, **(lambdas or {})}
    g = _check_grey(g)
    approx, details = dwt2(g, h0, levels)
    terms = {"reconstruction": ((idwt2(approx, details, h0) - g) ** 2).mean()}
    terms.update(validity_penalties(h0))
    terms["wave"] = torch.cat([d.flatten(1) for d in details], 1).abs().mean()
    if model is None:
        terms["attr"] = g.new_zeros(())
    else:
        # TRIM: the model composed with the inverse DWT, attributions on the coefficients
        coeffs = [approx, *details]
        if not any(c.requires_grad for c in coeffs):
            coeffs = [c.detach().requires_grad_(True) for c in coeffs]
        image = idwt2(coeffs[0], coeffs[1:], h0).expand(-1, 3, -1, -1)
        logits = model(image)
        top = logits.gather(1, logits.argmax(1, keepdim=True).detach()).sum()
        grads = torch.autograd.grad(top, coeffs, create_graph=True)
        attr = torch.cat([(gr * c).flatten(1) for gr, c in zip(grads, coeffs, strict=True)], 1)
        terms["attr"] = attr.abs().mean()
    valid = terms["sum"] + terms["norm"] + terms["cmf"] + terms["conv"]
    terms["total"] = (
        terms["reconstruction"]
        + lam["valid"] * valid
        + lam["wave"] * terms["wave"]
        + lam["attr"] * terms["attr"]
    )
    return terms


def train_awd(
    model: PaperCNN | None,
    g: torch.Tensor,
    *,
    steps: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    levels: int = LEVELS,
    init="db3",
    lambdas: dict | None = None,
    seed: int = 0,
    num_threads: int | None = 1,
) -> dict:
    """Learn ``h0`` by Adam on :func:`awd_loss`, one seeded random batch of ``g`` per step.

    ``model``: a trained :class:`PaperCNN` (eval mode; its weights are not touched) or None
    (no attribution term). ``g``: grey images ``[N, 1, 32, 32]`` (:func:`grey`). Returns plain
    data: ``"h0"``, ``"h0_init"`` float64 ``[L]``; ``"history"``: {term: float64 [steps]} for
    each of :data:`LOSS_TERMS` (the loss of the batch before each step); ``"loss_start"``,
    ``"loss_end"``: {term: float} on a fixed batch (the first ``4·batch_size`` images) at the
    initial and the learned filter; ``"residuals"``:
    :func:`~deepnnk.nets.wavelets.validity_residuals` of the learned filter; ``"seconds"``.
    Same seed, same data → the same filter. ``num_threads``: torch threads for the loop
    (None: as is). One by default: the batches are small and, on the shared 2-core machine,
    one thread ran a step 4-9x faster than two (0.10 s against 0.4-0.95 s at batch 32).
    """
    g = _check_grey(g)
    if model is not None and model.training:
        raise ValueError("the model is in train mode (dropout on); call model.eval() first.")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    t0 = time.perf_counter()
    init_h = _init_filter(init).to(g.dtype)
    h0 = init_h.clone().requires_grad_(True)
    opt = torch.optim.Adam([h0], lr=lr)
    rng = torch.Generator().manual_seed(seed)
    history = {k: [] for k in LOSS_TERMS}
    g_eval = g[: 4 * batch_size]  # a fixed batch: the loss before and after, free of batch noise

    def evaluate(h):
        terms = awd_loss(h, g_eval, model, levels=levels, lambdas=lambdas)
        return {k: float(v.detach()) for k, v in terms.items()}

    with torch_threads(num_threads):
        loss_start = evaluate(h0)
        for _ in range(steps):
            idx = torch.randperm(len(g), generator=rng)[:batch_size]
            terms = awd_loss(h0, g[idx], model, levels=levels, lambdas=lambdas)
            (grad,) = torch.autograd.grad(terms["total"], h0)  # h0 only: the model stays as is
            opt.zero_grad(set_to_none=True)
            h0.grad = grad
            opt.step()
            for k in LOSS_TERMS:
                history[k].append(float(terms[k].detach()))
        loss_end = evaluate(h0.detach())
    h = h0.detach().double()
    return {
        "loss_start": loss_start,
        "loss_end": loss_end,
        "h0": h.numpy(),
        "h0_init": init_h.double().numpy(),
        "history": {k: np.asarray(v) for k, v in history.items()},
        "residuals": validity_residuals(h),
        "seconds": time.perf_counter() - t0,
    }


# --------------------------------------------------------------------------- distilled model


def wavelet_features(g: torch.Tensor, h0, levels: int = LEVELS, batch_size: int = 1024):
    """Features of grey images ``[N, 1, 32, 32]`` for the distilled model, float64 ``[N, F]``:
    the level-J approximation coefficients (``(32/2^J)²``, a thumbnail) and, for each of the
    3J detail sub-bands, the mean |coefficient| in each quadrant of the image (4 per sub-band).
    F = 16 + 36 = 52 at J = 3."""
    g = _check_grey(g)
    h = check_filter(torch.as_tensor(np.asarray(h0, dtype=np.float64)), like=g)
    out = []
    with torch.no_grad():
        for s in range(0, len(g), batch_size):
            approx, details = dwt2(g[s : s + batch_size], h, levels)
            feats = [approx.flatten(1)]
            for d in details:  # [n, 1, 3, h, w] → mean |c| over 2×2 quadrants
                n, _, _, hh, ww = d.shape
                q = d.abs().view(n, 3, 2, hh // 2, 2, ww // 2).mean((3, 5))
                feats.append(q.flatten(1))
            out.append(torch.cat(feats, 1))
    return torch.cat(out).double().numpy()


def distilled_accuracy(g_train, y_train, g_test, y_test, h0, *, levels=LEVELS, seed=0) -> float:
    """Test accuracy of a seeded logistic regression (standardised features) on
    :func:`wavelet_features` of filter ``h0``; fraction in [0, 1]."""
    clf = make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=2000, C=1.0, random_state=seed)
    )
    clf.fit(wavelet_features(g_train, h0, levels), np.asarray(y_train))
    return float(clf.score(wavelet_features(g_test, h0, levels), np.asarray(y_test)))


def cnn_grey_accuracy(model: PaperCNN, g: torch.Tensor, y, batch_size: int = 500) -> float:
    """The CNN's accuracy on grey images ``[N, 1, 32, 32]`` replicated to 3 channels."""
    g = _check_grey(g)
    p = model.fc.weight
    with torch.no_grad():
        pred = torch.cat(
            [
                model(g[s : s + batch_size].to(p.device, p.dtype).expand(-1, 3, -1, -1)).argmax(1)
                for s in range(0, len(g), batch_size)
            ]
        )
    return float((pred.cpu().numpy() == np.asarray(y)).mean())


def awd_study(model: PaperCNN, x_train, y_train, x_test, y_test, sizes: dict) -> dict:
    """Notebook 06's AWD: learn ``h0`` on ``sizes["n_train"]`` grey training images, then
    compare the distilled model (learned filter) with db3's and with the CNN, all on the first
    ``n_clf_test`` grey test images. ``x_*``: uint8 ``[N, 32, 32, 3]``; ``sizes``: a
    :func:`profile`. The subsets are seeded draws of the training set and the first test images.

    Returns the :func:`train_awd` result plus ``"accuracy": {"distilled", "db3", "cnn"}``
    (fractions), ``"n_clf_train"``, ``"n_clf_test"``, ``"seconds"`` (all of it) and
    ``"seconds_train"`` (AWD alone).
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(sizes["seed"])
    n_pool = max(sizes["n_train"], sizes["n_clf_train"])
    if n_pool > len(x_train) or sizes["n_clf_test"] > len(x_test):
        raise ValueError("the profile asks for more images than given; pass more or use 'smoke'")
    pool = rng.choice(len(x_train), n_pool, replace=False)
    awd_idx, clf_idx = pool[: sizes["n_train"]], pool[: sizes["n_clf_train"]]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(sizes["seed"])
        res = train_awd(
            model,
            grey(x_train[awd_idx]),
            steps=sizes["steps"],
            batch_size=sizes["batch_size"],
            lr=sizes["lr"],
            init=INIT,
            seed=sizes["seed"],
        )
    res["seconds_train"] = res.pop("seconds")
    g_tr, y_tr = grey(x_train[clf_idx]), np.asarray(y_train)[clf_idx]
    g_te, y_te = grey(x_test[: sizes["n_clf_test"]]), np.asarray(y_test)[: sizes["n_clf_test"]]
    seed = sizes["seed"]
    res["accuracy"] = {
        "distilled": distilled_accuracy(g_tr, y_tr, g_te, y_te, res["h0"], seed=seed),
        "db3": distilled_accuracy(g_tr, y_tr, g_te, y_te, res["h0_init"], seed=seed),
        "cnn": cnn_grey_accuracy(model, g_te, y_te),
    }
    res["n_clf_train"], res["n_clf_test"] = len(clf_idx), len(y_te)
    res["seconds"] = time.perf_counter() - t0
    return res
