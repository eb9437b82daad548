r"""A global Bayesian surrogate (DMM-MEN, Guo et al. 2018) beside NNK's local interpolation
(notebook 09; the fidelity tests and detection are in :mod:`.global_surrogate_fidelity`, the
figures in :mod:`deepnnk.figures.global_surrogate`).

**Targets** (:func:`load_target`), one class ``c`` against the rest:

- ``"digits"``: the small CNN of :mod:`deepnnk.nets.digits` on scikit-learn's 8×8 digits; the
  surrogate's features are all 64 pixels (grey level / 16, in [0, 1]);
- ``"cifar"``: the authors' regularised CNN after epoch 20 on CIFAR-10. Its features are the
  300 pixel *positions* of highest variance of the grey level g = 0.299 R + 0.587 G + 0.114 B
  (pixels/255) over the fit images; the surrogate's X is g at those positions. The network
  always sees the full RGB image, so every other pixel is held at its image's value.

**Target values.** y = log(p_c / (1 − p_c)) from the network's softmax, computed from the logits
in float64 as logit_c − log Σ_{j≠c} exp(logit_j) (the same number, without forming p), then
clipped to ±log((1 − ε)/ε) with ε = :data:`P_CLIP` = 1e-6, i.e. p clipped to [ε, 1 − ε].

**Sampler.** :func:`deepnnk.nets.dmm_men.fit` on X with a constant column appended (an
intercept; the authors' code has none, which makes β carry the mean log-odds, about −5 for a
one-vs-rest class). The intercept is left out of every pixel ranking.

**Rankings** (:func:`rankings`, each ``n_top`` distinct feature columns): DMM-MEN's top |β| of
the dominant component (E[β of the largest component], pooled over chains); random; a plain
elastic net's top |β| (scikit-learn ``ElasticNetCV``, l1_ratio ½, 3-fold CV over 30 α); NNK's
*local covariance* (:func:`nnk_importance`).

**Surrogate fidelity** (:func:`surrogate_fidelity`): held-out R² and RMSE of the log-odds.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import ElasticNetCV, LinearRegression
from sklearn.metrics import mean_squared_error, r2_score

from deepnnk import NNKClassifier, NNKRegressor, cache, explain
from deepnnk.nets import digits as digits_net
from deepnnk.nets import dmm_men
from deepnnk.nets.data import CLASSES as CIFAR_CLASSES
from deepnnk.nets.data import load_cifar10
from deepnnk.nets.features import images_to_float
from deepnnk.nets.loading import load_network
from deepnnk.studies.explanations import sample_indices
from deepnnk.studies.profiles import pick

TARGETS = ("digits", "cifar")
RANKINGS = ("dmm_men", "random", "elastic_net", "nnk")
RANKING_LABELS = {
    "dmm_men": "DMM-MEN top |β|",
    "random": "random",
    "elastic_net": "elastic net top |β|",
    "nnk": "NNK local covariance",
}
SURROGATE_LABELS = {
    "dmm_mixture": "DMM-MEN's mixture mean",
    "dmm_best": "DMM-MEN's dominant component",
    "nnk_pixels": "NNK on pixels",
    "nnk_features": "NNK on the network's features",
    "linear": "least squares",
    "elastic_net": "the elastic net",
}
SURROGATES = ("dmm_mixture", "dmm_best", "nnk_pixels", "nnk_features", "linear", "elastic_net")
P_CLIP = 1e-6
GREY = np.array([0.299, 0.587, 0.114])

# Per target: n_fit images (surrogate fit set, also NNK's database), n_heldout test images,
# n_iter Gibbs iterations × n_chains, n_top pixels per ranking, n_fill filling pairs; k NNK
# candidates; n_boot × boot_frac the bootstrap. Times (2 shared cores): smoke ≈ 45 s, quick ≈ 3 min
# under load. Paper: both targets run the authors' 20,000 iterations; the digits cost 1.3 ms an
# iteration idle (2.6 loaded), CIFAR-10 at n = 5,000, p = 301 25 ms idle (37 loaded), so its
# 4 × 20,000 take about 33 min idle and the whole notebook about 37 min idle (budget 60).
PROFILES = {
    "smoke": {
        "digits": {"n_test": 600, "n_fit": 600, "n_heldout": 600, "n_iter": 200, "n_chains": 2,
                   "n_top": 16, "n_fill": 200},
        "cifar": {"n_fit": 600, "n_heldout": 400, "p": 300, "n_iter": 60, "n_chains": 2,
                  "n_top": 75, "n_fill": 200},
        "k": 30, "n_boot": 10, "boot_frac": 0.3,
    },
    "quick": {
        "digits": {"n_test": 600, "n_fit": 1197, "n_heldout": 600, "n_iter": 5000, "n_chains": 4,
                   "n_top": 16, "n_fill": 500},
        "cifar": {"n_fit": 2000, "n_heldout": 1000, "p": 300, "n_iter": 1000, "n_chains": 4,
                  "n_top": 75, "n_fill": 500},
        "k": 50, "n_boot": 10, "boot_frac": 0.3,
    },
    "paper": {
        "digits": {"n_test": 600, "n_fit": 1197, "n_heldout": 600, "n_iter": 20000,
                   "n_chains": 4, "n_top": 16, "n_fill": 500},
        "cifar": {"n_fit": 5000, "n_heldout": 2000, "p": 300, "n_iter": 20000, "n_chains": 4,
                  "n_top": 75, "n_fill": 1000},
        "k": 50, "n_boot": 10, "boot_frac": 0.3,
    },
}  # fmt: skip


def profile(name: str) -> dict:
    """The sizes of profile ``name`` ("smoke", "quick" or "paper"), a copy."""
    return pick(PROFILES, name)


def config(sizes: dict, **params) -> dict:
    """What ``metrics.json`` records of the run: the notebook's ``params`` and the sizes."""
    return {**params, **sizes, "p_clip": P_CLIP, "rankings": list(RANKINGS)}


