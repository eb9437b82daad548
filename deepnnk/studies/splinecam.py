"""Notebook 08: does the network's own partition agree with NNK's geometry?

DeepNNK says NNK keeps the training neighbours "visible" from the query and prunes those hidden
behind them. The network's input space has its own geometry: the exact linear regions of the
CNN (:mod:`deepnnk.nets.splinecam`). This study walks, for every test query, the segment from
the query towards each of its ``k`` candidates (the k nearest training images in the feature
space NNK works in) and compares the NNK-selected candidates with the pruned ones on

- **density**: linear regions crossed per unit length (``‖Δx‖₂`` in pixels/255) in a window of
  fixed length ``window`` starting at the query, walked exactly. A whole segment from a test
  image to a training image crosses about 24,000 regions (``benchmarks/bench_splinecam.py``:
  minutes per segment), so the 10,000 segments of the paper profile are walked over their first
  ``window`` units only: the partition's density near the query, in each candidate's direction;
- **boundary**: whether the segment, walked to the candidate, leaves the query's predicted class.
  Exact at the endpoints (classes differ ⇒ the segment crosses), and sampled at ``n_samples``
  evenly spaced points for crossings that come back (which samples can miss between them).

Across training (item 4 of the issue) the same windows are walked for the regularised and the
overfit networks at several epochs, beside each checkpoint's LOO-NNK error.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from deepnnk._progress import progress
from deepnnk.classifier import NNKClassifier
from deepnnk.explain import NeighbourTable, neighbourhood_table
from deepnnk.nets import features as feature_extraction
from deepnnk.nets.data import CLASSES, load_cifar10, to_tensor
from deepnnk.nets.loading import load_network
from deepnnk.nets.splinecam import segment_partition
from deepnnk.nets.splinecam_2d import slice_partition
from deepnnk.nets.train import torch_threads
from deepnnk.studies.cifar_features import subset_indices
from deepnnk.studies.profiles import pick
from deepnnk.studies.region_walks import walk_windows, window_ends

__all__ = [
    "PROFILES",
    "Setting",
    "boundary_crossings",
    "compare_groups",
    "config",
    "claim_metrics",
    "claim_table",
    "example_window",
    "segment_lengths",
    "slice_examples",
    "training_metrics",
    "verdict",
    "walk_metrics",
    "load_setting",
    "loo_errors",
    "profile",
    "query_relations",
    "training_walks",
]

MODEL, EPOCH = "regularised", 20
PROFILES = {
    # window: the walked length from the query (‖Δx‖₂, pixels/255); n_samples: points per whole
    # segment for the sampled boundary test; epoch_queries: the first queries walked again at
    # every epoch of both models; loo_n_train: the training subset of their LOO-NNK errors.
    # slice_window: the half-width of the 2-D slices (regions grow with its square: about 2,200
    # at 0.02 and 10,400 at 0.04 around a query, 5-7 ms each; benchmarks/bench_splinecam.py).
    "smoke": dict(
        n_train=2_000, n_queries=2, k=8, window=0.003, n_samples=5, slice_window=0.003,
        epochs=[1, 20], epoch_queries=1, loo_n_train=1_000
    ),
    "quick": dict(
        n_train=None, n_queries=40, k=50, window=0.01, n_samples=9, slice_window=0.01,
        epochs=[1, 5, 10, 20], epoch_queries=5, loo_n_train=5_000
    ),
    "paper": dict(
        n_train=None, n_queries=200, k=50, window=0.01, n_samples=17, slice_window=0.02,
        epochs=[1, 5, 10, 20], epoch_queries=10, loo_n_train=10_000
    ),
}  # fmt: skip
CODE = ("nets.splinecam", "studies.splinecam")


def profile(name: str) -> dict:
    """The sizes of profile ``name`` ("smoke", "quick" or "paper"), a fresh copy."""
    return pick(PROFILES, name)


def config(sizes: dict, **params) -> dict:
    """The metrics' ``config``: the notebook's parameters and the profile's sizes."""
    return {**params, **sizes, "model": MODEL, "epoch": EPOCH}


# --------------------------------------------------------------------------- the setting


