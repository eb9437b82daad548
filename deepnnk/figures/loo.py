"""Figures of notebook 02 (LOO generalization), drawn from the tidy table of
:func:`deepnnk.studies.loo.sweep`: one row per (model, epoch, k).

Every function applies the book's style (:mod:`deepnnk.figures.style`): book width, integer
epoch ticks, legends below the panels (never over the data); the scatter is seaborn's.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from deepnnk.figures import style
from deepnnk.studies.loo import MODELS
from deepnnk.studies.loo_report import ESTIMATORS, column, everywhere, pearson, select

MODEL_COLORS = {"underparameterised": "#55a868", "regularised": "#4c72b0", "overfit": "#c44e52"}
K_STYLES = ("-", "--", ":", "-.")
_C = style.METHOD_COLOURS

# (column, label, style) for the two sides of the paper's figure; the SVM's label carries its
# flag (plot_error_curves(svm_label=...)).
TRAIN_SIDE = (
    ("loo_nnk", "NNK", dict(color=_C["NNK"], ls="-", marker="o", ms=3)),
    ("loo_knn", "kNN", dict(color=_C["kNN"], ls="--", marker="s", ms=3)),
    ("net_train", "network", dict(color=_C["network"], ls=":", lw=2)),
    ("svm_train", "SVM", dict(color=_C["SVM"], ls="none", marker="^", ms=7)),
)
TEST_SIDE = (
    ("test_nnk", "NNK", dict(color=_C["NNK"], ls="-", marker="o", ms=3)),
    ("test_knn", "kNN", dict(color=_C["kNN"], ls="--", marker="s", ms=3)),
    ("net_test", "network", dict(color=_C["network"], ls=":", lw=2)),
    ("svm_test", "SVM", dict(color=_C["SVM"], ls="none", marker="^", ms=7)),
)


def _models(rows, models=None):
    present = {r["model"] for r in rows}
    return [m for m in (models or MODELS) if m in present]


def _curve(rows, model, k, name):
    sub = sorted(select(rows, model=model, k=k), key=lambda r: r["epoch"])
    x = np.array([r["epoch"] for r in sub])
    y = column(sub, name)
    ok = np.isfinite(y)
    return x[ok], y[ok]


def plot_error_curves(
    rows: list[dict], k: int, models=None, title: str | None = None, svm_label: str | None = None
):
    """The paper's figure: error against epoch, one column per model; top row the training
    side (LOO-NNK, LOO-kNN, network train error, SVM held-out folds), bottom row the test side
    (NNK, kNN, network test error, SVM on the test set). ``svm_label``: the SVM's legend entry
    (its flag, :func:`deepnnk.studies.loo_report.svm_flag`)."""
    style.use()
    models = _models(rows, models)
    fig, axes = plt.subplots(
        2,
        len(models),
        figsize=style.figsize(2, row_height=2.6),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    for j, model in enumerate(models):
        for i, side in enumerate((TRAIN_SIDE, TEST_SIDE)):
            ax = axes[i, j]
            for name, label, kw in side:
                x, y = _curve(rows, model, k, name)
                if len(x):
                    if name.startswith("svm") and svm_label:
                        label = f"SVM ({svm_label})"
                    ax.plot(x, y, label=label, **kw)
            ax.grid(alpha=0.3)
            style.integer_ticks(ax)
            if i == 0:
                ax.set_title(model, fontsize=10)
            if j == 0:
                ax.set_ylabel("training-set error" if i == 0 else "test-set error")
            if i == 1:
                ax.set_xlabel("epoch")
    fig.suptitle(title or f"Error vs epoch, k = {k}")
    fig.tight_layout()
    style.legend_outside(fig, "below", ncol=3)
    return fig


def plot_estimator_scatter(
    rows: list[dict],
    k: int,
    calibration: dict | None = None,
    estimators=("loo_nnk", "loo_knn", "net_train", "test_nnk"),
    against: str = "net_test",
):
    """Each estimator (x) against the network's true test error (y) over all checkpoints, one
    seaborn scatter per estimator, coloured by model, with Pearson's r in the title; the
    diagonal y = x, and, for the estimators in ``calibration``
    (:func:`deepnnk.studies.loo_report.calibrations`), the calibrated line y = x + c. Only
    estimators measured at every checkpoint are drawn (not the SVM)."""
    import seaborn as sns

    style.use()
    sub = select(rows, k=k)
    names = everywhere(sub, estimators)
    ncol = 2 if len(names) > 1 else 1
    nrow = int(np.ceil(len(names) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=style.figsize(nrow, row_height=3.1), squeeze=False)
    models = _models(sub)
    hue = [r["model"] for r in sub]
    truth = column(sub, against)
    for ax, name in zip(axes.flat, names, strict=False):
        x = column(sub, name)
        sns.scatterplot(
            x=x,
            y=truth,
            hue=hue,
            hue_order=models,
            palette=MODEL_COLORS,
            s=22,
            ax=ax,
            legend=False,
        )
        lo = min(np.nanmin(x), np.nanmin(truth))
        hi = max(np.nanmax(x), np.nanmax(truth))
        grid = np.array([lo, hi])
        ax.plot(grid, grid, color="0.4", lw=1, ls="--", label="y = x")
        title = f"{ESTIMATORS.get(name, name)}\nr = {pearson(sub, name, against):.3f}"
        if calibration and name in calibration:
            c = calibration[name]["offset"]
            ax.plot(grid, grid + c, color="0.1", lw=1.2, label="calibrated: y = x + c")
            title += f", c = {c:+.3f}"
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("estimate")
        ax.set_ylabel("network test error")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    handles = [
        Line2D([], [], ls="none", marker="o", color=MODEL_COLORS.get(m), label=m) for m in models
    ]
    handles += [
        Line2D([], [], color="0.4", lw=1, ls="--", label="y = x"),
        Line2D([], [], color="0.1", lw=1.2, label="y = x + c (one offset)"),
    ]
    fig.suptitle(f"Estimates against the network's test error (all checkpoints, k = {k})")
    fig.tight_layout()
    fig.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=3,
        frameon=False,
    )
    return fig


def plot_calibration(rows: list[dict], k: int, calibration: dict, models=None):
    """Per model, against the epoch: the network's test error, LOO-NNK, LOO-NNK shifted by the
    offset fitted on the *other* models (leave-one-model-out, from
    :func:`deepnnk.studies.loo_report.offset_calibration`), and NNK's own test error."""
    style.use()
    models = _models(rows, models)
    offsets = calibration["leave_one_model_out"]["offsets"]
    fig, axes = plt.subplots(
        1, len(models), figsize=style.figsize(1, row_height=3.0), sharey=True, squeeze=False
    )
    for ax, model in zip(axes[0], models, strict=True):
        x, net = _curve(rows, model, k, "net_test")
        ax.plot(x, net, color=_C["network"], ls=":", lw=2, label="network test error")
        x, loo = _curve(rows, model, k, "loo_nnk")
        ax.plot(x, loo, color=_C["NNK"], ls="--", lw=1.2, label="LOO-NNK")
        ax.plot(
            x,
            loo + offsets[model],
            color=_C["NNK"],
            marker="o",
            ms=3,
            label="LOO-NNK + c (c fitted on the other models)",
        )
        x, nnk = _curve(rows, model, k, "test_nnk")
        ax.plot(x, nnk, color="0.5", lw=1, label="NNK test error")
        ax.set_title(model, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        style.integer_ticks(ax)
    axes[0, 0].set_ylabel("error")
    fig.tight_layout()
    style.legend_outside(fig, "below", ncol=2)
    return fig


def _model_k_legend(fig, models, ks, extra=()):
    handles = [Line2D([], [], color=MODEL_COLORS.get(m), lw=2, label=m) for m in models]
    if len(ks) > 1:
        handles += [
            Line2D([], [], color="0.3", ls=s, label=f"k = {k}")
            for s, k in zip(K_STYLES, ks, strict=False)
        ]
    handles += list(extra)
    fig.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=min(len(handles), 4),
        frameon=False,
    )