# --------------------------------------------------------------------------- targets


@dataclass
class Target:
    """One network and class. Images are float32 ``[n, C, H, W]`` in [0, 1] (C = 1 digits,
    3 CIFAR); ``pixels [p]`` are the flat H·W positions the surrogate's columns read;
    ``fit_*`` the fit set (also NNK's database), ``heldout_*`` held-out images."""

    name: str
    model: torch.nn.Module
    c: int
    classes: tuple
    pixels: np.ndarray
    fit_images: np.ndarray
    fit_labels: np.ndarray
    heldout_images: np.ndarray
    heldout_labels: np.ndarray
    info: dict

    @property
    def class_name(self) -> str:
        return self.classes[self.c]


def load_target(
    name: str,
    sizes: dict,
    c: int,
    data_root=None,
    checkpoints_root=None,
    seed: int = 0,
    weights: str = "paper",
) -> Target:
    """The ``name`` target ("digits" or "cifar") at the profile's sizes, class ``c``.

    digits: the seeded split of :func:`deepnnk.nets.digits.split` (``n_test`` held out), the
    CNN trained on the rest (cached under ``checkpoints_root``). cifar: the authors' regularised
    CNN at epoch 20 (``weights`` "paper" or "retrained"), ``n_fit`` training and
    ``n_heldout`` test images (seeded samples).
    """
    if name not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {name!r}.")
    s = sizes[name]
    if not 0 <= c < 10:
        raise ValueError(f"class c must be in 0..9, got {c!r}.")
    if name == "digits":
        d = digits_net.split(s["n_test"], seed)
        model, info = digits_net.train_digits_cnn(
            d["x_train"], d["y_train"], checkpoints_root, seed
        )
        fit_x, fit_y = d["x_train"][: s["n_fit"]], d["y_train"][: s["n_fit"]]
        held_x, held_y = d["x_test"][: s["n_heldout"]], d["y_test"][: s["n_heldout"]]
        pixels = np.arange(64)
        return Target(
            name, model, c, digits_net.CLASSES, pixels, fit_x, fit_y, held_x, held_y, info
        )
    x_tr, y_tr, x_te, y_te = load_cifar10(data_root or None)
    model = load_network(weights, "regularised", 20, data_root or None, checkpoints_root)
    tr = sample_indices(np.ones(len(x_tr), bool), s["n_fit"], seed)
    te = sample_indices(np.ones(len(x_te), bool), s["n_heldout"], seed + 1)
    fit_x, held_x = (
        images_to_float(x[i]).contiguous().numpy() for x, i in ((x_tr, tr), (x_te, te))
    )
    pixels = top_variance_pixels(fit_x, s["p"])
    info = {"weights": weights, "model": "regularised", "epoch": 20}
    return Target(name, model, c, CIFAR_CLASSES, pixels, fit_x, y_tr[tr], held_x, y_te[te], info)


