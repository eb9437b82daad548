r"""NNK neighbourhoods of adversarial examples: accuracy, weight shares, detection scores.

An untargeted L∞ attack (FGSM or PGD, :mod:`deepnnk.nets.attacks`) moves a test image by at most
ε per pixel so that the network's label changes. In the network's feature space, NNK
reconstructs the adversarial feature from a few training features; this module measures where
that reconstruction lands (:func:`attack_metrics`):

- accuracy of the network and of the NNK interpolation, clean and adversarial;
- the NNK weight share on the true class and on the *adversarial class* (the network's
  prediction on the adversarial input);
- how often NNK predicts the network's (wrong) adversarial label;
- the fraction of adversarial features that sit mostly (weight share > 0.5) on training points of
  classes other than the true one: inside a polytope of other-class training points;
- ROC AUCs of per-query scores that separate adversarial from clean inputs.

A *successful* adversarial example is one whose clean twin the network classified correctly and
whose adversarial version it does not. Detection AUCs compare successful adversarial examples
with their own clean twins (balanced pairs, as in Ma et al. 2018 and Lee et al. 2018); a score is
read as "higher = adversarial", so an AUC below 0.5 means the score is *lower* on adversarial
inputs.

Adversarial images are cached on disk (``<cache root>/adversarial/<key>.npy``, float32 NCHW,
written atomically; :mod:`deepnnk.cache`), keyed by the attack's source code, the model's weights,
the clean images and labels, the attack and its parameters, so re-runs skip the attack.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_auc_score

from deepnnk import cache, explain
from deepnnk.explain import NeighbourTable
from deepnnk.figures.gallery import HEAD_INCHES, PANEL_INCHES, ROW_INCHES, table_gallery
from deepnnk.nets import features
from deepnnk.nets.attacks import DEFAULT_STEPS, attack_dataset

# The modules whose source goes into an attack's cache key (besides the model's own module).
CODE = ("nets.attacks", "studies.adversarial", "nets.features", "cache")
SCORES = ("n_neighbours", "residual", "nnk_disagreement", "knn_disagreement")


# --------------------------------------------------------------------------- attacks, cached


def attack_cache_dir() -> Path:
    """``<cache root>/adversarial`` (``$DEEPNNK_CACHE/adversarial`` when that is set)."""
    return cache.cache_dir("adversarial")


def attack_key(model, images, labels, method: str, eps: float, steps: int, seed: int) -> str:
    """Hex key of one attack run: the attack's code and the model's, weights, clean images and
    labels, method, ε, steps, seed."""
    code = cache.code_digest([*CODE, *cache.model_module(model)])
    h = hashlib.blake2b(code.encode(), digest_size=20)
    cache.model_digest(model, h)
    cache.array_digest(np.asarray(images), h)
    cache.array_digest(np.asarray(labels, dtype=np.int64), h)
    params = f"{method}|eps={float(eps)!r}"
    if method == "pgd":
        params += f"|steps={int(steps)}|seed={int(seed)}|random_start=True"
    h.update(params.encode())
    return h.hexdigest()


def cached_attack(
    model,
    images,
    labels,
    method: str,
    eps: float,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
) -> np.ndarray:
    """Adversarial versions of ``images`` (uint8 HWC or float NCHW) as float32 ``[N, 3, 32, 32]``.

    PGD runs ``steps`` steps from a random start drawn from a generator seeded with ``seed``.
    The result is memory-mapped from the cache (read-only) when present, else computed with
    :func:`deepnnk.nets.attacks.attack_dataset` and written there atomically.
    """
    folder = Path(cache_dir) if cache_dir is not None else attack_cache_dir()
    path = folder / f"{attack_key(model, images, labels, method, eps, steps, seed)}.npy"
    if path.is_file():
        try:
            cached = np.load(path, mmap_mode="r", allow_pickle=False)
            if cached.shape[0] == len(images) and cached.dtype == np.float32:
                return cached
        except (OSError, ValueError):
            pass  # unreadable entry: recompute and overwrite
    pgd = dict(steps=steps, generator=int(seed)) if method == "pgd" else {}
    adv = attack_dataset(model, images, labels, method, eps, **pgd).images
    cache.atomic_write(path, lambda f: np.save(f, adv, allow_pickle=False))
    return adv


# --------------------------------------------------------------------------- one input set


@dataclass
class Run:
    """One set of inputs (clean, or one attack at one ε) seen by the network, NNK and kNN.

    net_pred ``[n]`` the network's labels; nnk, knn: their :class:`NeighbourTable`.
    """

    name: str
    net_pred: np.ndarray
    nnk: NeighbourTable
    knn: NeighbourTable


def run_inputs(name: str, model, clf, knn, images) -> Run:
    """Extract ``images``' features (cached) and explain them with ``clf`` (NNK) and ``knn``."""
    F = features.extract(model, images)
    net_pred = explain.network_proba(model, F).argmax(1)
    return Run(
        name, net_pred, explain.neighbourhood_table(clf, F), explain.neighbourhood_table(knn, F)
    )