@dataclass
class Setting:
    """The regularised network at epoch 20, its training set, the test queries and their NNK
    explanations over ``k`` candidates.

    train_images uint8 ``[n_train, 32, 32, 3]``; query_ids ``[Q]`` test rows; query_images uint8
    ``[Q, 32, 32, 3]``; table: :class:`~deepnnk.explain.NeighbourTable` (``index [Q, k]`` rows of
    the training subset, by distance; ``weights`` zero off the NNK neighbours; ``residual``);
    net_pred ``[Q]`` the network's predicted class; seconds: features + NNK.
    """

    model: torch.nn.Module
    train_images: np.ndarray
    y_train: np.ndarray
    query_ids: np.ndarray
    query_images: np.ndarray
    y_query: np.ndarray
    table: NeighbourTable
    net_pred: np.ndarray
    seconds: float

    @property
    def selected(self) -> np.ndarray:
        """``[Q, k]`` bool: which candidates NNK keeps (nonzero weight)."""
        return self.table.weights > 0

    def windows(self, queries=None) -> tuple[np.ndarray, np.ndarray]:
        """The arguments of :func:`~deepnnk.studies.region_walks.walk_windows` for ``queries``
        (rows; default all): their images ``[q, 32, 32, 3]`` and their candidates' images
        ``[q, k, 32, 32, 3]``, uint8."""
        rows = np.arange(len(self.query_ids)) if queries is None else np.asarray(queries)
        return self.query_images[rows], self.train_images[self.table.index[rows]]


def load_setting(sizes: dict, seed: int, data_root=None, checkpoints_root=None) -> Setting:
    """The authors' (``weights="paper"``) regularised CNN at epoch 20, a training subset of
    ``sizes["n_train"]`` (None: all 50,000), ``sizes["n_queries"]`` test queries drawn with
    ``seed + 1``, and NNK (cosine kernel, exact solver) over ``sizes["k"]`` candidates found by
    squared L2 on the last conv block's features."""
    t0 = time.perf_counter()
    x_train, y_train, x_test, y_test = load_cifar10(data_root or None)
    model = load_network("paper", MODEL, EPOCH, data_root or None, checkpoints_root or None)
    tr = subset_indices(len(x_train), sizes["n_train"], seed)
    qs = subset_indices(len(x_test), sizes["n_queries"], seed + 1)
    F_train = feature_extraction.extract(model, x_train[tr])
    F_q = feature_extraction.extract(model, x_test[qs])
    clf = NNKClassifier(sizes["k"]).fit(F_train, y_train[tr])
    with torch.inference_mode():
        net_pred = model.fc(torch.from_numpy(F_q)).argmax(1).numpy()
    return Setting(
        model=model,
        train_images=x_train[tr],
        y_train=y_train[tr],
        query_ids=qs,
        query_images=x_test[qs],
        y_query=y_test[qs],
        table=neighbourhood_table(clf, F_q),
        net_pred=net_pred,
        seconds=time.perf_counter() - t0,
    )


def boundary_crossings(
    model, setting: Setting, n_samples: int, batch: int = 512, show_progress: bool = True
) -> dict:
    """Does each whole segment query → candidate leave the query's predicted class?

    The network (float32) is evaluated at ``n_samples`` evenly spaced ``t ∈ [0, 1]`` on every
    segment. Returns ``endpoints [Q, k]`` (the candidate's predicted class differs from the
    query's: the segment must cross the boundary, exactly), ``sampled [Q, k]`` (some sample's
    class differs: a lower bound on crossing, as crossings that return between two samples are
    missed) and ``n_changes [Q, k]`` (class changes between consecutive samples).
    """
    t = torch.linspace(0, 1, n_samples)
    xq = to_tensor(setting.query_images)
    Q, k = setting.table.index.shape
    preds = np.empty((Q, k, n_samples), dtype=np.int64)
    with torch.inference_mode():
        for q in progress(range(Q), show_progress, desc="sampling segments"):
            xc = to_tensor(setting.train_images[setting.table.index[q]])
            pts = (xq[q] + t[None, :, None, None, None] * (xc - xq[q])[:, None]).flatten(0, 1)
            logits = torch.cat([model(b) for b in pts.split(batch)])
            preds[q] = logits.argmax(1).view(k, n_samples).numpy()
    start = preds[:, :, :1]
    return {
        "endpoints": preds[:, :, -1] != preds[:, :, 0],
        "sampled": (preds != start).any(axis=2),
        "n_changes": (np.diff(preds, axis=2) != 0).sum(axis=2),
    }