def grey(images) -> np.ndarray:
    """Grey levels ``[n, H·W]`` of float images ``[n, C, H, W]`` (C = 1: the channel; C = 3:
    0.299 R + 0.587 G + 0.114 B)."""
    x = np.asarray(images, dtype=np.float64)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must be float [n, 1 or 3, H, W], got shape {x.shape}.")
    g = x[:, 0] if x.shape[1] == 1 else np.einsum("nchw,c->nhw", x, GREY)
    return g.reshape(len(x), -1)


def top_variance_pixels(images, p: int) -> np.ndarray:
    """The ``p`` positions (flat H·W) of highest grey-level variance over ``images``, sorted."""
    var = grey(images).var(0)
    if not 0 < p <= var.size:
        raise ValueError(f"p must be in 1..{var.size}, got {p}.")
    return np.sort(np.argsort(-var, kind="stable")[:p])


def surrogate_X(target: Target, images) -> np.ndarray:
    """The surrogate's features ``[n, p]``: grey levels at ``target.pixels``."""
    return grey(images)[:, target.pixels]


def logits(model, images, batch_size: int = 500) -> np.ndarray:
    """The network's logits ``[n, 10]`` (float64) for float images, in inference mode."""
    out = []
    with torch.inference_mode():
        for s in range(0, len(images), batch_size):
            x = torch.as_tensor(np.asarray(images[s : s + batch_size], dtype=np.float32))
            out.append(model(x).double().numpy())
    return np.concatenate(out) if out else np.zeros((0, 10))


def network_features(model, images, batch_size: int = 500) -> np.ndarray:
    """``model.features`` ``[n, d]`` (PaperCNN: the flattened last block; digits: penultimate)."""
    out = []
    with torch.inference_mode():
        for s in range(0, len(images), batch_size):
            x = torch.as_tensor(np.asarray(images[s : s + batch_size], dtype=np.float32))
            out.append(model.features(x).double().numpy())
    return np.concatenate(out)


def predict(model, images) -> np.ndarray:
    """The network's labels ``[n]``."""
    return logits(model, images).argmax(1)


def log_odds(logit_values, c: int, p_clip: float = P_CLIP) -> np.ndarray:
    """y = log(p_c / (1 − p_c)) ``[n]`` from logits ``[n, C]``: logit_c − logsumexp of the
    others (float64, exact), clipped to ±log((1 − p_clip)/p_clip)."""
    z = np.asarray(logit_values, dtype=np.float64)
    others = np.delete(z, c, axis=1)
    m = others.max(1)
    y = z[:, c] - (m + np.log(np.exp(others - m[:, None]).sum(1)))
    bound = np.log((1 - p_clip) / p_clip)
    return np.clip(y, -bound, bound)


# --------------------------------------------------------------------------- DMM-MEN


@dataclass
class Surrogate:
    """The data and DMM-MEN's fit: ``X_fit [n, p]``, ``y_fit [n]``, ``X_heldout``,
    ``y_heldout``; ``result`` (on X with the intercept column last), ``seconds`` (the sampling
    time, as first measured) and ``cached`` (whether this run read the fit back)."""

    X_fit: np.ndarray
    y_fit: np.ndarray
    X_heldout: np.ndarray
    y_heldout: np.ndarray
    result: dmm_men.DMMMENResult
    seconds: float
    cached: bool = False

    @property
    def beta(self) -> np.ndarray:
        """E[β of the dominant component] over the pixels ``[p]`` (intercept dropped)."""
        return self.result.beta_best[:-1]

    def predict(self, X, mode: str = "mixture") -> np.ndarray:
        return self.result.predict(with_intercept(X), mode)


def with_intercept(X) -> np.ndarray:
    """``[n, p + 1]``: X and a constant column of ones, last."""
    X = np.asarray(X, dtype=np.float64)
    return np.column_stack([X, np.ones(len(X))])


