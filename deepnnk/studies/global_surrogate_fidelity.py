r"""The fidelity tests of Guo et al. (2018) for any pixel ranking, with bootstrap intervals, and
the "vulnerability discovery" of the filling test set against NNK's detection scores (notebook
09; the surrogate and the rankings are in :mod:`.global_surrogate`).

Images are float ``[n, C, H, W]`` in [0, 1]; ``pixels`` are flat H·W positions, and an operation
on a pixel applies to all C channels of that position:

- **nullification** (:func:`nullification`): zero the pixels (black in RGB) of the class-c
  images; the score is the drop in the network's accuracy on them (per image: correct before −
  correct after, so it can be negative);
- **filling** (:func:`filling`): paste the pixels (all channels) of a class-c image into an
  other-class image (each target paired with a seeded random class-c source the network
  predicts as c); the score is the share of targets the network then predicts as c;
- **pathological** (:func:`pathological`): the pixels of each class-c image alone on a noise
  background (U(0, 1) per channel, seeded); the score is the share predicted as c.

**Intervals** (:func:`bootstrap`): as the authors' code, 10 resamples of 30% of the images
(without replacement); the point estimate is the score on all images, and the 95% interval is
±1.96 standard errors, the standard error estimated from the resamples' spread scaled from 30% of
the images to all of them.

**Detection** (:func:`vulnerability_detection`): the filling images of one ranking that flip the
network to c, scored by notebook 03's NNK scores (:func:`deepnnk.studies.adversarial.scores`:
neighbour count, residual, disagreements) against clean held-out class-c images the network
predicts as c; AUC by :func:`deepnnk.studies.adversarial.detection_auc` (higher = flipped).
"""

from __future__ import annotations

import numpy as np
import torch

from deepnnk import NNKClassifier, explain
from deepnnk.studies import adversarial
from deepnnk.studies.global_surrogate import Target, network_features, predict

TESTS = ("nullification", "filling", "pathological")
SCORE_LABELS = {
    "n_neighbours": "the NNK neighbour count",
    "residual": "the NNK residual",
    "nnk_disagreement": "NNK's disagreement with the network",
    "knn_disagreement": "kNN's disagreement with the network",
}
TEST_LABELS = {
    "nullification": "nullification: accuracy drop",
    "filling": "filling: share flipped to c",
    "pathological": "pathological: share predicted c",
}


def _check_pixels(images, pixels) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(images)
    if x.ndim != 4:
        raise ValueError(f"images must be [n, C, H, W], got shape {x.shape}.")
    px = np.asarray(pixels, dtype=np.int64).ravel()
    hw = x.shape[2] * x.shape[3]
    if px.size and (px.min() < 0 or px.max() >= hw):
        raise ValueError(
            f"pixels must be flat positions in 0..{hw - 1}, got {px.min()}..{px.max()}."
        )
    if np.unique(px).size != px.size:
        raise ValueError("pixels contain duplicates; pass each position once.")
    return x, px


def zero_pixels(images, pixels) -> np.ndarray:
    """A copy of ``images [n, C, H, W]`` with ``pixels`` (flat H·W positions) set to 0 in every
    channel."""
    x, px = _check_pixels(images, pixels)
    out = x.copy().reshape(len(x), x.shape[1], -1)
    out[:, :, px] = 0
    return out.reshape(x.shape)


def fill_pixels(targets, sources, pixels) -> np.ndarray:
    """A copy of ``targets`` with ``pixels`` (all channels) taken from ``sources`` (same shape)."""
    x, px = _check_pixels(targets, pixels)
    src = np.asarray(sources)
    if src.shape != x.shape:
        raise ValueError(f"sources {src.shape} and targets {x.shape} must have the same shape.")
    out = x.copy().reshape(len(x), x.shape[1], -1)
    out[:, :, px] = src.reshape(len(src), src.shape[1], -1)[:, :, px]
    return out.reshape(x.shape)


def noise_images(n: int, shape, seed: int = 0) -> np.ndarray:
    """``n`` float32 images of ``shape (C, H, W)`` with U(0, 1) pixels, seeded."""
    return np.random.default_rng(seed).uniform(size=(n, *shape)).astype(np.float32)