def example_window(setting: Setting, q: int, window: float, n_check: int = 200, seed=0):
    """Query ``q``'s window towards its largest-weight NNK neighbour, walked exactly.

    Returns (``figure_args``, ``check``): the keyword arguments of
    :func:`deepnnk.figures.splinecam_study.window_figure` (``breaks``, ``logit_intercept``,
    ``logit_slope``, ``length``, ``class_names``), and the exactness check: the largest
    ``|network(x(t)) − (c_i + A_i·t)|`` over ``n_check`` random ``t`` (float64 forward pass of
    the network itself against the walk's affine map of the piece holding ``t``) and the pieces.
    """
    j = int(np.argmax(setting.table.weights[q]))
    x_q = to_tensor(setting.query_images[q : q + 1])[0].double()
    x_j = to_tensor(setting.train_images[setting.table.index[q, j : j + 1]]).double()
    end = window_ends(x_q, x_j, window)[0]
    part = segment_partition(setting.model, x_q, end)
    t = np.random.default_rng(seed).uniform(0, 1, n_check)
    net = copy.deepcopy(setting.model).double().eval()
    with torch.no_grad():
        tt = torch.from_numpy(t)[:, None, None, None]
        direct = net(x_q + tt * (end - x_q)).numpy()
    args = {
        "breaks": part.breaks,
        "logit_intercept": part.logit_intercept,
        "logit_slope": part.logit_slope,
        "length": window,
        "class_names": list(CLASSES),
    }
    check = {
        "affine_max_error": float(np.abs(direct - part.logits(t)).max()),
        "n_pieces": part.n_pieces,
        "decision_changes": len(part.decision_t),
    }
    return args, check


def _first_change(model, x_q, x_a, steps: int = 50) -> float | None:
    """A ``t`` in [0, 1] where the float64 network's class changes along ``x_q → x_a`` (bisection
    between the ends, to 2⁻⁵⁰), or None when both ends have the same class."""
    net = copy.deepcopy(model).double().eval()

    def cls(t: float) -> int:
        with torch.no_grad():
            return int(net((x_q + t * (x_a - x_q))[None]).argmax())

    lo, hi, c0 = 0.0, 1.0, cls(0.0)
    if cls(1.0) == c0:
        return None
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if cls(mid) == c0 else (lo, mid)
    return hi


def slice_examples(setting: Setting, q: int, window: float, endpoints) -> dict:
    """Exact 2-D slices (:func:`deepnnk.nets.splinecam_2d.slice_partition`) of the plane
    through query ``q`` (``x_q``), a candidate ``x_a`` and its largest-weight NNK neighbour
    ``x_b``. ``x_a`` is the nearest pruned candidate the network classes differently from the
    query (``endpoints [Q, k]`` of :func:`boundary_crossings`), else the nearest such selected
    one, else the nearest pruned one.

    Two windows: ``around_query``, the box ``[−window, window]²`` around ``x_q``; and
    ``at_boundary``, a box of the same size centred where the class first changes along
    ``x_q → x_a`` (found by bisection; None when the ends share a class). Returns the two
    :class:`~deepnnk.nets.splinecam_2d.SlicePartition` (plain arrays), the three images uint8
    HWC, which candidates they are, ``u_star`` and the metrics (regions, boundary segments,
    seconds).
    """
    sel, ends = setting.selected[q], np.asarray(endpoints[q], dtype=bool)
    b = int(np.argmax(setting.table.weights[q]))
    order = [np.flatnonzero(~sel & ends), np.flatnonzero(sel & ends), np.flatnonzero(~sel)]
    a = next((int(o[0]) for o in order if len(o) and int(o[0]) != b), None)
    if a is None:  # every candidate was selected and none crosses: take the farthest one
        a = int(np.flatnonzero(np.arange(len(sel)) != b)[-1])
    rows = setting.table.index[q, [a, b]]
    images = np.concatenate([setting.query_images[q : q + 1], setting.train_images[rows]])
    x_q, x_a, x_b = to_tensor(images).double()
    out = {"images": images, "a": a, "b": b, "a_selected": bool(sel[a]), "metrics": {}}
    t = _first_change(setting.model, x_q, x_a)
    out["u_star"] = None if t is None else t * float((x_a - x_q).norm())
    boxes = {"around_query": window}
    if out["u_star"] is not None:
        u = out["u_star"]
        boxes["at_boundary"] = (u - window, u + window, -window, window)
    for name in ("around_query", "at_boundary"):
        if name not in boxes:
            out[name] = None
            continue
        t0 = time.perf_counter()
        with torch_threads(1):
            s = slice_partition(setting.model, x_q, x_a, x_b, window=boxes[name])
        out[name] = s
        out["metrics"][name] = {
            "n_regions": s.n_regions,
            "n_boundary_segments": len(s.boundary),
            "seconds": time.perf_counter() - t0,
            "regions_per_area": s.n_regions / float(np.sum(s.areas)),
        }
    out["metrics"]["u_star"] = out["u_star"]
    out["metrics"]["a_selected"] = out["a_selected"]
    return out


def segment_lengths(setting: Setting) -> np.ndarray:
    """``[Q, k]``: the whole segments' lengths ‖x_j − x_q‖₂ (pixels/255)."""
    q, c = setting.windows()
    d = c.astype(np.float64) / 255 - q[:, None].astype(np.float64) / 255
    return np.sqrt((d**2).reshape(*d.shape[:2], -1).sum(-1))


# --------------------------------------------------------------------------- statistics


def compare_groups(values, selected) -> dict:
    """NNK-selected against pruned candidates on one per-segment measure.

    ``values [Q, k]`` (numbers or bools), ``selected [Q, k]`` bool. Returns the group sizes,
    means and medians, the two-sided Mann–Whitney U test over segments (``p``), its effect size
    as the common-language AUC = P(selected > pruned) + ½P(tie) and the rank-biserial
    correlation 2·AUC − 1, and a per-query paired check (the Wilcoxon signed-rank test of each
    query's selected mean minus its pruned mean; segments of one query are not independent,
    which the pooled U test assumes).
    """
    v = np.asarray(values, dtype=np.float64)
    sel = np.asarray(selected, dtype=bool)
    if v.shape != sel.shape:
        raise ValueError(f"values {v.shape} and selected {sel.shape} must have the same shape")
    a, b = v[sel], v[~sel]
    out = {"n_selected": int(a.size), "n_pruned": int(b.size)}
    out.update(mean_selected=_mean(a), mean_pruned=_mean(b))
    out.update(median_selected=_median(a), median_pruned=_median(b))
    if a.size and b.size and np.ptp(v[np.isfinite(v)]) > 0:
        u = stats.mannwhitneyu(a, b, alternative="two-sided")
        auc = float(u.statistic) / (a.size * b.size)
        out.update(p=float(u.pvalue), auc=auc, rank_biserial=2 * auc - 1)
    else:
        out.update(p=float("nan"), auc=float("nan"), rank_biserial=float("nan"))
    both = sel.any(1) & (~sel).any(1)
    with np.errstate(invalid="ignore", divide="ignore"):  # rows without one group: dropped
        diff = np.where(sel, v, 0).sum(1) / sel.sum(1) - np.where(~sel, v, 0).sum(1) / (~sel).sum(1)
    diff = diff[both]
    out["paired_n"] = int(diff.size)
    out["paired_mean_diff"] = _mean(diff)
    out["paired_share_positive"] = _mean(diff > 0) if diff.size else float("nan")
    nonzero = diff[diff != 0]
    out["paired_p"] = float(stats.wilcoxon(nonzero).pvalue) if nonzero.size >= 2 else float("nan")
    # Prose quotes these; they are undefined (NaN, null in JSON) on tiny or constant samples.
    out["text"] = {
        "p": _text(out["p"], ".2g"),
        "auc": _text(out["auc"], ".3f"),
        "rank_biserial": _text(out["rank_biserial"], ".3f"),
        "paired_p": _text(out["paired_p"], ".2g"),
        "paired_share_positive": _text(out["paired_share_positive"], ".0%"),
    }
    return out


