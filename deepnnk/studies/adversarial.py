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

The notebook ``03_adversarial`` runs :func:`load_setting`, :func:`fit_databases`,
:func:`run_inputs` on the clean queries and :func:`run_attacks`, at the sizes of
:func:`profile`; its figures are drawn by :mod:`deepnnk.figures.adversarial`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from deepnnk import NNKClassifier, cache, explain
from deepnnk.explain import NeighbourTable
from deepnnk.nets import features
from deepnnk.nets.attacks import DEFAULT_STEPS, attack_dataset
from deepnnk.nets.data import CLASSES as CLASSES  # re-exported: the notebook's class names
from deepnnk.nets.data import load_cifar10
from deepnnk.nets.loading import load_network
from deepnnk.studies.explanations import network_proba, sample_indices
from deepnnk.studies.profiles import pick

# The modules whose source goes into an attack's cache key (besides the model's own module).
CODE = ("nets.attacks", "studies.adversarial", "nets.features", "cache")
SCORES = ("n_neighbours", "residual", "nnk_disagreement", "knn_disagreement")

# The network attacked and explained: the paper's regularised CNN after its last epoch.
MODEL, EPOCH = "regularised", 20
ATTACKS = ("fgsm", "pgd")  # untargeted L∞, in this order
PGD_STEPS = 10

# Sizes per profile: training features in NNK's database, test queries, ε in units of 1/255,
# and how many clean/adversarial gallery pairs to draw.
PROFILES = {
    "smoke": {"n_train": 5000, "n_test": 100, "eps_255": [2, 8], "n_galleries": 1},
    "quick": {"n_train": 50000, "n_test": 1000, "eps_255": [1, 2, 4, 8], "n_galleries": 3},
    "paper": {"n_train": 50000, "n_test": 10000, "eps_255": [1, 2, 4, 8], "n_galleries": 3},
}


def profile(name: str) -> dict:
    """The sizes of profile ``name`` (``"smoke"``, ``"quick"`` or ``"paper"``)."""
    return pick(PROFILES, name)


def config(sizes: dict, **params) -> dict:
    """The run's configuration as recorded in ``metrics.json``: the notebook's ``params``, the
    sizes that shape the numbers (``n_train``, ``n_test``, ``eps_255``), the attacks and PGD's
    steps."""
    shape = {key: sizes[key] for key in ("n_train", "n_test", "eps_255")}
    return {**params, **shape, "attacks": list(ATTACKS), "pgd_steps": PGD_STEPS}


# --------------------------------------------------------------------------- data and network


@dataclass
class Setting:
    """The attacked network, NNK's training database and the test queries of one run.

    ``train_ids``/``test_ids``: positions in CIFAR-10's official training/test order;
    ``train_images``/``images``: uint8 HWC; ``y_train``/``y``: their labels.
    """

    model: object
    train_ids: np.ndarray
    train_images: np.ndarray
    y_train: np.ndarray
    test_ids: np.ndarray
    images: np.ndarray
    y: np.ndarray


def load_setting(
    weights: str, sizes: dict, seed: int = 0, data_root=None, checkpoints_root=None
) -> Setting:
    """CIFAR-10, the :data:`MODEL` network after :data:`EPOCH` (``weights`` "paper" or
    "retrained"), a seeded sample of ``sizes["n_train"]`` training images (seed ``seed``) and of
    ``sizes["n_test"]`` test queries (seed ``seed + 1``). Empty roots mean the defaults."""
    x_train, y_train, x_test, y_test = load_cifar10(data_root or None)
    model = load_network(weights, MODEL, EPOCH, data_root or None, checkpoints_root)
    train_ids = sample_indices(np.ones(len(x_train), bool), sizes["n_train"], seed)
    test_ids = sample_indices(np.ones(len(x_test), bool), sizes["n_test"], seed + 1)
    return Setting(
        model,
        train_ids,
        x_train[train_ids],
        y_train[train_ids],
        test_ids,
        x_test[test_ids],
        y_test[test_ids],
    )


def fit_databases(model, train_images, y_train, k: int, solver: str):
    """NNK and kernel-kNN classifiers (``k`` candidates) over the training images' features
    (cached): the two explainers of every input set."""
    F_train = features.extract(model, train_images)
    clf = NNKClassifier(k, solver=solver).fit(F_train, y_train)
    knn = NNKClassifier(k, solver=solver, weighting="knn").fit(F_train, y_train)
    return clf, knn


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
    net_pred = network_proba(model, F).argmax(1)
    return Run(
        name, net_pred, explain.neighbourhood_table(clf, F), explain.neighbourhood_table(knn, F)
    )


def run_attacks(
    model, clf, knn, images, y, clean: Run, eps_list, seed: int = 0
) -> tuple[dict[tuple[str, float], Run], dict]:
    """Every attack of :data:`ATTACKS` at every ε of ``eps_list`` (in units of 1/255), cached
    (:func:`cached_attack`, PGD with :data:`PGD_STEPS` steps and seed ``seed``), each run
    through :func:`run_inputs` and measured against ``clean`` (:func:`attack_metrics`).

    Returns the runs ``{(attack, ε): Run}`` and the metrics ``{attack: {eps_key(ε): dict}}``.
    """
    runs, results = {}, {}
    for attack in ATTACKS:
        for e in eps_list:
            adv = cached_attack(model, images, y, attack, e / 255, steps=PGD_STEPS, seed=seed)
            runs[attack, e] = run_inputs(f"{attack} {e}/255", model, clf, knn, adv)
            m = attack_metrics(y, clean, runs[attack, e])
            results.setdefault(attack, {})[eps_key(e)] = m
    return runs, results


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


# ----------------------------------------------------------------- what the notebook shows


def attack_label(attack: str, eps_255: float) -> str:
    """``"PGD ε=8/255"``: an attack at one ε, for titles and legends."""
    return f"{attack.upper()} ε={eps_255}/255"


def gallery_picks(y, clean: Run, adv: Run, n: int, seed: int = 0) -> np.ndarray:
    """Up to ``n`` seeded successful adversarial examples (:func:`successful`), as sorted
    positions among the queries: the clean/adversarial pairs the notebook draws."""
    return sample_indices(successful(y, clean, adv), n, seed)


def true_share_groups(y, clean: Run, adv: Run, label: str) -> dict[str, np.ndarray]:
    """The NNK weight share on the true class of the successful adversarial examples (under
    ``label``) and of their clean twins (under ``"clean"``)."""
    ok = successful(y, clean, adv)
    share_true = explain.weight_share(adv.nnk, y)
    return {"clean": explain.weight_share(clean.nnk, y)[ok], label: share_true[ok]}


def polytope_successful(results: dict) -> dict[str, dict[str, float]]:
    """``other_class_polytope_successful`` per attack and ε, rounded to 3 decimals."""
    return {
        a: {e: round(m["other_class_polytope_successful"], 3) for e, m in per.items()}
        for a, per in results.items()
    }


def accuracy_report(clean: dict, rows: list[dict]) -> str:
    """The clean accuracies (:func:`clean_metrics`) and, per :func:`table` row, the accuracies
    under attack, one line each."""
    lines = [
        f"clean: network {clean['network_accuracy']:.3f}, NNK {clean['nnk_accuracy']:.3f}, "
        f"kNN {clean['knn_accuracy']:.3f}"
    ]
    lines += [
        f"{r['attack']:4s} ε={r['eps_255']}/255: network {r['network_accuracy']:.3f}  "
        f"NNK {r['nnk_accuracy']:.3f}  kNN {r['knn_accuracy']:.3f}"
        for r in rows
    ]
    return "\n".join(lines)


def auc_report(rows: list[dict]) -> str:
    """The detection AUCs of every score, per :func:`table` row, one line each."""
    return "\n".join(
        f"{r['attack']:4s} ε={r['eps_255']}/255: "
        + "  ".join(f"{s} {r['auc_' + s]:.3f}" for s in SCORES)
        for r in rows
    )


def summary(clean: dict, results: dict, n_queries: int, n_train: int) -> dict:
    """The headline numbers (``metrics["summary"]``): clean accuracies, and per attack and ε the
    accuracies, NNK's agreement with the network, the weight shares, the other-class polytope
    fraction and three detection AUCs."""
    out = {
        f"clean_{key}": clean[key] for key in ("network_accuracy", "nnk_accuracy", "knn_accuracy")
    }
    for attack, per in results.items():
        for ek, m in per.items():
            for key in (
                "network_accuracy",
                "nnk_accuracy",
                "nnk_agrees_with_network",
                "share_true_adv",
                "share_adv_class_adv",
                "other_class_polytope_successful",
            ):
                out[f"{attack}_{ek}_{key}"] = m[key]
            for s in ("n_neighbours", "residual", "knn_disagreement"):
                out[f"{attack}_{ek}_auc_{s}"] = m["auc"][s]
    return {**out, "n_queries": n_queries, "n_train": n_train}


def to_hwc(image) -> np.ndarray:
    """A float NCHW-style ``[3, H, W]`` image in [0, 1] as ``[H, W, 3]`` for plotting."""
    return np.clip(np.transpose(np.asarray(image, dtype=np.float32), (1, 2, 0)), 0.0, 1.0)
