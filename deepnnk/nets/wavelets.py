"""A differentiable 2-D orthogonal discrete wavelet transform (DWT) in torch, periodic boundary.

The transform is built from ONE low-pass filter ``h0`` (length L, even), so the filter can be
learned (adaptive wavelet distillation, :mod:`deepnnk.studies.awd`). The high-pass filter is its
quadrature mirror ``h1[n] = (−1)^n h0[L−1−n]``. With ``h0 = pywt.Wavelet(name).rec_lo`` the
coefficients equal ``pywt.wavedec2(x, name, mode="periodization")`` (tested for db1-db4).

One analysis step along an axis of length N (even) reads the signal periodically,

    a[k] = Σ_n h0[n] x[(2k + n − L/2 + 1) mod N],    d[k] = Σ_n h1[n] x[(same index)],

and the synthesis step is its exact adjoint (transpose). For an orthogonal ``h0`` (unit norm,
orthogonal to its even shifts: see :func:`validity_penalties`) the transform is orthogonal:
energy is preserved and the inverse reconstructs perfectly. For any other filter the inverse
is still the adjoint, so gradients with respect to ``h0`` are exact, but reconstruction is not.

>>> h0 = torch.tensor(pywt.Wavelet("db3").rec_lo)  # doctest: +SKIP
>>> approx, details = dwt2(images, h0, levels=3)  # doctest: +SKIP
>>> images_back = idwt2(approx, details, h0)  # doctest: +SKIP

Shapes: images ``[..., H, W]`` (any leading dims, e.g. ``[N, C, H, W]``); ``approx``
``[..., H/2^J, W/2^J]``; ``details[j-1]`` the level-j details ``[..., 3, H/2^j, W/2^j]``, level 1
(finest) first, the three orientations in pywt's order (cH, cV, cD): cH is high-pass along H
(rows) and low-pass along W, cV the converse, cD high-pass along both. :func:`pack` lays all the
coefficients out as one ``[..., H, W]`` array (the approximation in the top-left corner), which
is how :mod:`deepnnk.studies.trim` masks wavelet bands.
"""

from __future__ import annotations

import math
import operator

import torch
from torch.nn import functional as F

ORIENTATIONS = ("H", "V", "D")  # pywt's (cH, cV, cD)


# --------------------------------------------------------------------------- checks


def check_filter(h0, *, like: torch.Tensor | None = None) -> torch.Tensor:
    """``h0`` → a 1-D float tensor of even length ≥ 2 (on ``like``'s device and dtype)."""
    h = h0 if isinstance(h0, torch.Tensor) else torch.as_tensor(h0)
    if h.ndim != 1 or h.numel() < 2 or h.numel() % 2:
        raise ValueError(
            f"h0 must be a 1-D low-pass filter of even length >= 2 (e.g. "
            f"pywt.Wavelet('db3').rec_lo, length 6), got shape {tuple(h.shape)}"
        )
    if not (h.is_floating_point() or h.dtype in (torch.int32, torch.int64)):
        raise ValueError(f"h0 must hold real numbers, got dtype {h.dtype}")
    if like is not None:
        h = h.to(device=like.device, dtype=like.dtype)
    elif not h.is_floating_point():
        h = h.double()
    if not bool(torch.isfinite(h).all()):
        raise ValueError("h0 contains NaN or inf; pass a finite filter (e.g. db3's rec_lo).")
    return h


def check_levels(levels, height: int, width: int) -> int:
    """``levels`` if a positive int with ``2^levels`` dividing both image sides, else ValueError."""
    if isinstance(levels, bool):
        raise ValueError(f"levels must be a positive int, got {levels!r}")
    try:
        levels = operator.index(levels)
    except TypeError:
        raise ValueError(f"levels must be a positive int, got {levels!r}") from None
    if levels < 1:
        raise ValueError(f"levels must be a positive int, got {levels}")
    step = 2**levels
    if height % step or width % step:
        most = min(_twos(height), _twos(width))
        raise ValueError(
            f"levels={levels} needs both image sides divisible by 2^{levels} = {step}, got "
            f"{height}×{width}; use levels <= {most} for this size."
        )
    return levels