def bootstrap(values, n_boot: int = 10, frac: float = 0.3, seed: int = 0) -> dict:
    """Mean of per-image ``values [n]`` (``"mean"``) with a 95% interval (``"lo"``, ``"hi"``)
    from ``n_boot`` resamples of ``frac`` of the images without replacement (the authors' 10 ×
    30%): a subsample mean of m = frac·n images has variance (1 − frac)·σ²/m, so the standard
    error of the full mean is ``sd`` (of the resampled means) × √(frac / (1 − frac)), and the
    interval is mean ± 1.96 of it. Also ``"sd"`` and ``"n"``."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if not 0 < frac < 1 or n_boot < 2:
        raise ValueError(f"need 0 < frac < 1 and n_boot >= 2, got {frac}, {n_boot}.")
    if v.size == 0:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "sd": float("nan"),
                "n": 0}  # fmt: skip
    m = max(1, int(round(frac * v.size)))
    rng = np.random.default_rng(seed)
    est = np.array([v[rng.choice(v.size, m, replace=False)].mean() for _ in range(n_boot)])
    sd = float(est.std(ddof=1))
    half = 1.96 * sd * np.sqrt(frac / (1 - frac))
    mean = float(v.mean())
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "sd": sd, "n": int(v.size)}


def nullification(model, images, labels, pixels, c: int) -> np.ndarray:
    """Per class-c image: correct before − correct after zeroing ``pixels`` ``[n]`` (0, ±1)."""
    labels = np.asarray(labels)
    before = predict(model, images) == labels
    after = predict(model, zero_pixels(images, pixels)) == labels
    return before.astype(float) - after.astype(float)


def filling(model, targets, sources, pixels, c: int) -> tuple[np.ndarray, np.ndarray]:
    """The filled images and, per target, whether the network now predicts c ``[n]`` bool."""
    filled = fill_pixels(targets, sources, pixels)
    return filled, predict(model, filled) == c


def pathological(model, sources, pixels, c: int, seed: int = 0) -> np.ndarray:
    """Per source: is ``pixels`` of it on a noise background predicted as c ``[n]`` bool."""
    sources = np.asarray(sources)
    bg = noise_images(len(sources), sources.shape[1:], seed)
    return predict(model, fill_pixels(bg, sources, pixels)) == c


def test_sets(target: Target, n_fill: int, seed: int = 0) -> dict:
    """From the held-out images: ``class_c`` (true class c) and their labels, ``sources`` (true
    c and predicted c), ``targets`` (true and predicted other-class, at most ``n_fill``) and
    ``paired`` (a seeded random source per target)."""
    x, y, c = target.heldout_images, target.heldout_labels, target.c
    pred = predict(target.model, x)
    rng = np.random.default_rng(seed)
    src = x[(y == c) & (pred == c)]
    other = np.flatnonzero((y != c) & (pred != c))
    other = np.sort(rng.permutation(other)[:n_fill])
    if len(src) == 0 or len(other) == 0:
        raise ValueError(
            f"no held-out images of class {c} that the network gets right, or none of other "
            "classes; raise n_heldout."
        )
    paired = src[rng.integers(0, len(src), len(other))]
    return {"class_c": x[y == c], "class_c_labels": y[y == c], "sources": src,
            "targets": x[other], "paired": paired}  # fmt: skip


def fidelity_table(target: Target, order: dict, sets: dict, sizes: dict, seed: int = 0):
    """Every ranking of ``order`` ({name: feature columns}) through the three tests, with
    bootstrap intervals. Returns ``(table {ranking: {test: {mean, lo, hi, n}}}, filled)``
    where ``filled[ranking] = (filled images, flipped [n] bool)``."""
    boot = dict(n_boot=sizes["n_boot"], frac=sizes["boot_frac"], seed=seed)
    m, c = target.model, target.c
    table, filled = {}, {}
    for name in order:
        px = target.pixels[np.asarray(order[name])]
        nul = nullification(m, sets["class_c"], sets["class_c_labels"], px, c)
        fil_images, flip = filling(m, sets["targets"], sets["paired"], px, c)
        pat = pathological(m, sets["sources"], px, c, seed)
        table[name] = {"nullification": bootstrap(nul, **boot), "filling": bootstrap(flip, **boot),
                       "pathological": bootstrap(pat, **boot)}  # fmt: skip
        filled[name] = (fil_images, flip)
    return table, filled


def verdict(table: dict) -> dict:
    """Per test, the ranking with the largest score, and whether DMM-MEN beats random and NNK
    (its mean above theirs) and whether their intervals overlap."""
    out = {}
    for t in TESTS:
        mean = {n: table[n][t]["mean"] for n in table}
        out[t] = {"best": max(mean, key=lambda n: -np.inf if np.isnan(mean[n]) else mean[n])}
        d = table.get("dmm_men", {}).get(t)
        for other in ("random", "nnk", "elastic_net"):
            if d is None or other not in table:
                continue
            o = table[other][t]
            out[t][f"dmm_beats_{other}"] = bool(d["mean"] > o["mean"])
            out[t][f"overlap_{other}"] = bool(d["lo"] <= o["hi"] and o["lo"] <= d["hi"])
    return out


# --------------------------------------------------------------------------- detection


def databases(target: Target, k: int, solver: str = "exact"):
    """NNK and kernel-kNN classifiers over the network's features of the fit images (true
    labels), as notebook 03 (:func:`deepnnk.studies.adversarial.fit_databases` for CIFAR)."""
    if target.name == "cifar":
        return adversarial.fit_databases(target.model, target.fit_images, target.fit_labels, k,
                                         solver)  # fmt: skip
    F = network_features(target.model, target.fit_images)
    clf = NNKClassifier(k, solver=solver).fit(F, target.fit_labels)
    knn = NNKClassifier(k, solver=solver, weighting="knn").fit(F, target.fit_labels)
    return clf, knn


def run_inputs(target: Target, name: str, clf, knn, images) -> adversarial.Run:
    """Notebook 03's :class:`~deepnnk.studies.adversarial.Run` of ``images`` (CIFAR: its own
    :func:`~deepnnk.studies.adversarial.run_inputs`; digits: the same on the digits features)."""
    if target.name == "cifar":
        return adversarial.run_inputs(name, target.model, clf, knn, images)
    F = network_features(target.model, images)
    with torch.inference_mode():
        pred = target.model.fc(torch.as_tensor(F, dtype=torch.float32)).numpy().argmax(1)
    return adversarial.Run(
        name,
        pred,
        explain.neighbourhood_table(clf, F),
        explain.neighbourhood_table(knn, F),
    )


def vulnerability_detection(target: Target, clf, knn, filled, sets: dict) -> dict:
    """How many filling images flip the network to c, and the AUC of each of notebook 03's
    scores at telling the flipped ones (positive) from clean class-c sources (negative)."""
    images, flip = filled
    out = {"n_filling": int(len(flip)), "n_flipped": int(flip.sum()),
           "share_flipped": float(flip.mean()) if len(flip) else float("nan")}  # fmt: skip
    clean = run_inputs(target, "clean class c", clf, knn, sets["sources"])
    s_clean = adversarial.scores(clean)
    if flip.any():
        s_flip = adversarial.scores(run_inputs(target, "flipped", clf, knn, images[flip]))
    else:
        s_flip = {key: np.zeros(0) for key in s_clean}
    out["auc"] = {key: adversarial.detection_auc(s_clean[key], s_flip[key]) for key in s_clean}
    out["mean_clean"] = {key: float(np.mean(v)) for key, v in s_clean.items()}
    out["mean_flipped"] = {key: float(np.mean(v)) if len(v) else float("nan")
                           for key, v in s_flip.items()}  # fmt: skip
    out["scores"] = {"clean": s_clean, "flipped": s_flip}
    return out


def detection_metrics(det: dict) -> dict:
    """:func:`vulnerability_detection`'s numbers without the per-image scores."""
    return {key: v for key, v in det.items() if key != "scores"}


