"""Figures for adversarial examples seen through NNK (:mod:`deepnnk.studies.adversarial`).

- :func:`twin_galleries` / :func:`attack_twins`: a clean image's NNK gallery beside its
  adversarial twin's;
- :func:`curves` / :func:`curve_panels`: per-(attack, ε) means against ε, one colour per metric
  and one line style per attack, with an ε = 0 point where one is meaningful (the clean value,
  or chance for an AUC) and the legend off the data; the notebook's figures of them
  (:func:`accuracy_curves`, :func:`weight_share_curves`, :func:`auc_curves`,
  :func:`polytope_curves`, :func:`overlap_curves`, :func:`geometry_curves`);
- :func:`true_share_histogram`: the weight share on the true class, clean against adversarial
  (seaborn).

Every function applies the book's style (:func:`deepnnk.figures.style.use`) and fits its width.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from deepnnk.explain import NeighbourTable
from deepnnk.figures import style
from deepnnk.figures.gallery import (
    HEAD_INCHES,
    PANEL_INCHES,
    ROW_INCHES,
    table_gallery,
)
from deepnnk.studies.adversarial import SCORES, Run, eps_key, to_hwc
from deepnnk.studies.adversarial_report import GEOMETRY_SCORES

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
    per_row: int = 6,
    suptitle: str | None = None,
    fontsize: float = 8,
):
    """Query ``i``'s NNK gallery on the clean input (top) and on its adversarial twin (below),
    each titled "true, NNK-predicted" and drawn by :func:`deepnnk.figures.gallery.table_gallery`,
    ``per_row`` panels a row (6: the book's width) with titles of ``fontsize`` points."""
    style.use()
    counts = [int(t.n_neighbours[i]) + 1 for t in (clean, adv)]
    heights = [-(-c // per_row) * ROW_INCHES + HEAD_INCHES for c in counts]
    height = sum(heights)
    fig = plt.figure(figsize=(per_row * PANEL_INCHES, height))
    subs = fig.subfigures(2, 1, height_ratios=heights, hspace=0.0)
    for sub, tab, img, title in zip(
        subs, (clean, adv), (clean_image, adv_image), titles, strict=True
    ):
        table_gallery(
            tab,
            i,
            img,
            train_images,
            class_names,
            true_label,
            per_row,
            fig=sub,
            suptitle=title,
            fontsize=fontsize,
        )
    if suptitle:
        fig.suptitle(suptitle, fontsize=11, y=1 + 0.1 / height, va="bottom")
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
    per_row: int = 6,
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

STYLES = {"fgsm": "--", "pgd": "-"}
MARKERS = {"fgsm": "s", "pgd": "o"}


def _value(per_eps: dict, e, key: str):
    v = per_eps[eps_key(e)]
    for part in key.split("."):
        v = v[part]
    return np.nan if v is None else float(v)


def curves(
    results: dict,
    eps_list,
    keys: dict[str, str],
    ylabel: str,
    ax=None,
    *,
    zero: dict[str, float] | None = None,
    chance: float | None = None,
    colours: dict[str, str] | None = None,
    first_colour: int = 0,
    legend: str | None = "right",
):
    """Means against ε (in /255): one colour per metric of ``keys`` ({metric key: label}), one
    line style per attack; ``results[attack][eps_key][metric]``, metric keys may be dotted paths
    (``"auc.residual"``).

    ``zero``: {metric key: value at ε = 0} for the metrics that have one (the clean value; 0.5
    for an AUC), drawn as the first point of each attack's line; ``chance``: a dashed chance line
    at that level (AUC axes); ``colours``: {label: colour}, else ``C<first_colour + n>``;
    ``legend``: ``"right"`` (outside the axes), ``"below"`` or None (the caller places it).
    Returns the figure."""
    style.use()
    if ax is None:
        _, ax = plt.subplots(figsize=style.figsize(1), layout="constrained")
    zero = zero or {}
    xs = ([0] if zero else []) + list(eps_list)
    for n, (key, label) in enumerate(keys.items()):
        colour = (colours or {}).get(label, f"C{n + first_colour}")
        for attack, per_eps in results.items():
            vals = [_value(per_eps, e, key) for e in eps_list]
            x = xs if key in zero else list(eps_list)
            y = [zero[key], *vals] if key in zero else vals
            ax.plot(
                x, y, STYLES.get(attack, ":"), marker=MARKERS.get(attack, "^"), ms=5, color=colour
            )
        ax.plot([], [], "-", color=colour, lw=6, alpha=0.8, label=label)  # legend: the metric
    for attack in results:  # legend: the attack
        ax.plot(
            [],
            [],
            STYLES.get(attack, ":"),
            marker=MARKERS.get(attack, "^"),
            color="0.3",
            label=attack.upper(),
        )
    if chance is not None:
        style.chance_line(ax, chance)
    ax.set_xticks(xs, [f"{e:g}" for e in xs])
    ax.set_xlabel("ε (× 1/255)")
    ax.set_ylabel(ylabel)
    if legend:
        style.legend_outside(ax, legend)
    return ax.figure


def curve_panels(results: dict, eps_list, panels: dict, *, legend: str = "right", sharey=False):
    """Side-by-side :func:`curves`, one row, book width: ``panels`` = {panel title: (keys,
    ylabel)} or {title: (keys, ylabel, options)} with ``options`` the keyword arguments of
    :func:`curves` (``zero``, ``chance``, ``colours``, ``results``: another results dict for that
    panel). ``legend="right"``: each panel's legend to its right; ``"below"``: one legend for the
    figure, under it (entries with the same label drawn once)."""
    style.use()
    n = len(panels)
    fig, axes = plt.subplots(
        1,
        n,
        figsize=style.figsize(1),
        squeeze=False,
        layout="constrained",
        sharey=sharey,
    )
    for ax, (title, spec) in zip(axes.ravel(), panels.items(), strict=True):
        keys, ylabel, opts = (*spec, {}) if len(spec) == 2 else spec
        opts = dict(opts)
        data = opts.pop("results", results)
        curves(
            data,
            eps_list,
            keys,
            ylabel,
            ax=ax,
            legend="right" if legend == "right" else None,
            **opts,
        )
        ax.set_title(title)
    if legend == "below":
        style.legend_outside(fig, "below", ncol=3)
    return fig


def accuracy_curves(results: dict, eps_list, clean: dict | None = None):
    """The network's, NNK's and kernel kNN's accuracy on adversarial inputs against ε; at ε = 0
    their clean accuracies (``clean``: :func:`~deepnnk.studies.adversarial.clean_metrics`)."""
    acc = {"network_accuracy": "network", "nnk_accuracy": "NNK", "knn_accuracy": "kernel kNN"}
    zero = {key: clean[key] for key in acc} if clean else None
    opts = {"zero": zero, "colours": style.METHOD_COLOURS}
    panels = {"accuracy on adversarial inputs": (acc, "accuracy", opts)}
    return curve_panels(results, eps_list, panels)


def weight_share_curves(results: dict, eps_list):
    """On successful attacks: NNK's weight share on the true and adversarial classes (left) and
    how often NNK follows the network's wrong label or recovers the true one (right). No ε = 0
    point: the successful set changes with ε (the clean twins' share is drawn instead)."""
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
        "NNK weight share": (shares, "mean weight share"),
        "NNK's label": (agree, "fraction of successful attacks", {"first_colour": 3}),
    }
    return curve_panels(results, eps_list, panels, legend="below")


def auc_curves(results: dict, eps_list, report_attacks: dict | None = None):
    """The detection ROC AUC of every score of :data:`~deepnnk.studies.adversarial.SCORES`,
    successful adversarial images against their clean twins (left) and, given
    ``report_attacks`` (``metrics["report"]["attacks"]``), against all clean queries,
    misclassified ones included (right). Chance line at 0.5, which is also the ε = 0 point."""
    names = {s: s.replace("_", " ") for s in SCORES}
    twin = {f"auc.{s}": label for s, label in names.items()}
    panels = {"vs clean twins": (twin, "ROC AUC", {"zero": dict.fromkeys(twin, 0.5)})}
    panels["vs clean twins"][2]["chance"] = 0.5
    if report_attacks is not None:
        every = {f"auc_all_clean.{s}": label for s, label in names.items()}
        opts = {"zero": dict.fromkeys(every, 0.5), "chance": 0.5, "results": report_attacks}
        panels["vs all clean queries"] = (every, "ROC AUC", opts)
    return curve_panels(results, eps_list, panels, legend="below", sharey=True)


def polytope_curves(results: dict, eps_list, clean: dict | None = None):
    """The fraction of adversarial features whose NNK weight lies mostly outside the true class
    (successful attacks, all inputs) and mostly on the adversarial class; at ε = 0 the clean
    images' fraction for "all inputs" (``clean``: its ``other_class_polytope``)."""
    poly = {
        "other_class_polytope_successful": "successful attacks",
        "other_class_polytope_all": "all inputs",
        "adv_class_polytope_successful": "on the adversarial class (successful)",
    }
    zero = {"other_class_polytope_all": clean["other_class_polytope"]} if clean else None
    panels = {"NNK weight > 0.5 outside the true class": (poly, "fraction", {"zero": zero})}
    return curve_panels(results, eps_list, panels)


def overlap_curves(report_attacks: dict, eps_list):
    """How much of its NNK neighbourhood a successful adversarial image shares with its clean
    twin: the Jaccard index of the supports and the weighted overlap Σ min(θ_clean, θ_adv)
    (``metrics["report"]["attacks"]``); both are 1 at ε = 0."""
    keys = {"support_jaccard": "Jaccard of supports", "weighted_overlap": "Σ min(θ_clean, θ_adv)"}
    panels = {
        "clean vs adversarial neighbourhood": (keys, "overlap", {"zero": dict.fromkeys(keys, 1.0)})
    }
    return curve_panels(report_attacks, eps_list, panels)


def geometry_curves(report_attacks: dict, eps_list):
    """Why the residual hardly detects what a Euclidean distance does: the feature norm ratio
    ‖f_adv‖/‖f_clean‖ (left, 1 at ε = 0) and the detection AUC of the NNK residual, the cosine
    distance to the nearest training feature, the feature norm and the Euclidean distance to the
    nearest training feature (right, successful attacks vs clean twins, chance at ε = 0)."""
    ratio = {"norm_ratio": "‖f_adv‖ / ‖f_clean‖"}
    labels = {
        "residual": "NNK residual (cosine)",
        "cosine_distance": "1 − cos to nearest",
        "feature_norm": "feature norm",
        "nn_distance": "Euclidean dist. to nearest",
    }
    aucs = {f"auc_geometry.{s}": labels[s] for s in GEOMETRY_SCORES}
    panels = {
        "feature norm": (ratio, "mean ratio", {"zero": {"norm_ratio": 1.0}}),
        "detection vs clean twins": (
            aucs,
            "ROC AUC",
            {"zero": dict.fromkeys(aucs, 0.5), "chance": 0.5},
        ),
    }
    return curve_panels(report_attacks, eps_list, panels, legend="below")


# --------------------------------------------------------------------------- distributions


def true_share_histogram(groups: dict[str, np.ndarray], bins: int = 20):
    """Histograms of the NNK weight share on the true class, one per group
    (:func:`deepnnk.studies.adversarial.true_share_groups`), drawn with seaborn, the legend
    (group, size, mean) to the right of the axes."""
    style.use()
    frames = [
        pd.DataFrame(
            {"share": np.asarray(x, float), "group": f"{k} (n = {len(x)}, mean {np.mean(x):.2f})"}
        )
        for k, x in groups.items()
        if len(x)
    ]
    fig, ax = plt.subplots(figsize=style.figsize(1), layout="constrained")
    if frames:
        data = pd.concat(frames, ignore_index=True)
        sns.histplot(
            data,
            x="share",
            hue="group",
            bins=np.linspace(0, 1, bins + 1),
            stat="density",
            common_norm=False,
            element="step",
            fill=True,
            alpha=0.25,
            ax=ax,
        )
        sns.move_legend(ax, "center left", bbox_to_anchor=(1.01, 0.5), frameon=False, title=None)
    ax.set_xlim(0, 1)
    ax.set_xlabel("NNK weight share on the true class (successful attacks)")
    ax.set_ylabel("density")
    return fig