def _twos(n: int) -> int:
    """How many times 2 divides ``n`` (n ≥ 1)."""
    k = 0
    while n % 2 == 0 and n > 0:
        n //= 2
        k += 1
    return k


def _check_images(x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"images must be a torch tensor [..., H, W], got {type(x).__name__}")
    if x.ndim < 2 or not x.is_floating_point():
        raise ValueError(
            f"images must be a float tensor [..., H, W], got shape {tuple(x.shape)} and dtype "
            f"{x.dtype}"
        )
    if not bool(torch.isfinite(x).all()):
        raise ValueError("images contain NaN or inf; pass finite values.")
    return x


# --------------------------------------------------------------------------- 1-D steps


def quadrature_mirror(h0: torch.Tensor) -> torch.Tensor:
    """The high-pass filter ``h1[n] = (−1)^n h0[L−1−n]`` of a low-pass ``h0`` (``[L]``)."""
    signs = torch.ones_like(h0)
    signs[1::2] = -1
    return signs * h0.flip(0)


def _periodic_index(n: int, length: int, device) -> torch.Tensor:
    """Indices ``(k − L/2 + 1) mod n`` for k < n + L − 1: the periodic read of one step."""
    return (torch.arange(n + length - 1, device=device) - length // 2 + 1) % n


def _analysis_last(x: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """One analysis step along the last dim: ``[..., n]`` → ``[..., 2, n/2]`` (low, high)."""
    n, length = x.shape[-1], bank.shape[-1]
    lead = x.shape[:-1]
    xp = x.reshape(-1, 1, n)[..., _periodic_index(n, length, x.device)]
    y = F.conv1d(xp, bank[:, None], stride=2)  # correlation with h0 and h1: [B, 2, n/2]
    return y.reshape(*lead, 2, n // 2)


def _synthesis_last(y: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """The adjoint of :func:`_analysis_last`: ``[..., 2, n/2]`` → ``[..., n]``."""
    half, length = y.shape[-1], bank.shape[-1]
    n = 2 * half
    lead = y.shape[:-2]
    full = F.conv_transpose1d(y.reshape(-1, 2, half), bank[:, None], stride=2)  # [B, 1, n+L-2]
    idx = _periodic_index(n, length, y.device)[: n + length - 2]
    out = full.new_zeros(full.shape[0], 1, n).index_add(2, idx, full)  # fold the wrap back
    return out.reshape(*lead, n)


def _bank(h0: torch.Tensor) -> torch.Tensor:
    return torch.stack([h0, quadrature_mirror(h0)])  # [2, L]


def _analysis_2d(x: torch.Tensor, bank: torch.Tensor):
    """One 2-D level: ``[..., h, w]`` → approx ``[..., h/2, w/2]``, details
    ``[..., 3, h/2, w/2]``."""
    y = _analysis_last(x, bank)  # along W: [..., h, 2, w/2]
    y = _analysis_last(y.movedim(-3, -1), bank)  # along H: [..., 2(W), w/2, 2(H), h/2]
    y = y.movedim(-3, -1)  # [..., 2(W), 2(H), h/2, w/2]
    # (W band, H band): approx = (lo, lo); cH = (lo W, hi H); cV = (hi W, lo H); cD = (hi, hi)
    details = torch.stack([y[..., 0, 1, :, :], y[..., 1, 0, :, :], y[..., 1, 1, :, :]], dim=-3)
    return y[..., 0, 0, :, :], details


def _synthesis_2d(approx: torch.Tensor, details: torch.Tensor, bank: torch.Tensor):
    """The adjoint of :func:`_analysis_2d`."""
    lo_w = torch.stack([approx, details[..., 0, :, :]], dim=-3)  # W low: (H lo, H hi)
    hi_w = torch.stack([details[..., 1, :, :], details[..., 2, :, :]], dim=-3)
    y = torch.stack([lo_w, hi_w], dim=-4)  # [..., 2(W), 2(H), h/2, w/2]
    y = _synthesis_last(y.movedim(-1, -3), bank)  # along H: [..., 2(W), w/2, h]
    return _synthesis_last(y.movedim(-1, -3), bank)  # along W: [..., h, 2(W), w/2] → [..., h, w]


# --------------------------------------------------------------------------- public


def dwt2(x: torch.Tensor, h0, levels: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The J-level 2-D periodic DWT of ``x`` ``[..., H, W]`` with low-pass filter ``h0`` ``[L]``.

    Returns ``(approx, details)``: ``approx`` ``[..., H/2^J, W/2^J]``; ``details`` a list of J
    tensors, ``details[j-1]`` ``[..., 3, H/2^j, W/2^j]`` (orientations cH, cV, cD), finest
    first. ``h0`` is cast to ``x``'s dtype and device; differentiable in ``x`` and ``h0``.
    Units: those of ``x`` (the transform is orthogonal for an orthogonal ``h0``).
    """
    x = _check_images(x)
    levels = check_levels(levels, x.shape[-2], x.shape[-1])
    bank = _bank(check_filter(h0, like=x))
    details = []
    approx = x
    for _ in range(levels):
        approx, d = _analysis_2d(approx, bank)
        details.append(d)
    return approx, details


def idwt2(approx: torch.Tensor, details, h0) -> torch.Tensor:
    """The inverse (adjoint) of :func:`dwt2`: ``(approx, details)`` → ``[..., H, W]``."""
    if not isinstance(approx, torch.Tensor) or not approx.is_floating_point():
        raise ValueError("approx must be a float torch tensor [..., h, w] from dwt2")
    details = list(details)
    if not details:
        raise ValueError("details is empty; pass the list dwt2 returned (one tensor per level).")
    bank = _bank(check_filter(h0, like=approx))
    x = approx
    for j, d in reversed(list(enumerate(details))):
        if d.shape[-3] != 3 or d.shape[-2:] != x.shape[-2:]:
            raise ValueError(
                f"details[{j}] must be [..., 3, {x.shape[-2]}, {x.shape[-1]}] to match the "
                f"coarser level, got {tuple(d.shape)}; pass dwt2's output unchanged."
            )
        x = _synthesis_2d(x, d, bank)
    return x


def pack(approx: torch.Tensor, details) -> torch.Tensor:
    """All coefficients in one ``[..., H, W]`` array: ``approx`` top-left, then each level.

    Level j (block side ``s = H/2^j``) puts cV at ``[0:s, s:2s]``, cH at ``[s:2s, 0:s]`` and
    cD at ``[s:2s, s:2s]``, the usual pyramid layout (as ``pywt.coeffs_to_array``).
    """
    out = approx
    for d in reversed(list(details)):
        top = torch.cat([out, d[..., 1, :, :]], dim=-1)
        bottom = torch.cat([d[..., 0, :, :], d[..., 2, :, :]], dim=-1)
        out = torch.cat([top, bottom], dim=-2)
    return out


def unpack(packed: torch.Tensor, levels: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The inverse of :func:`pack`: ``[..., H, W]`` → ``(approx, details)`` as :func:`dwt2`."""
    levels = check_levels(levels, packed.shape[-2], packed.shape[-1])
    details = []
    h, w = packed.shape[-2:]
    for j in range(1, levels + 1):
        sh, sw = h >> j, w >> j
        block = packed[..., : 2 * sh, : 2 * sw]
        details.append(
            torch.stack([block[..., sh:, :sw], block[..., :sh, sw:], block[..., sh:, sw:]], dim=-3)
        )
    return packed[..., : h >> levels, : w >> levels], details


def band_layout(height: int, width: int, levels: int) -> torch.Tensor:
    """Which band each packed coefficient belongs to: int ``[H, W]``, 0 = approximation,
    j = the level-j details (all three orientations), j = 1 the finest."""
    levels = check_levels(levels, height, width)
    lab = torch.zeros(height, width, dtype=torch.long)
    for j in range(1, levels + 1):  # fine to coarse: level j owns [:2s, :2s] minus [:s, :s]
        lab[: 2 * (height >> j), : 2 * (width >> j)] = j
    lab[: height >> levels, : width >> levels] = 0
    return lab


def dwt2_packed(x: torch.Tensor, h0, levels: int) -> torch.Tensor:
    """:func:`dwt2` then :func:`pack`: ``[..., H, W]`` → coefficients ``[..., H, W]``."""
    return pack(*dwt2(x, h0, levels))


def idwt2_packed(c: torch.Tensor, h0, levels: int) -> torch.Tensor:
    """:func:`unpack` then :func:`idwt2`: packed coefficients ``[..., H, W]`` → images."""
    c = _check_images(c)
    return idwt2(*unpack(c, levels), h0)


# --------------------------------------------------------------------------- validity


def frequency_response(h0, n_freq: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ω, |H(ω)|)`` on ``n_freq`` points of [0, 2π), ``H(ω) = Σ_n h0[n] e^{−iωn}``."""
    h = check_filter(h0)
    omega = torch.arange(n_freq, dtype=h.dtype, device=h.device) * (2 * math.pi / n_freq)
    return omega, torch.fft.fft(h, n=n_freq).abs()


def validity_penalties(h0, n_freq: int = 64) -> dict[str, torch.Tensor]:
    """The wavelet-validity penalties of AWD (Ha et al. 2021), each a differentiable scalar ≥ 0.

    - ``"sum"``: ``(Σ h0 − √2)²`` (a low-pass scaling filter: H(0) = √2);
    - ``"norm"``: ``(‖h0‖₂ − 1)²``;
    - ``"cmf"``: the conjugate-mirror condition, mean over ``n_freq`` (even) frequencies
      ω_k = 2πk/n_freq of ``(|H(ω)|² + |H(ω+π)|² − 2)²``;
    - ``"conv"``: orthogonality to even shifts, ``Σ_m (Σ_n h0[n] h0[n+2m] − δ_m)²``.

    All four are 0 (to float rounding) for any orthogonal Daubechies filter; "cmf" and "conv"
    are two faces of the same condition (the first in frequency, the second in time).
    """
    h = check_filter(h0)
    if n_freq < 2 or n_freq % 2:
        raise ValueError(f"n_freq must be an even int >= 2, got {n_freq}")
    power = torch.fft.fft(h, n=n_freq).abs() ** 2
    half = n_freq // 2
    cmf = ((power[:half] + power[half:] - 2) ** 2).mean()
    length = h.numel()
    # the full autocorrelation, lags −(L−1)..(L−1); keep the even lags
    auto = F.conv1d(h.view(1, 1, -1), h.view(1, 1, -1), padding=length - 1)[0, 0]
    lags = torch.arange(-(length - 1), length, device=h.device)
    even = auto[lags % 2 == 0]
    delta = (lags[lags % 2 == 0] == 0).to(h.dtype)
    return {
        "sum": (h.sum() - math.sqrt(2)) ** 2,
        "norm": (h.norm() - 1) ** 2,
        "cmf": cmf,
        "conv": ((even - delta) ** 2).sum(),
    }


def validity_residuals(h0) -> dict[str, float]:
    """Plain-number residuals of the conditions in :func:`validity_penalties` (0 = valid):
    ``"sum"``: Σh0 − √2; ``"norm"``: ‖h0‖ − 1; ``"cmf"``: max_ω ||H(ω)|² + |H(ω+π)|² − 2|
    (on 256 frequencies); ``"conv"``: max_m |Σ_n h0[n] h0[n+2m] − δ_m|."""
    h = check_filter(h0).detach().double()
    power = torch.fft.fft(h, n=256).abs() ** 2
    length = h.numel()
    auto = F.conv1d(h.view(1, 1, -1), h.view(1, 1, -1), padding=length - 1)[0, 0]
    lags = torch.arange(-(length - 1), length)
    even = lags % 2 == 0
    return {
        "sum": float(h.sum() - math.sqrt(2)),
        "norm": float(h.norm() - 1),
        "cmf": float((power[:128] + power[128:] - 2).abs().max()),
        "conv": float((auto[even] - (lags[even] == 0).double()).abs().max()),
    }