def conclusions(table: dict, fidelity: dict, detection: dict) -> dict:
    """Words for the notebook's verdict, computed from one target's numbers: which ranking wins
    each test, where NNK's ranking trails DMM-MEN's, the best surrogate, NNK's R² against
    DMM-MEN's mixture, and the best detection score."""
    from deepnnk.studies.global_surrogate import RANKING_LABELS, SURROGATE_LABELS

    v = verdict(table)
    best = {t: RANKING_LABELS[v[t]["best"]] for t in TESTS}
    trails = [t for t in TESTS if v[t].get("dmm_beats_nnk")]
    auc = {k: a for k, a in detection["auc"].items() if np.isfinite(a)}
    r2 = {n: fidelity[n]["r2"] for n in ("dmm_mixture", "nnk_pixels", "nnk_features")}
    return {
        **{f"best_{t}": best[t] for t in TESTS},
        "nnk_trails_dmm_on": ", ".join(trails) if trails else "none of the tests",
        "nnk_leads_dmm_on": ", ".join(t for t in TESTS if t not in trails) or "none of the tests",
        "best_surrogate": SURROGATE_LABELS[fidelity["best_r2"]],
        "nnk_pixels_vs_dmm": "above" if r2["nnk_pixels"] > r2["dmm_mixture"] else "below",
        "nnk_features_vs_dmm": "above" if r2["nnk_features"] > r2["dmm_mixture"] else "below",
        "best_detector": SCORE_LABELS[max(auc, key=auc.get)] if auc else "none (no flipped images)",
        "best_detector_auc": max(auc.values()) if auc else float("nan"),
    }


def all_conclusions(tables: dict, fidelity: dict, detection: dict) -> dict:
    """:func:`conclusions` for every target of ``tables`` (``{target: ...}`` each)."""
    return {name: conclusions(tables[name], fidelity[name], detection[name]) for name in tables}
