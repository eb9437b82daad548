"""Figures of notebook 09 (DMM-MEN's global surrogate beside NNK): sampler traces, the fidelity
table as point ranges with bootstrap intervals, the top-pixel maps of each ranking, surrogate
fidelity and detection AUCs. Inputs are the plain data of :mod:`deepnnk.studies.global_surrogate`
and :mod:`deepnnk.studies.global_surrogate_fidelity`, keyed by target ("digits", "cifar")."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import ListedColormap

from deepnnk.figures.style import BOOK_WIDTH, chance_line, figsize, legend_outside, use

RANKING_LABELS = {
    "dmm_men": "DMM-MEN",
    "random": "random",
    "elastic_net": "elastic net",
    "nnk": "NNK",
}
TEST_LABELS = {
    "nullification": "nullification\n(accuracy drop)",
    "filling": "filling\n(share flipped to c)",
    "pathological": "pathological\n(share predicted c)",
}
SURROGATE_LABELS = {
    "dmm_mixture": "DMM-MEN mixture",
    "dmm_best": "DMM-MEN best comp.",
    "nnk_pixels": "NNK pixels",
    "nnk_features": "NNK features",
    "linear": "least squares",
    "elastic_net": "elastic net",
}
SCORE_LABELS = {
    "n_neighbours": "NNK\nneighbours",
    "residual": "NNK\nresidual",
    "nnk_disagreement": "NNK\ndisagreement",
    "knn_disagreement": "kNN\ndisagreement",
}
TARGET_LABELS = {"digits": "digits CNN (8×8)", "cifar": "CIFAR-10 CNN (32×32)"}
PALETTE = dict(zip(RANKING_LABELS.values(), sns.color_palette("colorblind", 4), strict=True))


def trace_figure(traces: dict, max_chains: int = 4):
    """Per target (rows): the log-likelihood and the dominant β's largest coefficient over the
    iterations, a line per chain (at most ``max_chains``; every ⌈T/2000⌉-th draw), burn-in
    shaded.
    ``traces[target]``: :func:`deepnnk.studies.global_surrogate.traces`."""
    use()
    fig, axes = plt.subplots(
        len(traces), 2, figsize=figsize(len(traces), row_height=2.6), squeeze=False
    )
    colours = sns.color_palette("colorblind", max_chains)
    for row, (name, tr) in enumerate(traces.items()):
        panels = ((tr["loglik"], "log-likelihood (nats)"),
                  (tr["beta"][..., 0], f"β of pixel column {int(tr['coef'][0])}"))  # fmt: skip
        for ax, (values, label) in zip(axes[row], panels, strict=True):
            step = max(1, values.shape[1] // 2000)  # ≤ 2,000 points a line keeps the PDF small
            t = np.arange(0, values.shape[1], step)
            for ch in range(min(max_chains, len(values))):
                ax.plot(t, values[ch, ::step], color=colours[ch], lw=0.6, alpha=0.8,
                        label=f"chain {ch + 1}")  # fmt: skip
            ax.axvspan(0, tr["burn_in"], color="0.9", zorder=0, label="burn-in")
            ax.set_ylabel(label)
            ax.set_title(TARGET_LABELS.get(name, name))
            if row == len(traces) - 1:
                ax.set_xlabel("iteration")
            lo, hi = np.percentile(values[:, tr["burn_in"] :], [0.5, 99.5])
            pad = 0.3 * (hi - lo + 1e-12)
            ax.set_ylim(lo - pad, hi + pad)  # the prior's first draws would flatten the rest
    legend_outside(fig, loc="below", bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def fidelity_frame(tables: dict) -> pd.DataFrame:
    """Long table (target, test, ranking, mean, lo, hi) of the fidelity tables."""
    rows = []
    for name, table in tables.items():
        for rk, tests in table.items():
            for test, v in tests.items():
                rows.append({"target": name, "test": test, "ranking": RANKING_LABELS.get(rk, rk),
                             "mean": v["mean"], "lo": v["lo"], "hi": v["hi"]})  # fmt: skip
    return pd.DataFrame(rows)


def fidelity_figure(tables: dict):
    """Point ranges: for each target (rows) and test (columns), each ranking's score on all
    images (dot) and its 95% bootstrap interval (bar)."""
    use()
    df = fidelity_frame(tables)
    targets, tests = list(tables), list(TEST_LABELS)
    fig, axes = plt.subplots(len(targets), 3, figsize=figsize(len(targets), BOOK_WIDTH),
                             squeeze=False, sharey=True)  # fmt: skip
    order = list(RANKING_LABELS.values())
    for i, name in enumerate(targets):
        for j, test in enumerate(tests):
            ax = axes[i, j]
            sub = df[(df.target == name) & (df.test == test)].set_index("ranking")
            for y, rk in enumerate(order):
                if rk not in sub.index:
                    continue
                r = sub.loc[rk]
                ax.plot([r["lo"], r["hi"]], [y, y], color=PALETTE[rk], lw=2.5)
                ax.plot(r["mean"], y, "o", color=PALETTE[rk], ms=6)
            ax.axvline(0, color="0.6", lw=0.8, zorder=0)
            ax.set_yticks(range(len(order)), order)
            ax.set_ylim(len(order) - 0.5, -0.5)
            if i == 0:
                ax.set_title(TEST_LABELS[test], fontsize=10)
            if j == 0:
                ax.set_ylabel(TARGET_LABELS.get(name, name))
    fig.tight_layout()
    return fig


def pixel_maps(background: np.ndarray, orders: dict, pixels: np.ndarray, title: str = ""):
    """One panel per ranking: ``background [H, W]`` (e.g. the mean class-c grey image) with that
    ranking's pixels (``orders[name]``: columns into ``pixels``, flat H·W positions) in red;
    when ``pixels`` is not every position, the candidate positions are tinted blue."""
    use()
    h, w = background.shape
    n = len(orders)
    fig, axes = plt.subplots(1, n, figsize=(BOOK_WIDTH, BOOK_WIDTH / n + 0.5), squeeze=False)
    for ax, (name, cols) in zip(axes[0], orders.items(), strict=True):
        mask = np.zeros(h * w)
        mask[np.asarray(pixels)[np.asarray(cols)]] = 1
        ax.imshow(background, cmap="gray", vmin=0, vmax=1)
        if len(pixels) < h * w:  # the surrogate's candidate positions, faintly
            cand = np.zeros(h * w)
            cand[np.asarray(pixels)] = 1
            ax.imshow(np.ma.masked_where(cand.reshape(h, w) == 0, cand.reshape(h, w)),
                      cmap="winter", alpha=0.25, vmin=0, vmax=1)  # fmt: skip
        overlay = np.ma.masked_where(mask.reshape(h, w) == 0, mask.reshape(h, w))
        ax.imshow(overlay, cmap=ListedColormap(["#e41a1c"]), alpha=0.8, vmin=0, vmax=1)
        ax.set_title(RANKING_LABELS.get(name, name), fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def surrogate_figure(fidelity: dict, metric: str = "r2"):
    """Held-out R² (or RMSE) of the log-odds for each surrogate, a bar per target."""
    use()
    rows = [
        {"target": TARGET_LABELS.get(t, t), "surrogate": label, "value": v[s][metric]}
        for t, v in fidelity.items()
        for s, label in SURROGATE_LABELS.items()
    ]
    df = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=figsize(1.3))
    sns.barplot(df, y="surrogate", x="value", hue="target", ax=ax, palette="colorblind")
    ax.axvline(0, color="0.5", lw=0.8)
    if metric == "r2":
        lo = max(-1.0, min(0.0, float(df["value"].min())))
        ax.set_xlim(lo - 0.05, 1.0)  # a negative R² below −1 is cut: "worse than the mean"
    ax.set_xlabel("held-out R² of the log-odds" if metric == "r2" else "held-out RMSE (log-odds)")
    ax.set_ylabel("")
    legend_outside(ax, loc="below", bbox_to_anchor=(0.5, -0.2))
    fig.tight_layout()
    return fig


def detection_figure(detection: dict):
    """AUC of each NNK score at telling flipped filling images from clean class-c images, a bar
    per target; chance at 0.5."""
    use()
    rows = [{"target": TARGET_LABELS.get(t, t), "score": SCORE_LABELS.get(k, k), "AUC": v}
            for t, d in detection.items() for k, v in d["auc"].items()]  # fmt: skip
    df = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=figsize(1))
    sns.barplot(df, x="score", y="AUC", hue="target", ax=ax, palette="colorblind")
    chance_line(ax, 0.5)
    ax.set_ylim(0, 1)
    ax.set_xlabel("")
    legend_outside(ax)
    fig.tight_layout()
    return fig
