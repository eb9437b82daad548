"""The computation behind notebook 06 (reality checks): profiles, and one function per section
that returns plain data for :mod:`deepnnk.figures.reality_checks` and ``metrics.json``.

The sections and the modules doing the work:

1. contextual decomposition's invariant, ``rel + irrel = logits`` (:mod:`deepnnk.nets.cd`);
2. ACD hierarchies (:func:`deepnnk.nets.cd.acd_hierarchy`);
3. TRIM bands (:mod:`deepnnk.studies.trim`);
4. Decoy-CIFAR, trained without a penalty, with CDEP and with the gradient penalty
   (:mod:`deepnnk.studies.decoy`);
5. which explanation reveals the shortcut (:func:`deepnnk.studies.decoy.reliance_summary`);
6. sanity checks and the identical-class test (:mod:`deepnnk.studies.reality_checks`);
7. a small AWD (:mod:`deepnnk.studies.awd`).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from . import decoy
from .profiles import pick
from .your_model import cifar_setting

#: Sizes per profile. ``decoy_runs``: (penalty, λ) pairs, each trained once per seed. The quick
#: profile trains the paper's Decoy-CIFAR models of seed 0 but CDEP λ = 100 (the shortcut needs
#: 10,000 images and 8 epochs to show: on 5,000 images and 5 epochs the unpenalised network
#: barely used the patch, and CDEP λ = 30 already cost half its accuracy).
PROFILES = {
    "smoke": {
        "model": "regularised",
        "cd_n_images": 16,
        "acd_images": 1,
        "acd_max_steps": 2,
        "decoy_n_train": 300,
        "decoy_epochs": 1,
        "decoy_seeds": [0],
        "decoy_runs": [["none", 0.0], ["cdep", 30.0], ["cdep", 100.0], ["rrr", 100.0]],
        "decoy_n_test": 200,
        "reliance_queries": 60,
        "reliance_n_train": 300,
        "sanity_n_train": 200,
        "sanity_queries": 4,
        "sanity_tile": 8,
        "identical_n_train": 1000,
        "identical_queries": 200,
    },
    "quick": {
        "model": "regularised",
        "cd_n_images": 200,
        "acd_images": 3,
        "acd_max_steps": 7,
        "decoy_n_train": 10000,
        "decoy_epochs": 8,
        "decoy_seeds": [0],
        "decoy_runs": [["none", 0.0], ["cdep", 30.0], ["rrr", 100.0]],
        "decoy_n_test": 2000,
        "reliance_queries": 500,
        "reliance_n_train": 5000,
        "sanity_n_train": 1000,
        "sanity_queries": 20,
        "sanity_tile": 8,
        "identical_n_train": 10000,
        "identical_queries": 2000,
    },
    "paper": {
        "model": "regularised",
        "cd_n_images": 1000,
        "acd_images": 6,
        "acd_max_steps": 7,
        "decoy_n_train": 10000,
        "decoy_epochs": 8,
        "decoy_seeds": [0, 1, 2],
        "decoy_runs": [["none", 0.0], ["cdep", 30.0], ["cdep", 100.0], ["rrr", 100.0]],
        "decoy_n_test": None,
        "reliance_queries": 1000,
        "reliance_n_train": None,
        "sanity_n_train": 2000,
        "sanity_queries": 50,
        "sanity_tile": 4,
        "identical_n_train": None,
        "identical_queries": None,
    },
}
#: The authors' epoch of the network explained in sections 1, 2, 3 and 6.
EPOCH = 20


def profile(name: str) -> dict:
    """The sizes of profile ``name`` (smoke | quick | paper)."""
    return pick(PROFILES, name)


def config(sizes: dict, **params) -> dict:
    """The run's configuration as recorded in ``metrics.json``."""
    return {**params, **sizes, "epoch": EPOCH}


def setting(weights, sizes, *, n_train, n_test, seed=0, data_root=None, checkpoints_root=None):
    """The explained network (``sizes["model"]`` at epoch 20) and a seeded CIFAR subset: the
    namespace of :func:`deepnnk.studies.your_model.cifar_setting`."""
    return cifar_setting(
        weights,
        sizes["model"],
        EPOCH,
        n_train=n_train,
        n_test=n_test,
        seed=seed,
        data_root=data_root,
        checkpoints_root=checkpoints_root,
    )