def fit_surrogate(target: Target, sizes: dict, seed: int = 0, progress: bool = True):
    """Log-odds of the fit and held-out images, then DMM-MEN (``n_iter`` × ``n_chains``,
    burn-in half, seed ``seed``) on the fit set. Returns a :class:`Surrogate`."""
    s = sizes[target.name]
    X_fit, X_held = (
        surrogate_X(target, target.fit_images),
        surrogate_X(target, target.heldout_images),
    )
    y_fit = log_odds(logits(target.model, target.fit_images), target.c)
    y_held = log_odds(logits(target.model, target.heldout_images), target.c)
    res, seconds, cached = fit_cached(with_intercept(X_fit), y_fit, s["n_iter"], s["n_chains"],
                                      seed, progress)  # fmt: skip
    return Surrogate(X_fit, y_fit, X_held, y_held, res, seconds, cached)


def sampling_summary(surrogates: dict) -> dict:
    """The sampling time of the fits of ``surrogates`` (``{name: Surrogate}``) as first
    measured, and how many this run read back from the cache instead of sampling."""
    return {
        "seconds": float(sum(s.seconds for s in surrogates.values())),
        "n_fits": len(surrogates),
        "n_cached": int(sum(s.cached for s in surrogates.values())),
    }


def fit_cached(X, y, n_iter: int, n_chains: int, seed: int, progress: bool = False):
    """:func:`deepnnk.nets.dmm_men.fit` (default priors and burn-in), cached under
    ``<cache root>/dmm_men`` by the sampler's source, ``X``, ``y``, ``n_iter``, ``n_chains``
    and ``seed``: the paper profile samples for about 18 minutes, and a rerun reads the same
    traces back. Returns (result, the sampling's seconds as first measured, whether it was
    read from the cache)."""
    h = cache.array_digest(np.asarray(X, dtype=np.float64))
    cache.array_digest(np.asarray(y, dtype=np.float64), h)
    spec = {"code": cache.code_digest(["nets.dmm_men"]), "data": h.hexdigest(),
            "n_iter": int(n_iter), "n_chains": int(n_chains), "seed": int(seed)}  # fmt: skip
    path = cache.cache_dir("dmm_men") / f"fit-{cache.spec_digest(spec)}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["spec"]) == json.dumps(spec, sort_keys=True):
                    arrays = {f: z[f] for f in _RESULT_ARRAYS}
                    res = dmm_men.DMMMENResult(**arrays, burn_in=int(z["burn_in"]))
                    return res, float(z["seconds"]), True
        except (OSError, ValueError, KeyError):
            pass  # unreadable or from other code: sample again and overwrite
    t0 = time.time()
    res = dmm_men.fit(X, y, n_iter, n_chains, seed=seed, show_progress=progress)
    seconds = time.time() - t0
    arrays = {f: getattr(res, f) for f in _RESULT_ARRAYS}
    cache.atomic_write(
        path,
        lambda f: np.savez(
            f, **arrays, burn_in=res.burn_in, seconds=seconds,
            spec=json.dumps(spec, sort_keys=True),
        ),
    )  # fmt: skip
    return res, seconds, False


_RESULT_ARRAYS = (
    "beta_dominant", "sizes", "sigma2", "alpha", "lambdas", "loglik", "accept_sigma2",
    "accept_lambda", "beta_mean", "pi_mean", "sigma2_mean", "beta_mixture", "beta_best",
)  # fmt: skip


def top_coefficients(sur: Surrogate, n: int = 5) -> np.ndarray:
    """The ``n`` pixel columns of largest |E[β_dominant]|, largest first."""
    return np.argsort(-np.abs(sur.beta), kind="stable")[:n]