def plot_neighbours(rows: list[dict], models=None):
    """Left: mean number of NNK neighbours (LOO) against epoch, per model (colour) and k (line
    style). Right: against k at the last epoch, with the kNN count (= k) for reference."""
    style.use()
    models = _models(rows, models)
    ks = sorted({r["k"] for r in rows})
    fig, (a, b) = plt.subplots(1, 2, figsize=style.figsize(1, row_height=3.2))
    for model in models:
        for ls, k in zip(K_STYLES, ks, strict=False):
            x, y = _curve(rows, model, k, "n_nnk_mean")
            a.plot(x, y, ls=ls, color=MODEL_COLORS.get(model), marker="o", ms=2.5)
        last = max(r["epoch"] for r in select(rows, model=model))
        sub = sorted(select(rows, model=model, epoch=last), key=lambda r: r["k"])
        b.plot(
            [r["k"] for r in sub],
            column(sub, "n_nnk_mean"),
            marker="o",
            color=MODEL_COLORS.get(model),
        )
    b.plot(ks, ks, color="0.5", ls="--", lw=1, marker="x")
    a.set_xlabel("epoch")
    a.set_ylabel("mean NNK neighbours (LOO)")
    b.set_xlabel("k (candidates), last epoch")
    b.set_ylabel("mean NNK neighbours (LOO)")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    style.integer_ticks(a)
    b.set_xticks(ks)
    fig.tight_layout()
    knn = Line2D([], [], color="0.5", ls="--", lw=1, marker="x", label="kNN keeps all k")
    _model_k_legend(fig, models, ks, extra=(knn,))
    return fig


def plot_residual(rows: list[dict], models=None):
    """Mean NNK residual 1 − 2k_Sqᵀθ + θᵀK_SSθ (LOO queries) against epoch, per model (colour)
    and k (line style)."""
    style.use()
    models = _models(rows, models)
    ks = sorted({r["k"] for r in rows})
    fig, ax = plt.subplots(figsize=(0.7 * style.BOOK_WIDTH, 3.2))
    for model in models:
        for ls, k in zip(K_STYLES, ks, strict=False):
            x, y = _curve(rows, model, k, "residual_mean")
            ax.plot(x, y, ls=ls, color=MODEL_COLORS.get(model), marker="o", ms=2.5)
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean residual (LOO)")
    ax.grid(alpha=0.3)
    style.integer_ticks(ax)
    fig.tight_layout()
    _model_k_legend(fig, models, ks)
    return fig
