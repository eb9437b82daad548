"""Figures of notebook 02 (LOO generalization), drawn from the tidy table of
:func:`deepnnk.studies.loo.sweep`: one row per (model, epoch, k)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from deepnnk.studies.loo import MODELS
from deepnnk.studies.loo_report import ESTIMATORS, column, pearson, select

MODEL_COLORS = {"underparameterised": "tab:green", "regularised": "tab:blue", "overfit": "tab:red"}
K_STYLES = ("-", "--", ":", "-.")

# (column, label, style) for the two sides of the paper's figure.
TRAIN_SIDE = (
    ("loo_nnk", "LOO-NNK", dict(color="tab:blue", ls="-", marker="o", ms=3)),
    ("loo_knn", "LOO-kNN", dict(color="tab:orange", ls="--", marker="s", ms=3)),
    ("net_train", "network", dict(color="black", ls=":")),
    ("svm_train", "SVM 5-fold", dict(color="tab:purple", ls="none", marker="^", ms=6)),
)
TEST_SIDE = (
    ("test_nnk", "NNK", dict(color="tab:blue", ls="-", marker="o", ms=3)),
    ("test_knn", "kNN", dict(color="tab:orange", ls="--", marker="s", ms=3)),
    ("net_test", "network", dict(color="black", ls=":")),
    ("svm_test", "SVM", dict(color="tab:purple", ls="none", marker="^", ms=6)),
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


def plot_error_curves(rows: list[dict], k: int, models=None, title: str | None = None):
    """The paper's figure: error against epoch, one column per model; top row the training
    side (LOO-NNK, LOO-kNN, network train error, SVM held-out folds), bottom row the test side
    (NNK, kNN, network test error, SVM on the test set)."""
    models = _models(rows, models)
    fig, axes = plt.subplots(
        2, len(models), figsize=(4.2 * len(models), 6.4), sharex=True, sharey=True, squeeze=False
    )
    for j, model in enumerate(models):
        for i, side in enumerate((TRAIN_SIDE, TEST_SIDE)):
            ax = axes[i, j]
            for name, label, style in side:
                x, y = _curve(rows, model, k, name)
                if len(x):
                    ax.plot(x, y, label=label, **style)
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(model)
            if j == 0:
                ax.set_ylabel(("training set" if i == 0 else "test set") + " error")
            if i == 1:
                ax.set_xlabel("epoch")
    axes[0, 0].legend(fontsize=8)
    axes[1, 0].legend(fontsize=8)
    fig.suptitle(title or f"Error vs epoch, k = {k}")
    fig.tight_layout()
    return fig


def plot_estimator_scatter(rows: list[dict], k: int, estimators=None, against: str = "net_test"):
    """Each estimator (x) against the network's true test error (y) over all checkpoints, one
    panel per estimator, with Pearson's r in the title; the diagonal y = x for reference."""
    sub = select(rows, k=k)
    names = [e for e in (estimators or ESTIMATORS) if np.isfinite(column(sub, e)).sum() >= 3]
    ncol = min(4, len(names))
    nrow = int(np.ceil(len(names) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol, 3.3 * nrow), squeeze=False)
    truth_all = column(sub, against)
    for ax, name in zip(axes.flat, names, strict=False):
        for model in _models(sub):
            rm = select(sub, model=model)
            ax.scatter(
                column(rm, name),
                column(rm, against),
                s=14,
                color=MODEL_COLORS.get(model),
                label=model,
            )
        vals = np.concatenate([column(sub, name), truth_all])
        lo, hi = np.nanmin(vals), np.nanmax(vals)
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
        ax.set_title(
            f"{ESTIMATORS.get(name, name)}\nr = {pearson(sub, name, against):.3f}", fontsize=9
        )
        ax.set_xlabel("estimate")
        ax.set_ylabel("true test error")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"Estimators against the network's test error (all checkpoints, k = {k})")
    fig.tight_layout()
    return fig


def plot_neighbours(rows: list[dict], models=None):
    """Left: mean number of NNK neighbours (LOO) against epoch, per model and k. Right: against
    k at the last epoch, with the kNN count (= k) for reference."""
    models = _models(rows, models)
    ks = sorted({r["k"] for r in rows})
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for model in models:
        for style, k in zip(K_STYLES, ks, strict=False):
            x, y = _curve(rows, model, k, "n_nnk_mean")
            a.plot(
                x,
                y,
                ls=style,
                color=MODEL_COLORS.get(model),
                marker="o",
                ms=2.5,
                label=f"{model}, k={k}",
            )
        last = max(r["epoch"] for r in select(rows, model=model))
        sub = sorted(select(rows, model=model, epoch=last), key=lambda r: r["k"])
        b.plot(
            [r["k"] for r in sub],
            column(sub, "n_nnk_mean"),
            marker="o",
            color=MODEL_COLORS.get(model),
            label=f"{model} (epoch {last})",
        )
    b.plot(ks, ks, color="grey", ls="--", lw=0.8, label="kNN: all k")
    a.set_xlabel("epoch")
    a.set_ylabel("mean NNK neighbours (LOO)")
    a.legend(fontsize=6, ncol=2)
    b.set_xlabel("k (candidates)")
    b.set_ylabel("mean NNK neighbours (LOO)")
    b.legend(fontsize=7)
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_residual(rows: list[dict], models=None):
    """Mean NNK residual 1 − 2k_Sqᵀθ + θᵀK_SSθ (LOO queries) against epoch, per model and k."""
    models = _models(rows, models)
    ks = sorted({r["k"] for r in rows})
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for model in models:
        for style, k in zip(K_STYLES, ks, strict=False):
            x, y = _curve(rows, model, k, "residual_mean")
            ax.plot(
                x,
                y,
                ls=style,
                color=MODEL_COLORS.get(model),
                marker="o",
                ms=2.5,
                label=f"{model}, k={k}",
            )
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean residual (LOO)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig
