r"""What notebook 03 states about adversarial examples, computed from what
:mod:`deepnnk.studies.adversarial` returns (that module keys the cache of adversarial images, so
this one adds to it without touching it).

Per attack and ε (:func:`attack_report`), on the *successful* adversarial examples (network right
on the clean twin, wrong on the adversarial one) unless said otherwise:

- **detection against all clean queries** (``auc_all_clean``): the ROC AUC of each score of
  :data:`~deepnnk.studies.adversarial.SCORES`, successful adversarial examples against *every*
  clean query, the misclassified ones included. :func:`~deepnnk.studies.adversarial.attack_metrics`
  compares them with their own clean twins, which the network got right by construction: an
  easier reference set than the one a detector meets (``auc_twin``; ``auc_drop`` = twin − all).
- **support overlap** of the clean image and its adversarial twin: the Jaccard index
  :math:`|S_c \cap S_a| / |S_c \cup S_a|` of their NNK supports (training ids with
  :math:`\theta > 0`), and the weighted overlap :math:`\sum_{j \in S_c \cap S_a}
  \min(\theta_{c,j}, \theta_{a,j})` of their normalised weights (1: the same interpolation,
  0: no training image in common); ``no_shared_neighbour`` is the fraction with none in common.
- **feature geometry**, to reconcile NNK's residual with the Euclidean distances of notebook 04:
  the ratio ‖f_adv‖ / ‖f_clean‖ of the feature norms; the cosine similarity of each feature to
  its cosine-nearest training feature; the Euclidean distance of the unnormalised feature to its
  nearest training feature, as notebook 04 measures it (NNK's first candidate: its candidates are
  the k nearest training features by L2 on the raw features); and the ROC AUC of each of these,
  with the NNK residual's, against the clean twins. NNK's weights and residual use the cosine
  kernel :math:`K = \tfrac12 + \tfrac12\cos`, which sees only directions: on the same
  candidates, scaling a feature leaves its residual unchanged. A feature whose norm grows while
  its direction stays among the training directions thus keeps a small residual and a high
  cosine similarity, yet moves away from every training feature in Euclidean distance; only the
  choice of the candidates sees the norm.

:func:`report` gathers them, with the same numbers at the smallest and largest ε under fixed keys
(``fgsm_min``, ``pgd_max``, ...) so that the notebook's sentences read one template in every
profile; :func:`transfer` compares NNK's and the network's accuracy under the (transferred)
attacks; :func:`table` extends the notebook's table with both AUCs.
"""

from __future__ import annotations

import numpy as np

from deepnnk.neighbors import knn
from deepnnk.nets import features
from deepnnk.studies import adversarial
from deepnnk.studies.adversarial import ATTACKS, PGD_STEPS, SCORES, Run, eps_key

#: Scores of the feature-geometry comparison, each read "higher = adversarial".
GEOMETRY_SCORES = ("residual", "cosine_distance", "feature_norm", "nn_distance")


# --------------------------------------------------------------------------- per query


def support_overlap(clean_weights, clean_index, adv_weights, adv_index):
    """Per query ``[n]``: the Jaccard index of the two NNK supports and their weighted overlap
    Σ min(θ_clean, θ_adv) over shared training ids (weights normalised to sum to 1).

    ``*_weights``/``*_index``: ``[n, m]`` :class:`~deepnnk.explain.NeighbourTable` rows."""
    # All pairs of candidates at once ([n, m, m]; the candidates of one row are distinct ids):
    # no Python loop over queries.
    cw, aw = _normalised(clean_weights), _normalised(adv_weights)
    same = np.asarray(clean_index)[:, :, None] == np.asarray(adv_index)[:, None, :]
    both = same & (cw > 0)[:, :, None] & (aw > 0)[:, None, :]
    shared = both.sum(axis=(1, 2))
    union = (cw > 0).sum(1) + (aw > 0).sum(1) - shared
    jaccard = np.where(union > 0, shared / np.maximum(union, 1), 1.0)
    weighted = (np.minimum(cw[:, :, None], aw[:, None, :]) * both).sum(axis=(1, 2))
    return jaccard, weighted


