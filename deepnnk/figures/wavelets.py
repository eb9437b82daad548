"""Figures of TRIM and AWD (notebook 06, issue 15 items 3 and 7), drawn from the plain data of
:mod:`deepnnk.studies.trim` and :mod:`deepnnk.studies.awd`:

- :func:`trim_bands`: a few images, each above its CD (and gradient × input) score per band,
  and the mean over all the scored images in the last column;
- :func:`learned_filter`: the learned low-pass filter against db3, its taps and |H(ω)|;
- :func:`awd_loss_curves`: the AWD loss by term over the Adam steps.

Each function applies the book's style, returns a matplotlib Figure and neither saves nor
shows it (``deepnnk.figures.output.publish`` does).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from deepnnk.figures import style

CD_COLOUR = "#4c72b0"
GRADIENT_COLOUR = "#c44e52"
LEARNED_COLOUR = style.METHOD_COLOURS["NNK"]
DB3_COLOUR = "0.35"


def _bars(ax, cd, grad, names, *, labels: bool):
    x = np.arange(len(cd))
    ax.bar(x - 0.2, cd, 0.4, color=CD_COLOUR, label="CD (relevant logit)")
    ax.bar(x + 0.2, grad, 0.4, color=GRADIENT_COLOUR, label="gradient × input")
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_xticks(x)
    # band numbers, not names: eight rotated names per narrow panel overlap unreadably; the
    # legend's title maps each number to its band (see :func:`_band_key`)
    ax.set_xticklabels([str(i + 1) for i in x] if labels else [""] * len(x), fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(axis="y", alpha=0.3)


def _band_key(names, per_line: int = 4) -> str:
    """ "band 1 = …, 2 = …" over lines of ``per_line`` bands, for the figure's x label."""
    items = [f"{i + 1} = {name}" for i, name in enumerate(names)]
    lines = ["; ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return "bands, low → high frequency: " + "\n".join(lines)


def trim_bands(study: dict, kind: str = "fourier", *, class_names=None):
    """TRIM band scores of a :func:`~deepnnk.studies.trim.trim_study` result for one ``kind``
    (``"fourier"`` or ``"wavelet"``).

    Top row: the first ``study["n_show"]`` images (uint8 ``[n, 32, 32, 3]``), titled with the
    target class (``class_names``: optional list of 10 names). Bottom row: per image, the CD
    relevant logit of each band beside gradient × input on that band (logits); the last column
    is the mean over all the scored images. 2 × (n_show + 1) axes; the bands run from low
    frequency (left) to high.
    """
    if kind not in ("fourier", "wavelet"):
        raise ValueError(f"kind must be 'fourier' or 'wavelet', got {kind!r}")
    style.use()
    res, summary = study[kind], study["summary"][kind]
    n = int(study["n_show"])
    names = [str(s) for s in res["names"]]
    fig, axes = plt.subplots(
        2,
        n + 1,
        figsize=style.figsize(1, row_height=4.2),
        height_ratios=(1.0, 1.4),
        squeeze=False,
        layout="constrained",
    )
    for i in range(n):
        ax = axes[0, i]
        ax.imshow(np.asarray(study["images"][i]), interpolation="nearest")
        t = int(res["target"][i])
        ax.set_title(class_names[t] if class_names is not None else f"class {t}", fontsize=9)
        ax.set_axis_off()
        _bars(axes[1, i], res["scores"][i], res["gradient_input"][i], names, labels=True)
    axes[0, n].set_axis_off()
    axes[0, n].text(
        0.5,
        0.5,
        f"mean over\n{len(res['scores'])} images",
        ha="center",
        va="center",
        transform=axes[0, n].transAxes,
        fontsize=9,
    )
    _bars(axes[1, n], summary["mean_score"], summary["mean_gradient_input"], names, labels=True)
    axes[1, 0].set_ylabel("logit of the target")
    fig.suptitle(f"TRIM on {kind} bands (low → high frequency)", fontsize=10)
    handles, labels = axes[1, 0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncol=2,
        frameon=False,
        title=_band_key(names),
        title_fontsize=8,
    )
    return fig


def learned_filter(result: dict, n_freq: int = 256):
    """The learned low-pass filter ``result["h0"]`` against ``result["h0_init"]`` (db3), from a
    :func:`~deepnnk.studies.awd.train_awd` or ``awd_study`` result: left, the taps; right,
    ``|H(ω)|`` on [0, π] with the ideal value √2 at ω = 0 marked. 2 axes."""
    style.use()
    h, h_init = np.asarray(result["h0"], float), np.asarray(result["h0_init"], float)
    fig, (taps, freq) = plt.subplots(1, 2, figsize=style.figsize(1), layout="constrained")
    n = np.arange(len(h))
    taps.plot(n, h_init, "o--", color=DB3_COLOUR, label="db3 (start)")
    taps.plot(n, h, "o-", color=LEARNED_COLOUR, label="learned")
    taps.axhline(0, color="0.6", lw=0.8)
    taps.set_title(f"max |learned − db3| = {np.abs(h - h_init).max():.3g}", fontsize=9)
    taps.set_xlabel("tap n")
    taps.set_ylabel("h0[n]")
    style.integer_ticks(taps)
    omega = np.arange(n_freq // 2 + 1) * (2 * np.pi / n_freq)
    for filt, kw in ((h_init, dict(ls="--", color=DB3_COLOUR)), (h, dict(color=LEARNED_COLOUR))):
        freq.plot(omega, np.abs(np.fft.fft(filt, n_freq))[: len(omega)], **kw)
    freq.axhline(np.sqrt(2), color="0.6", lw=0.8, ls=":")
    freq.set_xlim(0, np.pi)
    freq.set_xticks([0, np.pi / 2, np.pi])
    freq.set_xticklabels(["0", "π/2", "π"])
    freq.set_xlabel("ω (radians/sample)")
    freq.set_ylabel("|H(ω)|")
    for ax in (taps, freq):
        ax.grid(alpha=0.3)
    handles, labels = taps.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False)
    return fig


def awd_loss_curves(result: dict):
    """AWD's loss by term over the Adam steps, from a ``train_awd`` / ``awd_study`` result's
    ``"history"``. Left: the total and the weighted-in terms that drive the filter (wave
    sparsity, TRIM attributions), linear. Right: reconstruction MSE and the four validity
    penalties, log scale (they start near 0 for db3). 2 axes."""
    style.use()
    hist = result["history"]
    steps = np.arange(1, len(hist["total"]) + 1)
    fig, (lin, log) = plt.subplots(1, 2, figsize=style.figsize(1), layout="constrained")
    linear = (("total", "total"), ("wave", "mean |detail coeff.|"), ("attr", "mean |TRIM attr.|"))
    for n, (key, label) in enumerate(linear):
        lin.plot(steps, hist[key], label=label, lw=1.2, color=f"C{n}")
    for n, key in enumerate(("reconstruction", "sum", "norm", "cmf", "conv"), start=len(linear)):
        # a penalty at exactly 0 (db3 at step 1) would vanish from a log axis: floor it
        log.plot(
            steps, np.maximum(np.asarray(hist[key], float), 1e-16), label=key, lw=1.2, color=f"C{n}"
        )
    log.set_yscale("log")
    for ax in (lin, log):
        ax.set_xlabel("Adam step")
        ax.grid(alpha=0.3)
        style.integer_ticks(ax)
    lin.set_ylabel("loss term")
    log.set_ylabel("penalty (unweighted)")
    (h1, l1), (h2, l2) = lin.get_legend_handles_labels(), log.get_legend_handles_labels()
    fig.legend(h1 + h2, l1 + l2, loc="outside lower center", ncol=4, frameon=False)
    return fig