def query_relations(density, setting: Setting, queries=None) -> dict:
    """Spearman ρ (and p) of each query's mean region density (over its k windows) with its NNK
    residual, with whether NNK's prediction is correct, and with whether the network's is."""
    rows = np.arange(len(setting.query_ids)) if queries is None else np.asarray(queries)
    dens = np.asarray(density, dtype=np.float64).mean(axis=1)
    y = setting.y_query[rows]
    nnk_ok = setting.table.pred[rows] == y
    net_ok = setting.net_pred[rows] == y
    out = {}
    for name, other in (
        ("residual", setting.table.residual[rows]),
        ("nnk_correct", nnk_ok.astype(float)),
        ("network_correct", net_ok.astype(float)),
    ):
        ok = np.isfinite(other)
        if ok.sum() >= 3 and np.ptp(other[ok]) > 0 and np.ptp(dens[ok]) > 0:
            r = stats.spearmanr(dens[ok], other[ok])
            out[name] = {"rho": float(r.statistic), "p": float(r.pvalue), "n": int(ok.sum())}
        else:
            out[name] = {"rho": float("nan"), "p": float("nan"), "n": int(ok.sum())}
        r = out[name]
        r["text"] = {"rho": _text(r["rho"], ".2f"), "p": _text(r["p"], ".2g")}
    out["nnk_accuracy"] = float(nnk_ok.mean())
    out["network_accuracy"] = float(net_ok.mean())
    return out


def verdict(comparison: dict, more: str, less: str, alpha: float = 0.05) -> str:
    """Words for a :func:`compare_groups` result: ``more`` when NNK-selected candidates score
    higher (AUC > ½) at two-sided p < ``alpha``, ``less`` when lower, and "no difference at the
    5% level" (``alpha``) otherwise."""
    p, auc = comparison["p"], comparison["auc"]
    if not np.isfinite(p) or p >= alpha:
        return f"no significant difference (p ≥ {alpha:g})"
    return more if auc > 0.5 else less


def walk_metrics(walks: dict, setting: Setting) -> dict:
    """What ``metrics.json`` keeps of :func:`~deepnnk.studies.region_walks.walk_windows`'s
    result: the pieces, the time, the share of windows holding a decision change, the whole
    segments' mean length and the regions a whole segment would cross at the measured density
    (``density × length``, averaged over segments)."""
    lengths = segment_lengths(setting)
    return {
        "pieces": walks["pieces"],
        "seconds": walks["seconds"],
        "ms_per_piece": 1e3 * walks["seconds"] / walks["pieces"],
        "share_decision_in_window": float((walks["decision_changes"] > 0).mean()),
        "mean_segment_length": float(lengths.mean()),
        "regions_whole_segment": float((walks["density"] * lengths).mean()),
    }


def claim_metrics(walks: dict, crossings: dict, selected) -> dict:
    """The three comparisons of NNK-selected against pruned candidates (:func:`compare_groups`
    of the region density, of the far end's class and of the sampled path), with verdicts."""
    out = {
        "density": compare_groups(walks["density"], selected),
        "crossing_endpoints": compare_groups(crossings["endpoints"], selected),
        "crossing_sampled": compare_groups(crossings["sampled"], selected),
    }
    out["density"]["verdict"] = verdict(
        out["density"],
        "windows towards NNK-selected candidates are denser",
        "windows towards NNK-selected candidates are sparser",
    )
    for key in ("crossing_endpoints", "crossing_sampled"):
        out[key]["verdict"] = verdict(
            out[key],
            "segments to NNK-selected candidates cross more often",
            "segments to NNK-selected candidates cross less often",
        )
    return out


def claim_table(metrics: dict) -> str:
    """The NNK-selected against pruned comparisons of :func:`claim_metrics` as a plain-text
    table: one row per measure, the two groups' means, Mann–Whitney p, AUC, rank-biserial r
    and the per-query Wilcoxon p."""
    rows = [
        ("regions per unit length", "density", ".0f"),
        ("far end classed differently", "crossing_endpoints", ".1%"),
        ("sampled path leaves the class", "crossing_sampled", ".1%"),
    ]
    head = (
        f"{'measure':<31}{'selected':>10}{'pruned':>10}{'p':>10}{'AUC':>8}{'r':>8}{'paired p':>10}"
    )
    lines = [head, "-" * len(head)]
    for label, key, spec in rows:
        c = metrics[key]
        t = c["text"]
        lines.append(
            f"{label:<31}{_text(c['mean_selected'], spec):>10}{_text(c['mean_pruned'], spec):>10}"
            f"{t['p']:>10}{t['auc']:>8}{t['rank_biserial']:>8}{t['paired_p']:>10}"
        )
    return "\n".join(lines)


