"""Figures of notebook 08's test of NNK's geometry against the network's own partition, drawn
from :mod:`deepnnk.studies.splinecam` (plain arrays in, a matplotlib figure out).

- :func:`window_figure`: the logits along one exact window, its pieces marked;
- :func:`claim_figure`: region density and boundary crossings, NNK-selected against pruned;
- :func:`relations_figure`: each query's mean region density against its NNK residual;
- :func:`training_figure`: region density and LOO-NNK error over training, both models.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from deepnnk.figures import style

GROUP_COLOURS = {"NNK-selected": "tab:orange", "pruned": "tab:grey"}
MODEL_COLOURS = {"regularised": "tab:blue", "overfit": "tab:red"}


def window_figure(breaks, logit_intercept, logit_slope, length: float, class_names, top: int = 3):
    """The logits along one walked window: ``breaks [P+1]`` in t ∈ [0, 1],
    ``logit_intercept``/``logit_slope [P, K]`` (the pieces' exact affine maps in t), ``length``
    the window's length (‖Δx‖₂, pixels/255). The ``top`` classes with the largest logit at the
    start are drawn as exact polylines through the breaks, relative to their value at the query;
    thin lines mark every break."""
    style.use()
    breaks = np.asarray(breaks, dtype=np.float64)
    c, a = np.asarray(logit_intercept), np.asarray(logit_slope)
    # Each piece's affine map evaluated at its own two ends: exact and continuous.
    t = np.concatenate([breaks[:-1, None], breaks[1:, None]], axis=1)
    vals = c[:, None, :] + a[:, None, :] * t[:, :, None]  # [P, 2, K]
    order = np.argsort(-vals[0, 0])[:top]
    fig, ax = plt.subplots(figsize=style.figsize(1))
    x = t.reshape(-1) * length
    # Relative to the query: over a short window the logits move little against their size.
    for cls in order:
        ax.plot(x, vals[:, :, cls].reshape(-1) - vals[0, 0, cls], lw=1.5, label=class_names[cls])
    for b in breaks[1:-1]:
        ax.axvline(b * length, color="0.75", lw=0.4, zorder=0)
    ax.set_xlabel("distance from the query along the window (‖Δx‖₂, pixels/255)")
    ax.set_ylabel("logit − logit at the query")
    ax.set_title(f"{len(breaks) - 1} exact linear pieces (grey lines: their ends)")
    style.legend_outside(ax, "right", title="class")
    fig.tight_layout()
    return fig


def _long(values, selected, name: str) -> pd.DataFrame:
    sel = np.asarray(selected, dtype=bool)
    group = np.where(sel, "NNK-selected", "pruned").reshape(-1)
    return pd.DataFrame({name: np.asarray(values, dtype=np.float64).reshape(-1), "group": group})


def claim_figure(density, endpoints, sampled, selected):
    """Left: the distribution of regions crossed per unit length (``density [Q, k]``) for the
    NNK-selected and pruned candidates (``selected [Q, k]``). Right: the share of segments whose
    far end the network classes differently from the query (``endpoints [Q, k]``: they must
    cross the boundary) and whose sampled path leaves the query's class (``sampled [Q, k]``)."""
    style.use()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=style.figsize(1), width_ratios=[3, 2])
    df = _long(density, selected, "density")
    sns.boxenplot(data=df, x="group", y="density", hue="group", palette=GROUP_COLOURS, ax=ax0)
    ax0.set_xlabel("")
    ax0.set_ylabel("regions crossed per unit length")
    sel = np.asarray(selected, dtype=bool)
    rows = []
    for test, values in (("far end differs", endpoints), ("sampled path leaves", sampled)):
        v = np.asarray(values, dtype=bool)
        for g, mask in (("NNK-selected", sel), ("pruned", ~sel)):
            rows.append({"test": test, "group": g, "share": v[mask].mean() if mask.any() else 0})
    sns.barplot(
        data=pd.DataFrame(rows), x="test", y="share", hue="group", palette=GROUP_COLOURS, ax=ax1
    )
    ax1.set_xlabel("")
    ax1.set_ylabel("share of segments crossing the boundary")
    ax1.set_ylim(0, 1)
    ax1.tick_params(axis="x", labelsize=8)
    if ax1.get_legend() is not None:  # one shared legend below both panels
        ax1.get_legend().remove()
    style.legend_outside(fig, "below")
    fig.tight_layout()
    return fig


def relations_figure(mean_density, residual, correct):
    """Each query's mean region density (over its k windows) against its NNK residual, marked by
    whether NNK's prediction is correct (``correct [Q]`` bool)."""
    style.use()
    fig, ax = plt.subplots(figsize=style.figsize(1, width=5.0))
    df = pd.DataFrame(
        {
            "density": np.asarray(mean_density, dtype=np.float64),
            "residual": np.asarray(residual, dtype=np.float64),
            "NNK prediction": np.where(np.asarray(correct, bool), "correct", "wrong"),
        }
    )
    sns.scatterplot(
        data=df, x="residual", y="density", hue="NNK prediction", style="NNK prediction",
        palette={"correct": "tab:green", "wrong": "tab:red"}, ax=ax,
    )  # fmt: skip
    ax.set_xlabel("NNK residual (kernel space)")
    ax.set_ylabel("mean regions per unit length")
    style.legend_outside(ax, "right")
    fig.tight_layout()
    return fig


def training_figure(training: dict, loo: dict):
    """Left: the mean region density of the same windows at each epoch, per model
    (``training[model][epoch]["mean_density"]``). Right: each checkpoint's LOO-NNK error
    (solid) and the network's test error (dashed) (``loo[model][epoch]``)."""
    style.use()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=style.figsize(1))
    for model, colour in MODEL_COLOURS.items():
        epochs = sorted(int(e) for e in training[model])
        dens = [training[model][e]["mean_density"] for e in epochs]
        ax0.plot(epochs, dens, "o-", color=colour, label=model)
        le = sorted(int(e) for e in loo[model])
        ax1.plot(le, [loo[model][e]["loo_error"] for e in le], "o-", color=colour, label=model)
        ax1.plot(
            le, [loo[model][e]["net_test_error"] for e in le], "s--", color=colour, alpha=0.6,
            label=f"{model}: network test",
        )  # fmt: skip
    ax0.set_xlabel("epoch")
    ax0.set_ylabel("mean regions per unit length")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("error")
    for ax in (ax0, ax1):
        ax.set_xticks(sorted({int(e) for m in training for e in training[m]}))
    ax1.set_title("LOO-NNK (solid), network test (dashed)", fontsize=9)
    style.legend_outside(fig, "below")
    fig.tight_layout()
    return fig