# --------------------------------------------------------------------------- metrics


def detection_auc(score_clean, score_adv) -> float:
    """ROC AUC of ``score`` for adversarial (positive) against clean (negative); NaN when a
    side is empty or a score is not finite."""
    a, b = np.asarray(score_clean, float), np.asarray(score_adv, float)
    if a.size == 0 or b.size == 0 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("nan")
    y = np.r_[np.zeros(a.size), np.ones(b.size)]
    return float(roc_auc_score(y, np.r_[a, b]))


def scores(run: Run) -> dict[str, np.ndarray]:
    """Per-query detection scores: number of NNK neighbours, NNK residual, and 1 − the NNK / kNN
    weight share on the network's predicted label (their disagreement with the network)."""
    return {
        "n_neighbours": run.nnk.n_neighbours.astype(float),
        "residual": run.nnk.residual,
        "nnk_disagreement": 1.0 - explain.weight_share(run.nnk, run.net_pred),
        "knn_disagreement": 1.0 - explain.weight_share(run.knn, run.net_pred),
    }


def _mean(x, sel=None) -> float:
    x = np.asarray(x, float)
    x = x if sel is None else x[sel]
    return float(x.mean()) if x.size else float("nan")


def successful(y, clean: Run, adv: Run) -> np.ndarray:
    """Successful adversarial examples ``[n]`` bool: network right on the clean twin, wrong on
    the adversarial one."""
    y = np.asarray(y)
    return (clean.net_pred == y) & (adv.net_pred != y)


def attack_metrics(y, clean: Run, adv: Run) -> dict:
    """Everything reported per (attack, ε); see the module docstring for the definitions.

    Shares are means over successful adversarial examples (``*_adv``) and over their clean twins
    (``*_clean``); the share "on the adversarial class" of a clean twin is its share on the class
    the attack later pushes it to.
    """
    y = np.asarray(y)
    ok = successful(y, clean, adv)
    share_true_adv = explain.weight_share(adv.nnk, y)
    share_true_clean = explain.weight_share(clean.nnk, y)
    share_advcls_adv = explain.weight_share(adv.nnk, adv.net_pred)
    share_advcls_clean = explain.weight_share(clean.nnk, adv.net_pred)
    s_clean, s_adv = scores(clean), scores(adv)
    clean_right = clean.net_pred == y
    return {
        "n_queries": int(len(y)),
        "n_successful": int(ok.sum()),
        "attack_success_rate": _mean(ok, clean_right),
        "network_accuracy": _mean(adv.net_pred == y),
        "nnk_accuracy": _mean(adv.nnk.pred == y),
        "knn_accuracy": _mean(adv.knn.pred == y),
        "nnk_agrees_with_network": _mean(adv.nnk.pred == adv.net_pred, ok),
        "nnk_recovers_true_label": _mean(adv.nnk.pred == y, ok),
        "share_true_clean": _mean(share_true_clean, ok),
        "share_true_adv": _mean(share_true_adv, ok),
        "share_adv_class_clean": _mean(share_advcls_clean, ok),
        "share_adv_class_adv": _mean(share_advcls_adv, ok),
        # the interpolation view: weight mostly (> 0.5) on training points of other classes
        "other_class_polytope_all": _mean(share_true_adv < 0.5),
        "other_class_polytope_successful": _mean(share_true_adv < 0.5, ok),
        "other_class_polytope_clean": _mean(share_true_clean < 0.5),
        "adv_class_polytope_successful": _mean(share_advcls_adv > 0.5, ok),
        "mean_n_neighbours_clean": _mean(s_clean["n_neighbours"], ok),
        "mean_n_neighbours_adv": _mean(s_adv["n_neighbours"], ok),
        "mean_residual_clean": _mean(s_clean["residual"], ok),
        "mean_residual_adv": _mean(s_adv["residual"], ok),
        "auc": {key: detection_auc(s_clean[key][ok], s_adv[key][ok]) for key in SCORES},
    }