def _normalised(weights) -> np.ndarray:
    w = np.asarray(weights, float)
    total = w.sum(1, keepdims=True)
    return w / np.where(total > 0, total, 1.0)


def cosine_nn(F, F_train) -> np.ndarray:
    """Cosine similarity ``[n]`` of each feature to its cosine-nearest training feature (an exact
    search, :func:`deepnnk.neighbors.knn`, over unit rows: L2 order on the sphere is cosine
    order)."""
    U, V = _unit(F), _unit(F_train)
    _, idx = knn(U.astype(np.float32), V.astype(np.float32), 1)
    return np.einsum("ij,ij->i", U, V[np.asarray(idx)[:, 0]])


def _unit(F) -> np.ndarray:
    F = np.asarray(F, np.float64)
    return F / np.maximum(np.linalg.norm(F, axis=1, keepdims=True), 1e-300)


def nn_distance(F, F_train, index) -> np.ndarray:
    """Euclidean distance ``[n]`` from each raw feature to training feature ``index[:, 0]``, its
    first NNK candidate: the nearest by L2 (the classifier's exact candidate search), recomputed
    from the difference in float64 as :func:`deepnnk.studies.generative.nearest_distance`
    (notebook 04's measure) does."""
    diff = np.asarray(F, np.float64) - np.asarray(F_train, np.float64)[np.asarray(index)[:, 0]]
    return np.sqrt(np.einsum("ij,ij->i", diff, diff))


def norms(F) -> np.ndarray:
    """Euclidean norms ``[n]`` of the feature rows."""
    return np.linalg.norm(np.asarray(F, np.float64), axis=1)


def geometry(F, F_train, run: Run) -> dict[str, np.ndarray]:
    """Per-query feature geometry of one input set: norm, cosine similarity to the nearest
    training feature, Euclidean distance to the nearest training feature, NNK residual."""
    return {
        "norm": norms(F),
        "cos_nn": cosine_nn(F, F_train),
        "nn_distance": nn_distance(F, F_train, run.nnk.index),
        "residual": np.asarray(run.nnk.residual, float),
    }


def _geometry_scores(g: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {
        "residual": g["residual"],
        "cosine_distance": 1.0 - g["cos_nn"],
        "feature_norm": g["norm"],
        "nn_distance": g["nn_distance"],
    }


# --------------------------------------------------------------------------- per (attack, ε)


def _mean(x) -> float:
    x = np.asarray(x, float)
    return float(x.mean()) if x.size else float("nan")


def attack_report(y, clean: Run, adv: Run, g_clean: dict, g_adv: dict) -> dict:
    """The numbers of the module docstring for one attack at one ε (``g_*``: :func:`geometry`)."""
    y = np.asarray(y)
    ok = adversarial.successful(y, clean, adv)
    s_clean, s_adv = adversarial.scores(clean), adversarial.scores(adv)
    jac, wov = support_overlap(clean.nnk.weights, clean.nnk.index, adv.nnk.weights, adv.nnk.index)
    gs_clean, gs_adv = _geometry_scores(g_clean), _geometry_scores(g_adv)
    twin = {s: adversarial.detection_auc(s_clean[s][ok], s_adv[s][ok]) for s in SCORES}
    every = {s: adversarial.detection_auc(s_clean[s], s_adv[s][ok]) for s in SCORES}
    return {
        "n_successful": int(ok.sum()),
        "n_clean": int(len(y)),
        "n_clean_misclassified": int((clean.net_pred != y).sum()),
        "n_clean_right": int((clean.net_pred == y).sum()),
        "auc_twin": twin,
        "auc_all_clean": every,
        "auc_drop": {s: twin[s] - every[s] for s in SCORES},
        "support_jaccard": _mean(jac[ok]),
        "weighted_overlap": _mean(wov[ok]),
        "no_shared_neighbour": _mean(jac[ok] == 0),
        "norm_ratio": _mean(g_adv["norm"][ok] / g_clean["norm"][ok]),
        "cos_nn_clean": _mean(g_clean["cos_nn"][ok]),
        "cos_nn_adv": _mean(g_adv["cos_nn"][ok]),
        "nn_distance_clean": _mean(g_clean["nn_distance"][ok]),
        "nn_distance_adv": _mean(g_adv["nn_distance"][ok]),
        "residual_clean": _mean(g_clean["residual"][ok]),
        "residual_adv": _mean(g_adv["residual"][ok]),
        "auc_geometry": {
            s: adversarial.detection_auc(gs_clean[s][ok], gs_adv[s][ok]) for s in GEOMETRY_SCORES
        },
    }


def clean_features(model, images):
    """The features of the clean images (cached, :func:`deepnnk.nets.features.extract`)."""
    return features.extract(model, images)


def attacked_features(model, images, y, attack: str, eps_255: float, seed: int = 0):
    """The features of the adversarial images of ``attack`` at ``eps_255`` (both cached: the
    images by :func:`~deepnnk.studies.adversarial.cached_attack`, with the notebook's PGD steps
    and seed, the features by :func:`deepnnk.nets.features.extract`)."""
    adv = adversarial.cached_attack(
        model, images, y, attack, eps_255 / 255, steps=PGD_STEPS, seed=seed
    )
    return features.extract(model, adv)


def report(model, clf, images, y, clean: Run, runs: dict, results: dict, seed: int = 0) -> dict:
    """``metrics["report"]``: :func:`attack_report` for every ``runs[(attack, ε)]`` (under
    ``attacks[attack][eps_key]``), :func:`transfer`, the clean queries' geometry, and the
    numbers at the smallest and largest ε under ``<attack>_min`` / ``<attack>_max``.

    ``results``: the metrics of :func:`~deepnnk.studies.adversarial.run_attacks`, merged into the
    ``<attack>_min/max`` entries so that one key path holds every number of a sentence."""
    F_train = clf.X_fit_
    g_clean = geometry(clean_features(model, images), F_train, clean)
    eps_list = sorted({e for _, e in runs})
    per = {}
    for (attack, e), adv in runs.items():
        g_adv = geometry(attacked_features(model, images, y, attack, e, seed), F_train, adv)
        per.setdefault(attack, {})[eps_key(e)] = attack_report(y, clean, adv, g_clean, g_adv)
    out = {
        "eps_min": eps_list[0],
        "eps_max": eps_list[-1],
        "attacks": per,
        "clean": {
            "n_queries": int(len(y)),
            "n_misclassified": int((clean.net_pred != np.asarray(y)).sum()),
            "cos_nn": _mean(g_clean["cos_nn"]),
            "nn_distance": _mean(g_clean["nn_distance"]),
            "residual": _mean(g_clean["residual"]),
        },
    }
    for attack in per:
        for end, e in (("min", eps_list[0]), ("max", eps_list[-1])):
            merged = {**results[attack][eps_key(e)], **per[attack][eps_key(e)]}
            out[f"{attack}_{end}"] = {"eps_255": e, **merged}
    return out


# --------------------------------------------------------------------------- transfer


def transfer(clean: dict, results: dict) -> dict:
    """NNK against the network on the adversarial images, which were computed from the
    *network's* gradients only (transferred to NNK, not adaptive to it).

    ``clean``: :func:`~deepnnk.studies.adversarial.clean_metrics`. Returns the number of
    (attack, ε) settings and of those where NNK is more accurate than the network, the smallest
    and largest accuracy gap NNK − network over them, the clean gap, and, in words
    (``"above"``/``"below"``/``"level with"``), where NNK stands at the smallest and largest ε of
    each attack (``<attack>_min_word``, ``<attack>_max_word``)."""
    gaps = {
        (a, ek): m["nnk_accuracy"] - m["network_accuracy"]
        for a, per in results.items()
        for ek, m in per.items()
    }
    out = {
        "n_settings": len(gaps),
        "n_nnk_above_network": int(sum(g > 0 for g in gaps.values())),
        "gap_min": float(min(gaps.values())),
        "gap_max": float(max(gaps.values())),
        "clean_gap": float(clean["nnk_accuracy"] - clean["network_accuracy"]),
    }
    for a, per in results.items():
        keys = sorted(per, key=lambda k: float(k[3:]))
        for end, ek in (("min", keys[0]), ("max", keys[-1])):
            out[f"{a}_{end}_gap"] = float(gaps[a, ek])
            out[f"{a}_{end}_word"] = _word(gaps[a, ek])
    return out


def _word(gap: float, tol: float = 0.005) -> str:
    return "above" if gap > tol else "below" if gap < -tol else "level with"


# ------------------------------------------------------------------ what the notebook shows


def table(rows: list[dict], rep: dict) -> list[dict]:
    """The rows of :func:`deepnnk.studies.adversarial.table` with, per score, the AUC against all
    clean queries (``auc_all_<score>``) beside the AUC against the clean twins (``auc_<score>``),
    and the support overlap."""
    out = []
    for r in rows:
        m = rep["attacks"][r["attack"]][eps_key(r["eps_255"])]
        extra = {f"auc_all_{s}": m["auc_all_clean"][s] for s in SCORES}
        extra |= {key: m[key] for key in ("support_jaccard", "weighted_overlap")}
        out.append({**r, **extra})
    return out


def auc_report(rows: list[dict]) -> str:
    """Per :func:`table` row, each score's AUC against the clean twins / against all clean
    queries, one line each."""
    return "\n".join(
        f"{r['attack']:4s} ε={r['eps_255']}/255: "
        + "  ".join(f"{s} {r['auc_' + s]:.3f}/{r['auc_all_' + s]:.3f}" for s in SCORES)
        for r in rows
    )


def geometry_report(rep: dict) -> str:
    """Per attack and ε: support overlap, norm ratio, cosine similarity to the nearest training
    feature (clean twin → adversarial), residual, Euclidean distance, and the residual's and the
    Euclidean distance's AUC, one line each."""
    lines = []
    for attack in ATTACKS:
        for ek, m in rep["attacks"].get(attack, {}).items():
            auc = m["auc_geometry"]
            lines.append(
                f"{attack:4s} ε={ek[3:]}/255: Jaccard {m['support_jaccard']:.3f}  "
                f"Σmin θ {m['weighted_overlap']:.3f}  norm ×{m['norm_ratio']:.2f}  "
                f"cos-NN {m['cos_nn_clean']:.3f}→{m['cos_nn_adv']:.3f}  "
                f"residual {m['residual_clean']:.3f}→{m['residual_adv']:.3f} "
                f"(AUC {auc['residual']:.3f})  "
                f"L2-NN {m['nn_distance_clean']:.2f}→{m['nn_distance_adv']:.2f} "
                f"(AUC {auc['nn_distance']:.3f})"
            )
    return "\n".join(lines)


def summary(rep: dict) -> dict:
    """Headline numbers to add to ``metrics["summary"]``: per attack at the largest ε, the
    residual's AUC against all clean queries, the support overlap, the norm ratio and the
    Euclidean distance's AUC."""
    out = {}
    for attack in ATTACKS:
        m = rep.get(f"{attack}_max")
        if m is None:
            continue
        ek = eps_key(m["eps_255"])
        out[f"{attack}_{ek}_auc_all_clean_residual"] = m["auc_all_clean"]["residual"]
        out[f"{attack}_{ek}_support_jaccard"] = m["support_jaccard"]
        out[f"{attack}_{ek}_weighted_overlap"] = m["weighted_overlap"]
        out[f"{attack}_{ek}_norm_ratio"] = m["norm_ratio"]
        out[f"{attack}_{ek}_auc_nn_distance"] = m["auc_geometry"]["nn_distance"]
    return out