def convergence(sur: Surrogate, n_top: int = 5) -> dict:
    """Split R̂ (rank-normalised) after burn-in of the log-likelihood and of the dominant β's
    ``n_top`` largest coefficients; acceptance rates; the dominant component's share of points;
    the share of fit log-odds at the clip (``clipped_share``)."""
    r = sur.result
    b = r.burn_in
    top = top_coefficients(sur, n_top)
    rhat_beta = np.atleast_1d(dmm_men.split_rhat(r.beta_dominant[:, b:, top]))
    n_chains, n_iter = r.loglik.shape
    return {
        "n_iter": int(n_iter), "n_chains": int(n_chains), "burn_in": int(b),
        "n": int(len(sur.y_fit)), "p": int(sur.X_fit.shape[1]), "seconds": sur.seconds,
        "ms_per_iteration": 1000 * sur.seconds / (n_iter * n_chains),
        "rhat_loglik": float(dmm_men.split_rhat(r.loglik[:, b:])),
        "rhat_beta_top": rhat_beta.tolist(), "rhat_beta_max": float(rhat_beta.max()),
        "top_pixels": top.tolist(),
        "accept_sigma2": float(r.accept_sigma2.mean()),
        "accept_lambda": float(r.accept_lambda.mean()),
        "dominant_share": float(r.sizes[:, b:, 0].mean() / len(sur.y_fit)),
        "occupied_components": float((r.sizes[:, b:] > 0).sum(-1).mean()),
        "clipped_share": float(np.mean(np.abs(sur.y_fit) >= np.log((1 - P_CLIP) / P_CLIP) - 1e-9)),
        "mixing": mixing_word(max(float(dmm_men.split_rhat(r.loglik[:, b:])), rhat_beta.max())),
    }  # fmt: skip


def traces(sur: Surrogate, n_coef: int = 3) -> dict:
    """Trace data for plots: ``loglik [C, T]``, ``beta [C, T, n_coef]`` (the dominant β's
    largest coefficients, columns ``coef``), ``burn_in``."""
    top = top_coefficients(sur, n_coef)
    r = sur.result
    return {"loglik": r.loglik, "beta": r.beta_dominant[:, :, top], "coef": top,
            "burn_in": r.burn_in}  # fmt: skip


# --------------------------------------------------------------------------- rankings


def elastic_net(X, y, seed: int = 0) -> ElasticNetCV:
    """A plain elastic net with intercept: ``ElasticNetCV(l1_ratio=0.5, alphas=30, cv=3)``."""
    with warnings.catch_warnings():
        # the path's smallest α on collinear pixels stop at max_iter; CV discards those fits
        warnings.simplefilter("ignore", ConvergenceWarning)
        enet = ElasticNetCV(l1_ratio=0.5, alphas=30, cv=3, max_iter=5000, random_state=seed)
        return enet.fit(X, y)


def nnk_importance(X_db, y_db, X_query, k: int) -> np.ndarray:
    """NNK's pixel importance ``[p]``: the mean over queries of |Σ_j θ_j (x_jp − x̄_p)(y_j − ȳ)|,
    the covariance of pixel p and the log-odds over the query's NNK neighbours j in pixel space
    (θ normalised to sum 1, x̄ and ȳ their θ-weighted means). A pixel whose local variation
    moves with the log-odds scores high; one constant over the neighbourhood scores 0.
    Neighbours and θ are NNKClassifier's (cosine kernel, ``k`` candidates): NNKRegressor's own.
    """
    X_db = np.asarray(X_db, dtype=np.float64)
    y_db = np.asarray(y_db, dtype=np.float64)
    if len(X_db) != len(y_db):
        raise ValueError(f"X_db has {len(X_db)} rows but y_db has {len(y_db)}.")
    clf = NNKClassifier(k).fit(X_db, np.arange(len(X_db)) % 2)  # labels unused: θ only
    table = explain.neighbourhood_table(clf, np.asarray(X_query, dtype=np.float64))
    total = np.zeros(X_db.shape[1])
    for s in range(0, len(table), 256):  # [b, k, p] blocks bound the memory
        w, idx = table.weights[s : s + 256], table.index[s : s + 256]
        Xn, yn = X_db[idx], y_db[idx]
        xbar = np.einsum("bk,bkp->bp", w, Xn)
        ybar = (w * yn).sum(1)
        cov = np.einsum("bk,bkp,bk->bp", w, Xn - xbar[:, None], yn - ybar[:, None])
        total += np.abs(cov).sum(0)
    return total / max(len(table), 1)


def top_k(importance, n: int) -> np.ndarray:
    """The ``n`` columns of largest importance, largest first (ties by column)."""
    importance = np.asarray(importance, dtype=np.float64)
    if not 0 < n <= importance.size:
        raise ValueError(f"n must be in 1..{importance.size}, got {n}.")
    return np.argsort(-importance, kind="stable")[:n]