def clean_metrics(y, clean: Run) -> dict:
    """Accuracies of the network, NNK and kNN on the clean inputs, and NNK's agreement."""
    y = np.asarray(y)
    return {
        "n_queries": int(len(y)),
        "network_accuracy": _mean(clean.net_pred == y),
        "nnk_accuracy": _mean(clean.nnk.pred == y),
        "knn_accuracy": _mean(clean.knn.pred == y),
        "nnk_agrees_with_network": _mean(clean.nnk.pred == clean.net_pred),
        "other_class_polytope": _mean(explain.weight_share(clean.nnk, y) < 0.5),
    }


def eps_key(eps_255: float) -> str:
    """``"eps8"`` for ε = 8/255 (``"eps0.5"`` for non-integers)."""
    return f"eps{eps_255:g}"


def table(results: dict, eps_list) -> list[dict]:
    """Rows (attack, ε, network/NNK/kNN accuracy, AUCs) of ``results[attack][eps_key]``."""
    rows = []
    for attack, per_eps in results.items():
        for e in eps_list:
            m = per_eps[eps_key(e)]
            row = {"attack": attack, "eps_255": e}
            row |= {key: m[key] for key in ("network_accuracy", "nnk_accuracy", "knn_accuracy")}
            row |= {f"auc_{key}": m["auc"][key] for key in SCORES}
            rows.append(row)
    return rows


# --------------------------------------------------------------------------- figures


def to_hwc(image) -> np.ndarray:
    """A float NCHW-style ``[3, H, W]`` image in [0, 1] as ``[H, W, 3]`` for plotting."""
    return np.clip(np.transpose(np.asarray(image, dtype=np.float32), (1, 2, 0)), 0.0, 1.0)


def twin_galleries(
    clean: NeighbourTable,
    adv: NeighbourTable,
    i: int,
    clean_image,
    adv_image,
    train_images,
    class_names,
    true_label: int,
    titles: tuple[str, str] = ("clean", "adversarial"),
    per_row: int = 5,
    suptitle: str | None = None,
):
    """Query ``i``'s NNK gallery on the clean input (left) and on its adversarial twin (right),
    each titled "true, NNK-predicted" and drawn by :func:`deepnnk.figures.gallery.table_gallery`."""
    counts = [int(t.n_neighbours[i]) + 1 for t in (clean, adv)]
    rows = max(-(-c // per_row) for c in counts)
    head = HEAD_INCHES if suptitle else 0.0
    height = rows * ROW_INCHES + HEAD_INCHES + head
    fig = plt.figure(figsize=(2 * per_row * PANEL_INCHES + 0.3, height))
    subs = fig.subfigures(1, 2, wspace=0.04)
    for sub, tab, img, title in zip(
        subs, (clean, adv), (clean_image, adv_image), titles, strict=True
    ):
        table_gallery(
            tab, i, img, train_images, class_names, true_label, per_row, fig=sub, suptitle=title
        )
    if suptitle:
        fig.suptitle(suptitle, fontsize=10, y=1 + 0.1 / height, va="bottom")
    return fig


def curves(results: dict, eps_list, keys: dict[str, str], ylabel: str, ax=None):
    """Means against ε (in /255), one line per (attack, key): ``keys`` = {metric key: label};
    ``results[attack][eps_key][metric]``; metric keys may be ``"auc.<score>"``."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4.6, 3.3), layout="constrained")
    styles = {"fgsm": "--", "pgd": "-"}
    for n, (key, label) in enumerate(keys.items()):
        for attack, per_eps in results.items():
            vals = []
            for e in eps_list:
                v = per_eps[eps_key(e)]
                for part in key.split("."):
                    v = v[part]
                vals.append(np.nan if v is None else v)
            ax.plot(
                eps_list,
                vals,
                styles.get(attack, ":"),
                marker="o",
                ms=4,
                color=f"C{n}",
                label=f"{label}, {attack.upper()}",
            )
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(eps_list), [f"{e:g}" for e in eps_list])
    ax.set_xlabel("ε (× 1/255)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    return ax.figure


def curve_panels(results: dict, eps_list, panels: dict[str, tuple[dict[str, str], str]]):
    """Side-by-side :func:`curves`: ``panels`` = {panel title: (keys, ylabel)}."""
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.6 * len(panels), 3.4), squeeze=False, layout="constrained"
    )
    for ax, (title, (keys, ylabel)) in zip(axes.ravel(), panels.items(), strict=True):
        curves(results, eps_list, keys, ylabel, ax=ax)
        ax.set_title(title, fontsize=10)
    return fig
