"""TRIM: contextual decomposition on a transform's bands (issue 15, item 3).

TRIM (Singh, Ha & Yu 2021, "transformation importance") scores a feature of a *transformed*
input: the model is composed with the inverse transform, so an attribution method applied to
the transform's coefficients answers "which frequency bands carry the prediction?". For CD the
composition needs no new code: the inverse transform is linear, so a band's part of the image
is ``rel = T⁻¹(M_b · T x)`` (``M_b`` the band's 0/1 mask on the coefficients) and
``irrel = x − rel``; :func:`deepnnk.nets.cd.cd_propagate` takes any split of the input.

Two transforms, each with bands that partition its coefficients:

- :func:`fourier_bands`: radial annuli of |frequency| of the 2-D FFT (cycles per pixel). The
  masks depend on |f| only, so each is conjugate-symmetric and the band's image part is real.
- :func:`wavelet_bands`: the J-level orthogonal DWT (:mod:`deepnnk.nets.wavelets`, db3 by
  default): the approximation and each level's details (three orientations together).

:func:`trim_scores` returns, per image and band, the CD relevant logit of the target class,
and gradient × input on the band for comparison. What holds exactly (tested):

- per band, ``score_b + irrel_b = logit`` (the CD invariant, to float rounding);
- ``full``, the CD relevant logit with ``rel`` = the whole image, and ``bias = logit − full``:
  ``bias`` is the bias-driven remainder (the biases of units with 0/0 parts that CD gives to
  ``irrel``, and what they cause above); it is exactly 0 for a network without biases;
- ``interaction = full − Σ_b score_b`` closes the sum, ``logit = Σ_b score_b + interaction +
  bias``. It is NOT small in general: CD is nonlinear (the ReLU rule gives each band its own
  activations), so band scores are not additive; the report shows its size;
- gradient × input per band is ``⟨∂logit/∂x, rel_b⟩`` (= Σ over the band's coefficients of
  gradient × coefficient, as the transforms are orthogonal/unitary), and these DO sum over the
  bands to the image's gradient × input ``⟨∂logit/∂x, x⟩``.

Measured on the authors' C = 16 network (paper profile, the first 1000 test images, predicted
class): the finest wavelet details (0.25-0.5 cycles/pixel) hold the largest mean CD score (0.50
of a mean logit of 2.52; the top band in 45% of images), the approximation 0.20 (30%); with
Fourier annuli the mass sits at 0.25-0.44 cycles/pixel. The band scores sum to only 0.9-1.3
of the 2.52: the interaction term (mean |·| 1.7-1.9) is as large as the scores, so a band's CD
score is its effect in isolation, not a share of the logit.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pywt
import torch

from deepnnk._validation import check_positive_int as _check_positive
from deepnnk.nets.cd import cd_propagate
from deepnnk.nets.features import check_images, images_to_float
from deepnnk.nets.models import PaperCNN
from deepnnk.nets.wavelets import band_layout, dwt2_packed, idwt2_packed
from deepnnk.studies.profiles import pick

SIDE = 32  # CIFAR-10 image side, pixels
DEFAULT_BATCH_SIZE = 64
BAND_KINDS = ("fourier", "wavelet")

PROFILES = {
    "smoke": {"n_show": 2, "n_mean": 16, "n_fourier_bands": 6, "levels": 3, "wavelet": "db3"},
    "quick": {"n_show": 4, "n_mean": 200, "n_fourier_bands": 6, "levels": 3, "wavelet": "db3"},
    "paper": {"n_show": 6, "n_mean": 1000, "n_fourier_bands": 8, "levels": 3, "wavelet": "db3"},
}


def profile(name: str) -> dict:
    """The sizes of profile ``name`` (``"smoke"``, ``"quick"`` or ``"paper"``): images shown
    one by one (``n_show``), images averaged (``n_mean``), bands and wavelet."""
    return pick(PROFILES, name)


# --------------------------------------------------------------------------- bands


def fourier_bands(n_bands: int, side: int = SIDE) -> dict:
    """Radial |frequency| annuli of the ``side``×``side`` 2-D FFT.

    Band b holds the frequencies with ``edges[b] <= |f| < edges[b+1]``, ``edges`` evenly spaced
    from 0 to 0.5 cycles/pixel (the Nyquist frequency along an axis); the last band also takes
    the corners up to ``√2/2``. ``|f| = √(fx² + fy²)`` with ``fx, fy`` from ``np.fft.fftfreq``.

    Returns ``{"kind": "fourier", "masks": bool [n_bands, side, side]`` (in FFT order, one
    True per coefficient across the bands), ``"names": [str]``, ``"ranges": float [n_bands, 2]``
    (cycles/pixel)``}``. Each mask is conjugate-symmetric, so a band's inverse FFT is real.
    """
    n_bands = _check_positive(n_bands, "n_bands")
    if n_bands > side // 2:
        raise ValueError(f"n_bands must be at most side/2 = {side // 2}, got {n_bands}")
    f = np.fft.fftfreq(side)
    radius = np.hypot(f[:, None], f[None, :])
    edges = np.linspace(0.0, 0.5, n_bands + 1)
    band = np.clip(np.searchsorted(edges, radius, side="right") - 1, 0, n_bands - 1)
    masks = band[None] == np.arange(n_bands)[:, None, None]
    ranges = np.stack([edges[:-1], edges[1:]], 1)
    ranges[-1, 1] = math.sqrt(0.5)
    names = [f"|f| {lo:.2f}-{hi:.2f}" for lo, hi in ranges]
    return {"kind": "fourier", "masks": masks, "names": names, "ranges": ranges}


def wavelet_bands(levels: int, side: int = SIDE, wavelet="db3") -> dict:
    """The bands of a ``levels``-level 2-D DWT: the approximation, then the details of level
    J, J−1, …, 1 (coarse to fine, so the bands run from low to high frequency like
    :func:`fourier_bands`).

    Returns ``{"kind": "wavelet", "masks": bool [levels+1, side, side]`` on the packed layout of
    :func:`deepnnk.nets.wavelets.pack`, ``"names"``, ``"ranges": float [levels+1, 2]`` (the
    nominal per-axis frequency range, cycles/pixel: level j details ``[2^−(j+1), 2^−j]``, the
    approximation ``[0, 2^−(J+1)]``), ``"levels"``, ``"h0"``: float64 ``[L]`` the filter``}``.
    ``wavelet``: a pywt name (its ``rec_lo``) or a low-pass filter ``h0``.
    """
    levels = _check_positive(levels, "levels")
    h0 = _filter(wavelet)
    lab = band_layout(side, side, levels).numpy()  # checks 2^levels divides side
    order = [0, *range(levels, 0, -1)]
    masks = np.stack([lab == k for k in order])
    names = [f"approx (level {levels})"] + [f"details level {j}" for j in range(levels, 0, -1)]
    ranges = [(0.0, 2.0 ** -(levels + 1))] + [(2.0 ** -(j + 1), 2.0**-j) for j in order[1:]]
    return {
        "kind": "wavelet",
        "masks": masks,
        "names": names,
        "ranges": np.array(ranges),
        "levels": levels,
        "h0": h0,
    }


def _filter(wavelet) -> np.ndarray:
    if isinstance(wavelet, str):
        try:
            return np.asarray(pywt.Wavelet(wavelet).rec_lo, dtype=np.float64)
        except ValueError as err:
            raise ValueError(
                f"unknown wavelet {wavelet!r}; pass a pywt name such as 'db3' or a filter h0."
            ) from err
    return np.asarray(
        wavelet.detach().cpu() if isinstance(wavelet, torch.Tensor) else wavelet, np.float64
    )


def make_bands(kind: str, *, n_bands: int = 6, levels: int = 3, wavelet="db3") -> dict:
    """:func:`fourier_bands` (``kind="fourier"``) or :func:`wavelet_bands` (``"wavelet"``)."""
    if kind == "fourier":
        return fourier_bands(n_bands)
    if kind == "wavelet":
        return wavelet_bands(levels, wavelet=wavelet)
    raise ValueError(f"bands must be one of {BAND_KINDS} or a dict from make_bands, got {kind!r}")


def band_parts(x: torch.Tensor, bands: dict) -> torch.Tensor:
    """Each band's part of the images: ``x`` ``[N, C, H, W]`` → ``[B, N, C, H, W]``, real,
    ``T⁻¹(M_b · T x)``; the parts sum over ``b`` to ``x`` (to float rounding)."""
    masks = torch.as_tensor(bands["masks"], device=x.device)
    if masks.shape[-2:] != x.shape[-2:]:
        raise ValueError(
            f"the bands are {tuple(masks.shape[-2:])} but the images {tuple(x.shape[-2:])}; "
            "build the bands for the images' side."
        )
    m = masks[:, None, None].to(x.dtype)  # [B, 1, 1, H, W]
    if bands["kind"] == "fourier":
        return torch.fft.ifft2(torch.fft.fft2(x)[None] * m).real
    levels = bands["levels"]
    h0 = torch.as_tensor(bands["h0"])
    return idwt2_packed(dwt2_packed(x, h0, levels)[None] * m, h0, levels)


# --------------------------------------------------------------------------- scores


def _images(images, model: PaperCNN) -> torch.Tensor:
    images = check_images(images)
    if images.dtype not in (np.uint8, torch.uint8):
        t = torch.as_tensor(images)
        if not bool(torch.isfinite(t).all()):
            raise ValueError("images contain NaN or inf; pass finite pixels/255 in [0, 1].")
        if float(t.min()) < 0 or float(t.max()) > 1:
            raise ValueError(
                "float images must be pixels/255 in [0, 1]; divide 0..255 pixels by 255."
            )
    p = model.fc.weight
    return images_to_float(images).to(device=p.device, dtype=p.dtype).contiguous()


def _targets(target, n: int, n_classes: int) -> torch.Tensor:
    """One class or ``[n]`` classes → int64 ``[n]``, checked."""
    t = torch.as_tensor(np.asarray(target.cpu() if isinstance(target, torch.Tensor) else target))
    if t.is_floating_point() or t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"target must be an int class or ints [N], got dtype {t.dtype}")
    t = t.to(torch.int64).expand(n) if t.ndim == 0 else t.to(torch.int64)
    if t.shape != (n,) or bool((t < 0).any()) or bool((t >= n_classes).any()):
        raise ValueError(f"target must be one class or {n} classes in 0..{n_classes - 1}")
    return t


def trim_scores(
    model: PaperCNN,
    images,
    bands="fourier",
    *,
    n_bands: int = 6,
    levels: int = 3,
    wavelet="db3",
    target=None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict:
    """CD (and gradient × input) of each band of each image, for the ``target`` class.

    ``model``: a :class:`PaperCNN` in eval mode. ``images``: uint8 ``[N, 32, 32, 3]`` or float
    ``[N, 3, 32, 32]`` pixels/255. ``bands``: ``"fourier"`` (``n_bands`` annuli),
    ``"wavelet"`` (``levels`` levels of ``wavelet``, a pywt name or a filter ``h0``), or a dict
    from :func:`make_bands`. ``target``: a class or ``[N]`` classes, default the prediction.

    Returns plain numpy data (logit units): ``"scores"`` ``[N, B]`` the CD relevant logit of
    each band; ``"irrel"`` ``[N, B]`` (``scores + irrel = logit``); ``"gradient_input"``
    ``[N, B]``; ``"logit"`` ``[N]``; ``"full"`` ``[N]`` (CD of the whole image); ``"bias"`` and
    ``"interaction"`` ``[N]`` (module docstring); ``"target"`` int ``[N]``; ``"names"``,
    ``"ranges"`` ``[B, 2]`` (cycles/pixel) and ``"kind"`` of the bands. No loop over images:
    one CD pass per batch holds every band of every image in it.
    """
    if not isinstance(model, PaperCNN):
        raise ValueError(
            f"TRIM's CD needs a deepnnk.nets.models.PaperCNN, got {type(model).__name__}"
        )
    if model.training:
        raise ValueError("the model is in train mode (dropout on); call model.eval() first.")
    if not isinstance(bands, dict):
        bands = make_bands(bands, n_bands=n_bands, levels=levels, wavelet=wavelet)
    batch_size = _check_positive(batch_size, "batch_size")
    x = _images(images, model)
    n_b = len(bands["masks"])
    t_all = None if target is None else _targets(target, len(x), model.fc.out_features)
    out = {k: [] for k in ("scores", "irrel", "gradient_input", "logit", "full", "target")}
    for s in range(0, len(x), batch_size):
        xb = x[s : s + batch_size].clone().requires_grad_(True)
        logits = model(xb)
        t = logits.argmax(1) if t_all is None else t_all[s : s + batch_size].to(x.device)
        (grad,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), xb)
        xb = xb.detach()
        with torch.no_grad():
            parts = band_parts(xb, bands)  # [B, n, 3, 32, 32]
            rel = torch.cat([parts.flatten(0, 1), xb])  # every band, then the whole image
            r, i = cd_propagate(model, rel, xb.repeat(n_b + 1, 1, 1, 1) - rel)
            tt = t.repeat(n_b + 1)[:, None]
            r = r.gather(1, tt)[:, 0].view(n_b + 1, -1)
            i = i.gather(1, tt)[:, 0].view(n_b + 1, -1)
            out["scores"].append(r[:n_b].T)
            out["irrel"].append(i[:n_b].T)
            out["full"].append(r[n_b])
            out["gradient_input"].append((parts * grad[None]).flatten(2).sum(2).T)
            out["logit"].append(logits.detach().gather(1, t[:, None])[:, 0])
            out["target"].append(t)
    res = {k: torch.cat(v).cpu().numpy() for k, v in out.items()}
    res["bias"] = res["logit"] - res["full"]
    res["interaction"] = res["full"] - res["scores"].sum(1)
    res.update(kind=bands["kind"], names=list(bands["names"]), ranges=np.asarray(bands["ranges"]))
    return res


def summarise(scores: dict) -> dict:
    """Means over images of a :func:`trim_scores` result: ``"mean_score"``,
    ``"mean_gradient_input"`` ``[B]`` (logits); ``"top_band_share"`` ``[B]``, the fraction of
    images whose largest CD band score is band b; ``"mean_logit"``, ``"mean_full"``,
    ``"mean_bias"``, ``"mean_abs_interaction"`` (floats, logits); ``"names"``, ``"ranges"``."""
    s = scores["scores"]
    top = np.bincount(s.argmax(1), minlength=s.shape[1]) / len(s)
    return {
        "mean_score": s.mean(0),
        "mean_gradient_input": scores["gradient_input"].mean(0),
        "top_band_share": top,
        "mean_logit": float(scores["logit"].mean()),
        "mean_full": float(scores["full"].mean()),
        "mean_bias": float(scores["bias"].mean()),
        "mean_abs_interaction": float(np.abs(scores["interaction"]).mean()),
        "names": list(scores["names"]),
        "ranges": scores["ranges"],
    }


def trim_study(model: PaperCNN, images, sizes: dict) -> dict:
    """Notebook 06's TRIM: both transforms on the first ``sizes["n_mean"]`` images.

    ``images``: uint8 ``[N, 32, 32, 3]`` test images (N ≥ ``n_mean``); ``sizes``: a
    :func:`profile`. Returns ``{"fourier": trim_scores(...), "wavelet": ..., "summary":
    {"fourier": summarise(...), "wavelet": ...}, "n_show", "images": uint8 [n_show, 32, 32, 3],
    "seconds"}``; the first ``n_show`` rows of each result are the images to show.
    """
    t0 = time.perf_counter()
    n = int(sizes["n_mean"])
    if len(images) < n:
        raise ValueError(
            f"need {n} images for n_mean, got {len(images)}; pass more or a smaller profile"
        )
    sub = images[:n]
    out = {
        "fourier": trim_scores(model, sub, "fourier", n_bands=sizes["n_fourier_bands"]),
        "wavelet": trim_scores(
            model, sub, "wavelet", levels=sizes["levels"], wavelet=sizes["wavelet"]
        ),
    }
    out["summary"] = {k: summarise(out[k]) for k in BAND_KINDS}
    out["n_show"] = int(sizes["n_show"])
    out["images"] = np.asarray(sub[: sizes["n_show"]])
    out["seconds"] = time.perf_counter() - t0
    return out