def rankings(sur: Surrogate, n_top: int, k: int, seed: int = 0) -> dict:
    """Each ranking's ``n_top`` feature columns (``"order"``) and per-column importance
    (``"importance"``; random: zeros), plus the elastic net (``"model"``) for the fidelity table.
    NNK's importance uses the fit set as database and the held-out images as queries."""
    p = sur.X_fit.shape[1]
    enet = elastic_net(sur.X_fit, sur.y_fit, seed)
    imp = {
        "dmm_men": np.abs(sur.beta),
        "random": np.zeros(p),
        "elastic_net": np.abs(enet.coef_),
        "nnk": nnk_importance(sur.X_fit, sur.y_fit, sur.X_heldout, k),
    }
    order = {name: top_k(v, n_top) for name, v in imp.items()}
    order["random"] = np.random.default_rng(seed).choice(p, n_top, replace=False)
    return {"order": order, "importance": imp, "model": enet}


def overlap(order: dict) -> dict:
    """Share of each ranking's pixels also in DMM-MEN's."""
    ref = set(np.asarray(order["dmm_men"]).tolist())
    return {n: len(ref & set(np.asarray(o).tolist())) / len(o) for n, o in order.items()}


# --------------------------------------------------------------------------- surrogate fidelity


def _score(y, pred) -> dict:
    return {"r2": float(r2_score(y, pred)), "rmse": float(np.sqrt(mean_squared_error(y, pred)))}


def surrogate_fidelity(target: Target, sur: Surrogate, enet, k: int) -> dict:
    """Held-out R² and RMSE of the log-odds for every surrogate of :data:`SURROGATES`: DMM-MEN
    as the mixture mean and as its dominant component; NNKRegressor (cosine, ``k``) on the
    pixels and on the network's features; least squares with intercept; the elastic net."""
    F_fit = network_features(target.model, target.fit_images)
    F_held = network_features(target.model, target.heldout_images)
    kk = min(k, len(sur.y_fit) - 1)
    pred = {
        "dmm_mixture": sur.predict(sur.X_heldout, "mixture"),
        "dmm_best": sur.predict(sur.X_heldout, "best"),
        "nnk_pixels": NNKRegressor(kk).fit(sur.X_fit, sur.y_fit).predict(sur.X_heldout),
        "nnk_features": NNKRegressor(kk).fit(F_fit, sur.y_fit).predict(F_held),
        "linear": LinearRegression().fit(sur.X_fit, sur.y_fit).predict(sur.X_heldout),
        "elastic_net": enet.predict(sur.X_heldout),
    }
    out = {name: _score(sur.y_heldout, pred[name]) for name in SURROGATES}
    out["best_r2"] = max(SURROGATES, key=lambda n: out[n]["r2"])
    out["y_sd"] = float(np.std(sur.y_heldout))
    return out


# --------------------------------------------------------------------------- reporting


def target_metrics(target: Target) -> dict:
    """The target network's held-out accuracy, the class, sizes and (digits) training time."""
    pred = predict(target.model, target.heldout_images)
    return {
        "class": int(target.c), "class_name": target.class_name, "p": int(len(target.pixels)),
        "n_fit": int(len(target.fit_images)), "n_heldout": int(len(target.heldout_images)),
        "heldout_accuracy": float(np.mean(pred == target.heldout_labels)),
        "class_share_fit": float(np.mean(target.fit_labels == target.c)),
        "training_seconds": float(target.info.get("seconds", float("nan"))),
    }  # fmt: skip


def mean_class_image(target: Target) -> np.ndarray:
    """The mean grey image ``[H, W]`` of the held-out class-c images (the pixel maps' ground)."""
    x = target.heldout_images[target.heldout_labels == target.c]
    x = x if len(x) else target.heldout_images
    return grey(x).mean(0).reshape(x.shape[2], x.shape[3])


def mixing_word(rhat: float, threshold: float = 1.1) -> str:
    """``"mixed"`` when R̂ ≤ ``threshold`` (the older rule; Vehtari et al. ask 1.01), else
    ``"not mixed"``."""
    return "mixed" if rhat <= threshold else "not mixed"