# --------------------------------------------------------------------------- 1. CD invariant


def _masks(n: int, seed: int) -> dict[str, np.ndarray]:
    """bool ``[n, 32, 32]`` test masks: random pixels, a random 8×8 tile, empty and full."""
    rng = np.random.default_rng(seed)
    tile = np.zeros((n, 32, 32), dtype=bool)
    r, c = rng.integers(0, 4, n) * 8, rng.integers(0, 4, n) * 8
    for i in range(n):  # n small masks, built once
        tile[i, r[i] : r[i] + 8, c[i] : c[i] + 8] = True
    return {
        "random pixels": rng.random((n, 32, 32)) < 0.5,
        "one 8×8 tile": tile,
        "empty": np.zeros((n, 32, 32), dtype=bool),
        "everything": np.ones((n, 32, 32), dtype=bool),
    }


def cd_invariant(net, images, *, seed: int = 0) -> dict:
    """The largest ``|rel + irrel − logits|`` (logits) of CD on ``images`` over four kinds of
    mask (:func:`_masks`), for ``net`` and for a randomly initialised network of its width, in
    float32; plus the largest relevant logit of the empty mask (0 by construction).

    Returns ``{"trained": {mask kind: float}, "random": {...}, "max_error": float,
    "empty_rel_max": float, "n_images": int, "logit_scale": float}`` (the last: the largest
    |logit|, to read the errors against)."""
    from deepnnk.nets.cd import contextual_decomposition
    from deepnnk.nets.models import PaperCNN

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random_net = PaperCNN(width=net.width, regularized=net.regularized).eval()
    out = {"n_images": len(images), "empty_rel_max": 0.0, "logit_scale": 0.0}
    for name, model in (("trained", net), ("random", random_net)):
        from .reality_checks import _images

        x = _images(images, model)
        with torch.no_grad():
            logits = model(x).numpy()
        out["logit_scale"] = max(out["logit_scale"], float(np.abs(logits).max()))
        errors = {}
        for kind, mask in _masks(len(x), seed).items():
            rel, irrel = contextual_decomposition(model, x, mask)
            errors[kind] = float(np.abs(rel + irrel - logits).max())
            if kind == "empty":
                out["empty_rel_max"] = max(out["empty_rel_max"], float(np.abs(rel).max()))
        out[name] = errors
    out["max_error"] = max(max(out[n].values()) for n in ("trained", "random"))
    return out


# --------------------------------------------------------------------------- 2. ACD


def acd_examples(net, images, *, max_steps: int) -> list[list[dict]]:
    """:func:`deepnnk.nets.cd.acd_hierarchy` of each image (uint8 ``[n, 32, 32, 3]``), 4×4
    tiles, at most ``max_steps`` growth levels; one list of levels per image."""
    from deepnnk.nets.cd import acd_hierarchy

    return [acd_hierarchy(net, image, max_steps=max_steps) for image in images]


# --------------------------------------------------------------------------- 4–5. Decoy-CIFAR


def decoy_examples(images, labels, *, seed: int = 0) -> dict:
    """The same images as training, random-level and swapped-level Decoy-CIFAR images:
    ``{mode: (uint8 [n, 32, 32, 3], bool [n, 32, 32] masks)}``."""
    from deepnnk.nets.decoy import add_decoy

    return {m: add_decoy(images, labels, mode=m, seed=seed) for m in ("train", "random", "swap")}


