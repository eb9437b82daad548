"""Figures for adversarial examples seen through NNK (:mod:`deepnnk.studies.adversarial`).

- :func:`twin_galleries` / :func:`attack_twins`: a clean image's NNK gallery beside its
  adversarial twin's;
- :func:`curves` / :func:`curve_panels`: per-(attack, ε) means against ε, one line per attack and
  metric, and the notebook's four panels of them (:func:`accuracy_curves`,
  :func:`weight_share_curves`, :func:`auc_curves`, :func:`polytope_curves`);
- :func:`true_share_histogram`: the weight share on the true class, clean against adversarial.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from deepnnk.explain import NeighbourTable
from deepnnk.figures.gallery import (
    HEAD_INCHES,
    PANEL_INCHES,
    ROW_INCHES,
    share_histograms,
    table_gallery,
)
from deepnnk.studies.adversarial import SCORES, Run, eps_key, to_hwc

# --------------------------------------------------------------------------- galleries


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


def attack_twins(
    clean: Run,
    adv: Run,
    i: int,
    clean_image,
    adv_image,
    train_images,
    class_names,
    true_label: int,
    adv_label: str,
    test_id: int,
    per_row: int = 5,
):
    """:func:`twin_galleries` of query ``i`` from two runs, each side titled with the network's
    label ("clean: network says cat", "<adv_label>: network says dog"), under "test image
    <test_id>". ``adv_image`` is the attacked float ``[3, H, W]`` image."""
    titles = (
        f"clean: network says {class_names[clean.net_pred[i]]}",
        f"{adv_label}: network says {class_names[adv.net_pred[i]]}",
    )
    return twin_galleries(
        clean.nnk,
        adv.nnk,
        i,
        clean_image,
        to_hwc(adv_image),
        train_images,
        class_names,
        true_label,
        titles,
        per_row,
        suptitle=f"test image {test_id}",
    )


# --------------------------------------------------------------------------- curves against ε


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


def accuracy_curves(results: dict, eps_list):
    """The network's, NNK's and kernel kNN's accuracy on adversarial inputs against ε."""
    acc = {"network_accuracy": "network", "nnk_accuracy": "NNK", "knn_accuracy": "kernel kNN"}
    return curve_panels(results, eps_list, {"accuracy on adversarial inputs": (acc, "accuracy")})


def weight_share_curves(results: dict, eps_list):
    """On successful attacks: NNK's weight share on the true and adversarial classes (left) and
    how often NNK follows the network's wrong label or recovers the true one (right)."""
    shares = {
        "share_true_adv": "true class (adv.)",
        "share_adv_class_adv": "adversarial class (adv.)",
        "share_true_clean": "true class (clean twin)",
    }
    agree = {
        "nnk_agrees_with_network": "NNK = network's wrong label",
        "nnk_recovers_true_label": "NNK = true label",
    }
    panels = {
        "NNK weight share, successful attacks": (shares, "mean weight share"),
        "NNK on successful attacks": (agree, "fraction"),
    }
    return curve_panels(results, eps_list, panels)


def auc_curves(results: dict, eps_list):
    """The detection ROC AUC of every score of :data:`~deepnnk.studies.adversarial.SCORES`."""
    aucs = {f"auc.{s}": s.replace("_", " ") for s in SCORES}
    return curve_panels(results, eps_list, {"adversarial vs clean twin": (aucs, "ROC AUC")})


def polytope_curves(results: dict, eps_list):
    """The fraction of adversarial features whose NNK weight lies mostly outside the true class
    (successful attacks, all inputs) and mostly on the adversarial class."""
    poly = {
        "other_class_polytope_successful": "successful attacks",
        "other_class_polytope_all": "all adversarial inputs",
        "adv_class_polytope_successful": "on the adversarial class (successful)",
    }
    panels = {"weight > 0.5 outside the true class": (poly, "fraction of queries")}
    return curve_panels(results, eps_list, panels)


# --------------------------------------------------------------------------- distributions


def true_share_histogram(groups: dict[str, np.ndarray]):
    """Histograms of the NNK weight share on the true class, one per group
    (:func:`deepnnk.studies.adversarial.true_share_groups`)."""
    return share_histograms(groups, "NNK weight share on the true class (successful attacks)")