def _text(x, spec: str) -> str:
    return "n/a" if x is None or not np.isfinite(x) else format(float(x), spec)


def _mean(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(x.mean()) if x.size else float("nan")


def _median(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.median(x)) if x.size else float("nan")


# --------------------------------------------------------------------------- across training


def training_walks(
    setting: Setting, sizes: dict, data_root=None, checkpoints_root=None, show_progress=True
) -> dict:
    """The same windows (the first ``sizes["epoch_queries"]`` queries, each towards its k
    candidates of the epoch-20 regularised network) walked through the regularised and the
    overfit networks at every epoch of ``sizes["epochs"]``.

    Returns ``{model: {epoch: {"density": [q, k], "mean_density", "pieces", "seconds"}}}``.
    """
    queries = np.arange(min(sizes["epoch_queries"], len(setting.query_ids)))
    out: dict = {}
    for model_name in ("regularised", "overfit"):
        out[model_name] = {}
        for epoch in sizes["epochs"]:
            net = load_network("paper", model_name, epoch, data_root or None, checkpoints_root)
            w = walk_windows(net, *setting.windows(queries), sizes["window"], show_progress)
            out[model_name][int(epoch)] = {
                "density": w["density"],
                "mean_density": float(w["density"].mean()),
                "pieces": w["pieces"],
                "seconds": w["seconds"],
            }
    return out


def loo_errors(sizes: dict, k: int, data_root=None, checkpoints_root=None) -> dict:
    """LOO-NNK (exact solver, cosine kernel, ``k``) and test errors of both models at every epoch
    of ``sizes["epochs"]`` on ``sizes["loo_n_train"]`` training images (notebook 02's cached
    :func:`~deepnnk.studies.loo.evaluate_checkpoint`; test side on 1,000 test images).

    Returns ``{model: {epoch: {"loo_error", "nnk_test_error", "net_test_error"}}}``.
    """
    from deepnnk.studies.loo import evaluate_checkpoint

    out: dict = {}
    for model_name in ("regularised", "overfit"):
        out[model_name] = {}
        for epoch in sizes["epochs"]:
            r = evaluate_checkpoint(
                "paper", model_name, epoch, data_root=data_root or None,
                checkpoints_root=checkpoints_root or None, ks=(k,), solvers=("exact",),
                n_train=sizes["loo_n_train"], n_test=1_000,
            )  # fmt: skip
            out[model_name][int(epoch)] = {
                "loo_error": r["loo"][str(k)]["exact"]["error"],
                "nnk_test_error": r["test"][str(k)]["exact"]["error"],
                "net_test_error": r["net"]["test_error"],
            }
    return out


def training_metrics(training: dict, loo: dict) -> dict:
    """The across-training results as JSON-friendly lists per model (epochs in order), and the
    Spearman ρ of mean region density with LOO-NNK error over all checkpoints of both models."""
    out: dict = {}
    dens, errs = [], []
    for model_name in ("regularised", "overfit"):
        epochs = sorted(training[model_name])
        d = [training[model_name][e]["mean_density"] for e in epochs]
        le = [loo[model_name][e]["loo_error"] for e in epochs]
        out[model_name] = {
            "epochs": epochs,
            "mean_density": d,
            "loo_error": le,
            "net_test_error": [loo[model_name][e]["net_test_error"] for e in epochs],
            "epoch_first": epochs[0],
            "epoch_last": epochs[-1],
            "density_first": d[0],
            "density_last": d[-1],
            "density_ratio": d[-1] / d[0],
            "loo_first": le[0],
            "loo_last": le[-1],
        }
        dens += d
        errs += le
    r = stats.spearmanr(dens, errs) if len(dens) >= 3 else None
    out["spearman_density_loo"] = float(r.statistic) if r is not None else float("nan")
    out["spearman_text"] = _text(out["spearman_density_loo"], ".2f")
    out["n_checkpoints"] = len(dens)
    return out