def decoy_study(sizes: dict, *, data_root=None, checkpoints_root=None, progress=True) -> dict:
    """Every Decoy-CIFAR model of the profile (``decoy_runs`` × ``decoy_seeds``), trained or
    loaded from its checkpoints, its accuracies (:func:`deepnnk.studies.decoy.decoy_run`) and
    per-image reliance scores (:func:`~deepnnk.studies.decoy.reliance_scores`), and the
    methods scored against the ground truth (:func:`~deepnnk.studies.decoy.reliance_summary`).

    Returns ``{"runs": [decoy_run dicts], "scores": [reliance_scores dicts], "summary": ...,
    "table": [{"penalty", "lam", "n_seeds", "<acc>_mean", "<acc>_std", ...}], "seconds"}``."""
    t0 = time.perf_counter()
    runs, scores = [], []
    for seed in sizes["decoy_seeds"]:
        for penalty, lam in sizes["decoy_runs"]:
            trained = decoy.decoy_model(
                penalty,
                lam,
                n_train=sizes["decoy_n_train"],
                epochs=sizes["decoy_epochs"],
                seed=seed,
                data_root=data_root,
                checkpoints_root=checkpoints_root,
                progress=progress,
            )
            runs.append(
                decoy.decoy_run(
                    penalty, lam, n_test=sizes["decoy_n_test"], seed=seed, trained=trained
                )
            )
            scores.append(
                decoy.reliance_scores(
                    trained,
                    n_queries=sizes["reliance_queries"],
                    n_neighbours_train=sizes["reliance_n_train"],
                    seed=seed,
                )
            )
    return {
        "runs": runs,
        "scores": scores,
        "summary": decoy.reliance_summary(runs, scores),
        "table": decoy_table(runs),
        "seconds": time.perf_counter() - t0,
    }


def run_label(penalty: str, lam: float) -> str:
    """A model's name in tables and figures: "no penalty", "CDEP λ=10", "RRR λ=100"."""
    return "no penalty" if penalty == "none" else f"{penalty.upper()} λ={lam:g}"


def decoy_table(runs: list[dict]) -> list[dict]:
    """The accuracy table: one row per (penalty, λ), in first-seen order, with the mean and the
    sample standard deviation over seeds (0 for one seed) of ``clean``, ``random``, ``swap``,
    ``reliance`` and ``train_decoy``, and the seeds' train seconds summed."""
    keys = ("clean", "random", "swap", "reliance", "train_decoy")
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["penalty"], r["lam"]), []).append(r)
    table = []
    for (penalty, lam), rows in groups.items():
        row = {"model": run_label(penalty, lam), "penalty": penalty, "lam": lam}
        row["n_seeds"] = len(rows)
        for key in keys:
            v = np.array([r[key] for r in rows], dtype=np.float64)
            row[f"{key}_mean"] = float(v.mean())
            row[f"{key}_std"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
        row["train_seconds"] = float(sum(r["train_seconds"] for r in rows))
        table.append(row)
    return table


# --------------------------------------------------------------------------- 6. sanity checks


def sanity(net, data, sizes: dict, *, k: int, seed: int = 0) -> dict:
    """:func:`deepnnk.studies.reality_checks.sanity_curves` of ``net`` on the first
    ``sanity_n_train`` training and ``sanity_queries`` test images of ``data`` (a
    :func:`setting` namespace)."""
    from .reality_checks import sanity_curves

    n, q = sizes["sanity_n_train"], sizes["sanity_queries"]
    return sanity_curves(
        net,
        data.train_images[:n],
        data.y_train[:n],
        data.test_images[:q],
        k=k,
        seed=seed,
        tile=sizes["sanity_tile"],
    )


def identical_class(net, data, *, k: int) -> dict:
    """:func:`deepnnk.studies.reality_checks.identical_class_test` of ``net`` with ``data``'s
    training images as the examples and its test images as the queries; adds ``"seconds"``."""
    from .reality_checks import identical_class_test

    t0 = time.perf_counter()
    out = identical_class_test(net, data.train_images, data.y_train, data.test_images, k=k)
    return {**out, "seconds": time.perf_counter() - t0}


def example_maps(net, images, *, tile: int, seed: int = 0) -> dict:
    """Gradient and CD tile maps of ``images`` for ``net`` and for its fully randomised copy
    (the last step of :func:`~deepnnk.studies.reality_checks.cascade_randomise`), both for the
    trained network's predicted class: ``{column title: float [n, h, w]}`` for
    :func:`deepnnk.figures.reality_checks.tile_maps`."""
    from .reality_checks import cascade_randomise, cd_map, gradient_map, predict

    target = predict(net, images)
    _, destroyed = cascade_randomise(net, seed)[-1]
    out = {}
    for name, model in (("trained", net), ("randomised", destroyed)):
        out[f"gradient, {name}"] = gradient_map(model, images, target)
        out[f"CD, {name}"] = cd_map(model, images, target, tile)
    return out


# --------------------------------------------------------------------------- metrics


def as_text(values: dict, spec: str = ".2f") -> dict:
    """``{name: value formatted by spec}``, with "n/a" for NaN/None: the form prose quotes
    numbers that can be undefined in (a Spearman ρ of a constant column, a mean over queries
    whose maps are all constant), since JSON stores NaN as null."""
    return {
        k: "n/a" if v is None or not np.isfinite(v) else format(float(v), spec)
        for k, v in values.items()
    }


def acd_summary(hierarchies: list[list[dict]], logits: np.ndarray | None = None) -> dict:
    """What ``metrics.json`` keeps of the ACD hierarchies: per image the class explained, the
    number of levels, the best first-level score and the final region's score and share of the
    image; and their means. ``logits``: optional float ``[n]``, each image's logit of its
    class explained (the full image's CD score, for scale)."""
    rows = []
    for levels in hierarchies:
        first, last = levels[0], levels[-1]
        union = last["masks"].any(axis=0)
        rows.append(
            {
                "target": int(first["target"]),
                "n_levels": len(levels),
                "first_top": float(np.max(first["scores"])),
                "final_score": float(np.max(last["scores"])),
                "final_share": float(union.mean()),
            }
        )
    out = {"n_images": len(rows), "images": rows}
    for key in ("first_top", "final_score", "final_share"):
        out[f"{key}_mean"] = float(np.mean([r[key] for r in rows]))
    if logits is not None:
        out["logit_mean"] = float(np.mean(logits))
    return out


def class_logits(net, images, targets) -> np.ndarray:
    """The logit of class ``targets[i]`` for each image, float64 ``[n]``."""
    from .reality_checks import _images

    with torch.no_grad():
        logits = net(_images(images, net)).double().numpy()
    return logits[np.arange(len(logits)), np.asarray(targets)]


def _arg(values: dict, pick) -> str:
    """The key of the largest (``pick=max``) or smallest finite value, "none" if none is."""
    finite = {k: v for k, v in values.items() if v is not None and np.isfinite(v)}
    return pick(finite, key=lambda k: finite[k]) if finite else "none"


def _most_reliant(study: dict, penalty: str) -> dict:
    """The ``penalty`` model that relies most on the decoy (largest clean − swap), beside the
    unpenalised models: its reliance and each method's mean score, and the same means over the
    unpenalised models. A penalised network can hide the patch from the explanation it was
    trained against while still using it; this is where that shows."""
    runs, scores = study["runs"], study["scores"]
    rows = [i for i, r in enumerate(runs) if r["penalty"] == penalty]
    plain_rows = [i for i, r in enumerate(runs) if r["penalty"] == "none"]
    if not rows or not plain_rows:
        return {}
    i = max(rows, key=lambda j: runs[j]["reliance"])
    return {
        "lam": runs[i]["lam"],
        "seed": runs[i]["seed"],
        "reliance": runs[i]["reliance"],
        "score": {m: float(scores[i][m].mean()) for m in decoy.METHODS},
        "unpenalised_reliance": float(np.mean([runs[j]["reliance"] for j in plain_rows])),
        "unpenalised_score": {
            m: float(np.mean([scores[j][m].mean() for j in plain_rows])) for m in decoy.METHODS
        },
    }


def decoy_metrics(study: dict) -> dict:
    """What ``metrics.json`` keeps of :func:`decoy_study`: the runs, the table (also keyed by
    model, ``"none_0"``, ``"cdep_10"``, ...), the reliance summary (Spearman, pooled AUC,
    per-model AUC and mean scores), and the best and worst method by each measure."""
    summary = study["summary"]
    by_model = {f"{r['penalty']}_{r['lam']:g}": r for r in study["table"]}
    rho, auc = summary["spearman"], summary["auc"]
    return {
        "runs": study["runs"],
        "table": study["table"],
        "by_model": by_model,
        "cdep_most_reliant": _most_reliant(study, "cdep"),
        "n_models": len(study["runs"]),
        "reliance": {
            "spearman": rho,
            "auc": auc,
            "auc_per_model": summary["auc_per_model"],
            "model_score": summary["model_score"],
            "true_reliance": summary["true_reliance"],
            "caused_rate": summary["caused_rate"],
            "best_auc": _arg(auc, max),
            "worst_auc": _arg(auc, min),
            "best_spearman": _arg(rho, max),
            "spearman_text": as_text(rho),
            "auc_text": as_text(auc),
        },
        "seconds": study["seconds"],
    }


def format_decoy_table(table: list[dict]) -> str:
    """The accuracy table as text: mean ± sd over seeds, in percent."""
    head = f"{'model':<14}{'seeds':>6}{'train':>14}{'clean':>14}{'random':>14}{'swap':>14}"
    lines = [head + f"{'reliance':>14}"]
    for row in table:
        cells = [f"{row['model']:<14}{row['n_seeds']:>6}"]
        for key in ("train_decoy", "clean", "random", "swap", "reliance"):
            cells.append(f"{100 * row[key + '_mean']:>8.1f} ± {100 * row[key + '_std']:<3.1f}")
        lines.append("".join(cells))
    return "\n".join(lines)


def sanity_metrics(curves: dict) -> dict:
    """What ``metrics.json`` keeps of the sanity curves: the layers, each explanation's mean
    similarity per step, and its value once the whole network is randomised (``"final"``) and
    after the top layer alone (``"after_fc"``)."""
    mean = {m: np.asarray(v, dtype=np.float64) for m, v in curves["mean"].items()}
    return {
        "layers": list(curves["layers"]),
        "mean": mean,
        "final": {m: float(v[-1]) for m, v in mean.items()},
        "after_fc": {m: float(v[0]) for m, v in mean.items()},
        "final_text": as_text({m: v[-1] for m, v in mean.items()}),
        "after_fc_text": as_text({m: v[0] for m, v in mean.items()}),
        "similarity": curves["similarity"],
        "seconds": curves["seconds"],
    }


def trim_metrics(result: dict) -> dict:
    """What ``metrics.json`` keeps of :func:`deepnnk.studies.trim.trim_study`: per transform,
    the band names, the mean CD score and gradient × input of each band (logits), the share of
    images each band tops, and the band with the largest mean CD score (``"top_band"``, its
    ``"top_score"`` and ``"top_share"``)."""
    out = {"n_images": int(len(result["fourier"]["scores"])), "seconds": result["seconds"]}
    for kind in ("fourier", "wavelet"):
        s = result["summary"][kind]
        mean = np.asarray(s["mean_score"], dtype=np.float64)
        top = int(np.argmax(mean))
        out[kind] = {
            "names": list(s["names"]),
            "mean_score": mean,
            "mean_gradient_input": np.asarray(s["mean_gradient_input"], dtype=np.float64),
            "top_band_share": np.asarray(s["top_band_share"], dtype=np.float64),
            "top_band": s["names"][top],
            "top_score": float(mean[top]),
            "top_share": float(s["top_band_share"][top]),
            "most_often_top": s["names"][int(np.argmax(s["top_band_share"]))],
            "mean_logit": s["mean_logit"],
            "mean_full": s["mean_full"],
            "mean_abs_interaction": s["mean_abs_interaction"],
        }
    return out


def awd_metrics(result: dict) -> dict:
    """What ``metrics.json`` keeps of :func:`deepnnk.studies.awd.awd_study`: the learned and
    initial filters, the loss terms before and after, the learned filter's validity residuals,
    the three accuracies and the times."""
    acc = result["accuracy"]
    return {
        "h0": result["h0"],
        "h0_init": result["h0_init"],
        "loss_start": result["loss_start"],
        "loss_end": result["loss_end"],
        "residuals": result["residuals"],
        "max_residual": float(max(abs(v) for v in result["residuals"].values())),
        "accuracy": acc,
        "n_clf_train": result["n_clf_train"],
        "n_clf_test": result["n_clf_test"],
        "seconds_train": result["seconds_train"],
        "seconds": result["seconds"],
    }
