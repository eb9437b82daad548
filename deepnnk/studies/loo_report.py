"""The tables of notebook 02, from the tidy rows of :func:`deepnnk.studies.loo.sweep` (one per
model, epoch and k): selections, model rankings, Pearson correlations, the level of the estimate
(its gap to the test errors and a one-offset calibration), markdown tables, the SVM's cost and
the summary. Plain data and markdown; no computation is cached here.

The tables come in two forms: :func:`markdown_table` formats numbers directly, and the
``*_template`` functions return a Markdown template whose numbers are fields of the notebook's
``metrics`` (``{m[ranking][loo_nnk][values][overfit]:.4f}``), for
:func:`deepnnk.figures.state`; the tests re-render those from the saved ``metrics.json``.
"""

from __future__ import annotations

import numpy as np

# The paper's reported numbers at epoch 20, k = 50, as published (the authors' prune solver,
# full 50k/10k data): LOO-NNK and LOO-kNN on the training set, NNK on the test set.
PAPER_TABLE: dict[str, dict[str, float]] = {
    "underparameterised": {"loo_nnk": 0.2592, "loo_knn": 0.3045, "test_nnk": 0.2657},
    "regularised": {"loo_nnk": 0.2053, "loo_knn": 0.2634, "test_nnk": 0.2171},
    "overfit": {"loo_nnk": 0.2249, "loo_knn": 0.3232, "test_nnk": 0.2612},
}


#: Columns of the paper-check table (:func:`paper_check_table` and its claim template).
PAPER_CHECK_HEADER = [
    "model",
    "LOO-NNK paper",
    "ours (prune)",
    "LOO-kNN paper",
    "ours",
    "NNK-test paper",
    "ours (prune)",
    "LOO-NNK exact",
    "NNK-test exact",
    "LOO changed",
    "test changed",
    "max abs diff (prune)",
]


def checkpoint_rows(result: dict, solver: str, svm: dict | None = None) -> list[dict]:
    """Tidy rows, one per k, from an :func:`~deepnnk.studies.loo.evaluate_checkpoint` result
    (and optional SVM).

    ``solver`` picks which NNK solver's numbers are the headline ``loo_nnk``/``test_nnk``; both
    solvers' errors stay in ``loo_nnk_<solver>``/``test_nnk_<solver>``.
    """
    spec = result["spec"]
    if solver not in spec["solvers"]:
        raise ValueError(f"solver {solver!r} was not evaluated (solvers {spec['solvers']}).")
    rows = []
    for k in spec["ks"]:
        loo, tst = result["loo"][str(k)], result["test"][str(k)]
        row = {
            "weights": spec["weights"],
            "model": spec["model"],
            "epoch": spec["epoch"],
            "k": k,
            "n_train": result["n_train"],
            "n_test": result["n_test"],
            "loo_nnk": loo[solver]["error"],
            "loo_knn": loo["knn_error"],
            "test_nnk": tst[solver]["error"],
            "test_knn": tst["knn_error"],
            "loo_nnk_soft": loo[solver]["soft_error"],
            "net_train": result["net"]["train_error"],
            "net_test": result["net"]["test_error"],
            "n_nnk_mean": loo[solver]["n_neighbors_mean"],
            "n_nnk_median": loo[solver]["n_neighbors_median"],
            "test_n_nnk_mean": tst[solver]["n_neighbors_mean"],
            "residual_mean": loo[solver]["residual_mean"],
            "test_residual_mean": tst[solver]["residual_mean"],
            "svm_train": None,
            "svm_test": None,
            "seconds": sum(result["seconds"].values()),
            "cached": result.get("cached", False),
        }
        for s in spec["solvers"]:
            row[f"loo_nnk_{s}"] = loo[s]["error"]
            row[f"test_nnk_{s}"] = tst[s]["error"]
            row[f"loo_kkt_violation_{s}"] = loo[s]["kkt_violation_fraction"]
        if "changed" in loo:
            row["loo_changed"] = loo["changed"]
            row["test_changed"] = tst["changed"]
        if svm is not None:
            row["svm_train"] = svm["train_error"]
            row["svm_test"] = svm["test_error"]
            row["svm_convergence_warnings"] = svm["convergence_warnings"]
            row["svm_seconds"] = svm["seconds"]
        rows.append(row)
    return rows


def paper_comparison(res: dict, model: str, solvers) -> dict:
    """One model's line of :func:`deepnnk.studies.loo.paper_check`: our epoch-20, k = 50 errors
    (an :func:`~deepnnk.studies.loo.evaluate_checkpoint` result ``res``) per solver beside the
    paper's (:data:`PAPER_TABLE`), the predictions on which the solvers disagree, and the largest
    deviation of the prune solver from the paper."""
    loo, tst = res["loo"]["50"], res["test"]["50"]
    ours = {
        s: {
            "loo_nnk": loo[s]["error"],
            "loo_knn": loo["knn_error"],
            "test_nnk": tst[s]["error"],
        }
        for s in solvers
    }
    entry = {
        "ours": ours,
        "paper": PAPER_TABLE.get(model),
        "net": res["net"],
        "loo_changed": loo.get("changed"),
        "test_changed": tst.get("changed"),
        "prune_kkt_violation_fraction": loo["prune"]["kkt_violation_fraction"]
        if "prune" in loo
        else None,
        "seconds": res["seconds"],
        "n_train": res["n_train"],
        "n_test": res["n_test"],
    }
    if "prune" in ours and entry["paper"]:
        entry["diff_prune"] = {c: ours["prune"][c] - v for c, v in entry["paper"].items()}
        entry["max_abs_diff_prune"] = max(abs(v) for v in entry["diff_prune"].values())
    return entry


def select(rows: list[dict], **where) -> list[dict]:
    """The rows whose fields equal every ``where`` value."""
    return [r for r in rows if all(r.get(k) == v for k, v in where.items())]


def column(rows: list[dict], name: str) -> np.ndarray:
    """One field of every row as a float array (None becomes NaN)."""
    return np.array([np.nan if r.get(name) is None else r[name] for r in rows], dtype=float)


ESTIMATORS = {
    "loo_nnk": "LOO-NNK (train)",
    "loo_knn": "LOO-kNN (train)",
    "net_train": "network train error",
    "svm_train": "SVM 5-fold (train)",
    "test_nnk": "NNK (test)",
    "test_knn": "kNN (test)",
    "svm_test": "SVM (test)",
}


def model_ranking(
    rows: list[dict], epoch: int, k: int, estimators=tuple(ESTIMATORS), truth: dict | None = None
) -> dict:
    """Which model each estimator ranks best at (epoch, k), against the true test error.

    Returns {estimator: {values: {model: value}, ranking: [best → worst], order: the ranking as
    "a < b < c", best, agrees, picks_best}} plus "truth": the ranking by ``truth`` ({model:
    test error}, e.g. from :func:`~deepnnk.studies.loo.network_test_error` on the full test
    set), by default the rows' ``net_test``.
    ``agrees``: the full ranking equals the truth's.
    """
    here = {r["model"]: r for r in select(rows, epoch=epoch, k=k)}
    if not here:
        raise ValueError(f"no rows at epoch {epoch}, k {k}.")
    if truth is not None:
        here = {m: {**r, "net_test": truth[m]} for m, r in here.items()}

    def rank(name):
        vals = {m: r[name] for m, r in here.items() if r.get(name) is not None}
        return vals, sorted(vals, key=vals.get)

    truth_vals, truth = rank("net_test")
    out = {
        "truth": {
            "values": truth_vals,
            "ranking": truth,
            "order": " < ".join(truth),
            "best": truth[0],
        }
    }
    for name in estimators:
        vals, order = rank(name)
        if len(vals) < len(here):
            continue
        out[name] = {
            "values": vals,
            "ranking": order,
            "order": " < ".join(order),
            "best": order[0],
            "agrees": order == truth,
            "picks_best": order[0] == truth[0],
        }
    return out


def pearson(rows: list[dict], name: str, against: str = "net_test") -> float:
    """Pearson correlation of a column with the true test error over the rows where both exist."""
    a, b = column(rows, name), column(rows, against)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def markdown_table(header: list[str], body: list[list]) -> str:
    """A GitHub-markdown table; floats with 4 decimals (tiny ones in e-notation), None as –."""

    def fmt(x):
        if x is None or (isinstance(x, float) and not np.isfinite(x)):
            return "–"
        if isinstance(x, (float, np.floating)):
            return f"{x:.1e}" if 0 < abs(x) < 1e-3 else f"{x:.4f}"
        return str(x)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(x) for x in row) + " |" for row in body]
    return "\n".join(lines)


def everywhere(rows: list[dict], estimators=tuple(ESTIMATORS)) -> list[str]:
    """The estimators with a value at every row (the SVM runs only at a few epochs: not it)."""
    return [e for e in estimators if rows and np.isfinite(column(rows, e)).all()]


def correlations(rows: list[dict], ks) -> dict:
    """{k: {estimator: Pearson r with the network's test error over all checkpoints}}, for the
    estimators measured at every checkpoint only: a correlation over the SVM's few checkpoints
    (one epoch, three points) is not comparable with one over all of them, so it is left out."""
    out = {}
    for k in ks:
        sub = select(rows, k=k)
        out[str(k)] = {e: pearson(sub, e) for e in everywhere(sub)}
    return out


def _label(estimator: str) -> str:
    label = ESTIMATORS.get(estimator, "network test error (truth)")
    return label + " †" if estimator.startswith("svm") else label


def ranking_table(ranking: dict, models) -> str:
    """Markdown: each estimator's values per model, its ranking, and whether it is the truth's."""
    body = [
        [
            _label(e),
            *[r["values"][m] for m in models],
            " < ".join(r["ranking"]),
            r.get("agrees", "–"),
        ]
        for e, r in ranking.items()
    ]
    return markdown_table(["estimator", *models, "ranking (best first)", "same order"], body)


def paper_check_table(check: dict) -> str:
    """Markdown: :func:`~deepnnk.studies.loo.paper_check` beside the paper's numbers."""
    body = []
    for m, c in check.items():
        if c is None:
            body.append([m, *["not computed"] + ["–"] * 10])
            continue
        p, pr, exa = c["paper"], c["ours"]["prune"], c["ours"]["exact"]
        pairs = [v for col in ("loo_nnk", "loo_knn", "test_nnk") for v in (p[col], pr[col])]
        body.append(
            [
                m,
                *pairs,
                exa["loo_nnk"],
                exa["test_nnk"],
                c["loo_changed"],
                c["test_changed"],
                c["max_abs_diff_prune"],
            ]
        )
    header = PAPER_CHECK_HEADER
    return markdown_table(header, body)


#: Images in CIFAR-10's training set (the SVM's training set when ``svm_n_train`` is None).
CIFAR_TRAIN = 50_000

#: The flag every SVM number carries, as a template on the notebook's ``metrics["svm"]``
#: (:func:`svm_cost`): :func:`svm_flag_template` picks it, :func:`svm_flag` renders it.
SVM_FLAG = (
    "linear SVM, {m[svm][n_train]:,}-image training subsample, "
    "{m[svm][fits_not_converged]} of {m[svm][fits]} fits not converged"
)
SVM_FLAG_FULL = (
    "linear SVM, all {m[svm][n_train]:,} training images, "
    "{m[svm][fits_not_converged]} of {m[svm][fits]} fits not converged"
)


def svm_flag_template(svm: dict) -> str:
    """:data:`SVM_FLAG`, or :data:`SVM_FLAG_FULL` when the SVM saw the whole training set."""
    return SVM_FLAG if svm.get("subsample", True) else SVM_FLAG_FULL


def svm_flag(svm: dict) -> str:
    """The SVM's flag rendered from an :func:`svm_cost` result (for figure legends)."""
    return svm_flag_template(svm).format(m={"svm": svm})


def svm_cost(rows: list[dict], plan: dict) -> dict:
    """What the SVM baseline cost here, and its projection to full-data checkpoints (each fit is
    a fixed number of passes over its rows, so time grows at least linearly with them); also
    its training subsample (``n_train``) and how many of its ``fits`` stopped at max_iter without
    converging (``fits_not_converged``), the flag every SVM number carries (:data:`SVM_FLAG`)."""
    svm_rows = [r for r in select(rows, k=plan["ks"][0]) if r["svm_train"] is not None]
    fits = 5 * len(svm_rows)
    per_fit = sum(r["svm_seconds"] for r in svm_rows) / max(fits, 1)
    n_fit = 0.8 * (plan["svm_n_train"] or 50_000)
    per_full = 5 * per_fit * 40_000 / n_fit
    warned = sum(r["svm_convergence_warnings"] for r in svm_rows)
    return {
        "checkpoints": len(svm_rows),
        "fits": fits,
        "convergence_warnings": warned,
        # liblinear warns once per fit that stops at max_iter (svm_cv_error counts them)
        "fits_not_converged": min(warned, fits),
        "n_train": plan["svm_n_train"] or CIFAR_TRAIN,
        "subsample": plan["svm_n_train"] is not None,
        "epochs": list(plan["svm_epochs"]),
        "seconds_per_fit": per_fit,
        "rows_per_fit": n_fit,
        "projected_seconds_per_full_checkpoint_linear": per_full,
        "projected_seconds_all_60_full_checkpoints_linear": 60 * per_full,
    }


def summary(
    rows, plan, ranking, correlation, check, timing, level=None, calibration=None, svm=None
) -> dict:
    """The headline numbers: last-epoch k_main errors per model, ranking agreement, Pearson r,
    the largest deviation from the paper's table (prune, full data; None if not computed); with
    ``level`` (:func:`level_gaps`), ``calibration`` (:func:`calibrations`) and ``svm``
    (:func:`svm_cost`), the estimate's mean gaps, LOO-NNK's offset calibration and the SVM's
    non-converged fits."""
    k, e = plan["k_main"], plan["epoch_last"]
    out = {}
    for m in plan["models"]:
        r = select(rows, model=m, epoch=e, k=k)[0]
        for c in ("loo_nnk", "loo_knn", "test_nnk", "net_train", "net_test"):
            out[f"{m}.{c}"] = r[c]
    for name, r in ranking.items():
        if name != "truth":
            out[f"ranks_like_test.{name}"] = r["agrees"]
    out["truth_ranking"] = " < ".join(ranking["truth"]["ranking"])
    out["pearson.loo_nnk"] = correlation[str(k)]["loo_nnk"]
    out["pearson.net_train"] = correlation[str(k)]["net_train"]
    diffs = [c["max_abs_diff_prune"] for c in check.values() if c]
    out["paper_max_abs_diff_prune"] = max(diffs) if diffs and len(diffs) == len(check) else None
    if level is not None:
        out["loo_nnk_minus_net_test.mean"] = level["mean"]["minus_net_test"]
        out["loo_nnk_minus_test_nnk.mean"] = level["mean"]["minus_test_nnk"]
    if calibration is not None and "loo_nnk" in calibration:
        c = calibration["loo_nnk"]
        out["calibration.loo_nnk.offset"] = c["offset"]
        out["calibration.loo_nnk.calibrated_mean"] = c["calibrated"]["mean"]
        out["calibration.loo_nnk.calibrated_max"] = c["calibrated"]["max"]
        if "leave_one_model_out" in c:
            out["calibration.loo_nnk.leave_one_model_out_mean"] = c["leave_one_model_out"]["mean"]
            out["calibration.loo_nnk.leave_one_model_out_max"] = c["leave_one_model_out"]["max"]
    if svm is not None:
        out["svm.fits_not_converged"] = svm["fits_not_converged"]
        out["svm.fits"] = svm["fits"]
    out["sweep_seconds"] = timing["sweep_seconds"]
    out["nnk_seconds_when_computed"] = timing["nnk_seconds_when_computed"]
    return out


# --------------------------------------------------------------------------- the estimate's level


def last_epoch_errors(rows: list[dict], plan: dict) -> dict:
    """{model: {loo_nnk, loo_knn, test_nnk, test_knn, net_train, net_test}} at the plan's last
    epoch and headline k."""
    k, e = plan["k_main"], plan["epoch_last"]
    cols = ("loo_nnk", "loo_knn", "test_nnk", "test_knn", "net_train", "net_test")
    out = {}
    for m in plan["models"]:
        r = select(rows, model=m, epoch=e, k=k)[0]
        out[m] = {c: r[c] for c in cols}
    return out


def level_gaps(rows: list[dict], plan: dict, estimator: str = "loo_nnk") -> dict:
    """How far an estimate sits from the network's test error and from NNK's own test error.

    Per model: ``last`` (the plan's last epoch, headline k: the estimate, ``net_test``,
    ``test_nnk`` and the differences ``minus_net_test`` = estimate − network test error,
    ``minus_test_nnk`` = estimate − NNK test error) and ``mean`` (the differences averaged over
    the model's checkpoints). Overall: ``mean`` over every checkpoint, ``last_mean`` over the
    models' last epochs, ``below_net_test`` (checkpoints where the estimate is below the network's
    test error) of ``checkpoints``, and in words ``direction`` ("below" or "above" the network's
    test error on average), ``reading`` ("optimistic" or "pessimistic") and ``closer_to``
    (which test error the estimate is nearer on average).
    """
    k, epoch = plan["k_main"], plan["epoch_last"]
    out = {"estimator": estimator, "k": k, "epoch": epoch, "models": {}}
    all_net, all_nnk, last_net, last_nnk = [], [], [], []
    for m in plan["models"]:
        sub = select(rows, model=m, k=k)
        est = column(sub, estimator)
        d_net, d_nnk = est - column(sub, "net_test"), est - column(sub, "test_nnk")
        r = select(sub, epoch=epoch)[0]
        last = {
            "estimate": r[estimator],
            "net_test": r["net_test"],
            "test_nnk": r["test_nnk"],
            "minus_net_test": r[estimator] - r["net_test"],
            "minus_test_nnk": r[estimator] - r["test_nnk"],
        }
        out["models"][m] = {
            "last": last,
            "mean": {"minus_net_test": float(d_net.mean()), "minus_test_nnk": float(d_nnk.mean())},
            "checkpoints": len(sub),
        }
        all_net += list(d_net)
        all_nnk += list(d_nnk)
        last_net.append(last["minus_net_test"])
        last_nnk.append(last["minus_test_nnk"])
    mean_net, mean_nnk = float(np.mean(all_net)), float(np.mean(all_nnk))
    out["mean"] = {"minus_net_test": mean_net, "minus_test_nnk": mean_nnk}
    # The sizes of the two gaps, for prose that already says "below" or "above".
    out["mean_abs"] = {"net_test": abs(mean_net), "test_nnk": abs(mean_nnk)}
    out["last_mean"] = {
        "minus_net_test": float(np.mean(last_net)),
        "minus_test_nnk": float(np.mean(last_nnk)),
    }
    out["checkpoints"] = len(all_net)
    out["below_net_test"] = int(np.sum(np.array(all_net) < 0))
    out["direction"] = "below" if mean_net < 0 else "above"
    out["reading"] = "optimistic" if mean_net < 0 else "pessimistic"
    out["closer_to"] = (
        "NNK's own test error" if abs(mean_nnk) < abs(mean_net) else "the network's test error"
    )
    return out


def _abs_stats(x: np.ndarray) -> dict:
    return {"mean": float(np.mean(np.abs(x))), "max": float(np.max(np.abs(x)))}


def offset_calibration(
    rows: list[dict], k: int, estimator: str = "loo_nnk", against: str = "net_test", models=None
) -> dict:
    r"""The estimate shifted by one offset fitted across checkpoints, and how close it gets.

    Over the checkpoints at ``k`` (every model and epoch with both values), the offset is
    :math:`c = \operatorname{mean}(\varepsilon_{\mathrm{test}} - \hat\varepsilon)` and the
    calibrated estimate :math:`\hat\varepsilon + c`. Returns ``offset``; ``raw`` and
    ``calibrated``: mean and max of :math:`|\hat\varepsilon - \varepsilon_{\mathrm{test}}|` and
    :math:`|\hat\varepsilon + c - \varepsilon_{\mathrm{test}}|`; the Pearson ``r``; and
    ``leave_one_model_out``: each model's checkpoints calibrated with the offset fitted on the
    *other* models only (``offsets``), so that no point is judged by an offset fitted on itself
    (``mean``, ``max`` over all checkpoints, and per model in ``models``).
    """
    sub = select(rows, k=k)
    est, truth = column(sub, estimator), column(sub, against)
    ok = np.isfinite(est) & np.isfinite(truth)
    if ok.sum() == 0:
        raise ValueError(f"no checkpoint at k {k} has both {estimator} and {against}.")
    names = np.array([r["model"] for r in sub])[ok]
    est, truth = est[ok], truth[ok]
    c = float(np.mean(truth - est))
    out = {
        "estimator": estimator,
        "against": against,
        "k": k,
        "checkpoints": int(ok.sum()),
        "offset": c,
        "pearson": pearson(sub, estimator, against),
        "raw": _abs_stats(est - truth),
        "calibrated": _abs_stats(est + c - truth),
    }
    models = [m for m in (models or dict.fromkeys(names)) if m in set(names)]
    if len(models) >= 2:
        offsets, per_model, errors = {}, {}, []
        for m in models:
            held, fit = names == m, names != m
            offsets[m] = float(np.mean(truth[fit] - est[fit]))
            err = est[held] + offsets[m] - truth[held]
            per_model[m] = _abs_stats(err)
            errors.append(err)
        out["leave_one_model_out"] = {
            "offsets": offsets,
            **_abs_stats(np.concatenate(errors)),
            "models": per_model,
        }
    return out


#: The estimators calibrated in notebook 02: the training-side ones that exist at every
#: checkpoint (LOO-NNK, LOO-kNN, the network's training error), and NNK's test error.
CALIBRATED = ("loo_nnk", "loo_knn", "net_train", "test_nnk")


def calibrations(rows: list[dict], plan: dict, estimators=CALIBRATED) -> dict:
    """{estimator: :func:`offset_calibration`} at the plan's headline k, against the network's
    test error, for the estimators measured at every checkpoint."""
    k = plan["k_main"]
    present = everywhere(select(rows, k=k), estimators)
    return {e: offset_calibration(rows, k, e, models=plan["models"]) for e in present}


def neighbour_summary(rows: list[dict], plan: dict) -> dict:
    """NNK's neighbour count and residual (LOO queries, headline k) at the first and last
    epoch, per model; ``grows``/``residual_grows``: on how many models each rises."""
    k, first, last = plan["k_main"], min(plan["epochs"]), plan["epoch_last"]
    out = {"k": k, "epoch_first": first, "epoch_last": last, "models": {}}
    for m in plan["models"]:
        a, b = (select(rows, model=m, epoch=e, k=k)[0] for e in (first, last))
        out["models"][m] = {
            "first": a["n_nnk_mean"],
            "last": b["n_nnk_mean"],
            "residual_first": a["residual_mean"],
            "residual_last": b["residual_mean"],
        }
    v = out["models"].values()
    out["grows"] = sum(x["last"] > x["first"] for x in v)
    out["residual_grows"] = sum(x["residual_last"] > x["residual_first"] for x in v)
    out["n_models"] = len(out["models"])
    return out


def solver_difference(rows: list[dict], k: int | None = None) -> dict:
    """Where both solvers ran (at ``k``, or every k): the largest differences between their LOO
    and test errors, the largest number of predictions that change (of ``n_train`` LOO /
    ``n_test`` test queries), and the prune solver's largest share of LOO queries that violate
    the KKT conditions."""
    both = [
        r
        for r in rows
        if "loo_nnk_prune" in r and "loo_nnk_exact" in r and (k is None or r["k"] == k)
    ]
    if not both:
        return {"rows": 0}
    return {
        "rows": len(both),
        "max_abs_loo_diff": max(abs(r["loo_nnk_exact"] - r["loo_nnk_prune"]) for r in both),
        "max_abs_test_diff": max(abs(r["test_nnk_exact"] - r["test_nnk_prune"]) for r in both),
        "max_loo_changed": max(r.get("loo_changed", 0) for r in both),
        "max_test_changed": max(r.get("test_changed", 0) for r in both),
        "n_train": max(r["n_train"] for r in both),
        "n_test": max(r["n_test"] for r in both),
        "max_kkt_violation_prune": max(r.get("loo_kkt_violation_prune", 0.0) for r in both),
    }


# --------------------------------------------------------------------------- templates


def field(path: str, value=None, spec: str | None = None) -> str:
    """A template field for ``m`` at ``path`` ("a/b/c" → ``{m[a][b][c]:spec}``).

    ``spec`` defaults by ``value``: 4 decimals for a float, plain otherwise; a None or NaN value
    gives "–" (no field), as :func:`markdown_table` shows it."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if spec is None:
        spec = ".4f" if isinstance(value, (float, np.floating)) else ""
    keys = "".join(f"[{p}]" for p in path.split("/"))
    return "{m" + keys + (":" + spec if spec else "") + "}"


def _table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def ranking_template(ranking: dict, models, svm: dict | None = None, key: str = "ranking") -> str:
    """:func:`ranking_table` as a template on ``metrics[key]``; SVM rows carry † and, when
    ``svm`` (``metrics["svm"]``) is given, a footnote with its flag (:data:`SVM_FLAG`)."""
    body = []
    for e, r in ranking.items():
        cells = [field(f"{key}/{e}/values/{m}", r["values"].get(m)) for m in models]
        agrees = field(f"{key}/{e}/agrees", r["agrees"]) if "agrees" in r else "–"
        body.append([_label(e), *cells, field(f"{key}/{e}/order", r["order"]), agrees])
    table = _table(["estimator", *models, "ranking (best first)", "same order"], body)
    if svm is not None and any(e.startswith("svm") for e in ranking):
        table += "\n\n† " + svm_flag_template(svm) + "."
    return table


def paper_check_template(check: dict, key: str = "paper_check") -> str:
    """:func:`paper_check_table` as a template on ``metrics[key]``."""
    body = []
    for m, c in check.items():
        if c is None:
            body.append([m, "not computed", *["–"] * 10])
            continue
        base = f"{key}/{m}"
        pairs = [
            field(f"{base}/{side}/{col}", v)
            for col in ("loo_nnk", "loo_knn", "test_nnk")
            for side, v in (("paper", c["paper"][col]), ("ours/prune", c["ours"]["prune"][col]))
        ]
        body.append(
            [
                m,
                *pairs,
                field(f"{base}/ours/exact/loo_nnk", c["ours"]["exact"]["loo_nnk"]),
                field(f"{base}/ours/exact/test_nnk", c["ours"]["exact"]["test_nnk"]),
                field(f"{base}/loo_changed", c["loo_changed"]),
                field(f"{base}/test_changed", c["test_changed"]),
                field(f"{base}/max_abs_diff_prune", c["max_abs_diff_prune"], ".1e"),
            ]
        )
    header = PAPER_CHECK_HEADER
    return _table(header, body)


def gaps_template(level: dict, key: str = "level") -> str:
    """Per model: the estimate, the network's and NNK's test errors and their differences at the
    last epoch, and the differences averaged over the model's checkpoints (:func:`level_gaps`)."""
    body = []
    for m, g in level["models"].items():
        last = [
            field(f"{key}/models/{m}/last/{c}", g["last"][c], s)
            for c, s in (
                ("estimate", ".4f"),
                ("net_test", ".4f"),
                ("test_nnk", ".4f"),
                ("minus_net_test", "+.4f"),
                ("minus_test_nnk", "+.4f"),
            )
        ]
        mean = [
            field(f"{key}/models/{m}/mean/{c}", g["mean"][c], "+.4f")
            for c in ("minus_net_test", "minus_test_nnk")
        ]
        body.append([m, *last, *mean])
    body.append(
        [
            "all models",
            "",
            "",
            "",
            field(f"{key}/last_mean/minus_net_test", level["last_mean"]["minus_net_test"], "+.4f"),
            field(f"{key}/last_mean/minus_test_nnk", level["last_mean"]["minus_test_nnk"], "+.4f"),
            field(f"{key}/mean/minus_net_test", level["mean"]["minus_net_test"], "+.4f"),
            field(f"{key}/mean/minus_test_nnk", level["mean"]["minus_test_nnk"], "+.4f"),
        ]
    )
    header = [
        "model",
        "LOO-NNK (last epoch)",
        "network test",
        "NNK test",
        "LOO − network",
        "LOO − NNK test",
        "LOO − network (mean over epochs)",
        "LOO − NNK test (mean over epochs)",
    ]
    return _table(header, body)


def calibration_template(cal: dict, key: str = "calibration") -> str:
    """One row per estimator of :func:`calibrations`: Pearson r, the offset c, and the mean/max
    absolute error against the network's test error raw, calibrated with c, and calibrated
    leave-one-model-out."""
    body = []
    for e, c in cal.items():
        base = f"{key}/{e}"
        lomo = c.get("leave_one_model_out", {})
        body.append(
            [
                ESTIMATORS.get(e, e),
                field(f"{base}/pearson", c["pearson"], ".3f"),
                field(f"{base}/offset", c["offset"], "+.4f"),
                field(f"{base}/raw/mean", c["raw"]["mean"]),
                field(f"{base}/raw/max", c["raw"]["max"]),
                field(f"{base}/calibrated/mean", c["calibrated"]["mean"]),
                field(f"{base}/calibrated/max", c["calibrated"]["max"]),
                field(f"{base}/leave_one_model_out/mean", lomo.get("mean")),
                field(f"{base}/leave_one_model_out/max", lomo.get("max")),
            ]
        )
    header = [
        "estimate",
        "r",
        "offset c",
        "raw error mean",
        "max",
        "calibrated mean",
        "max",
        "leave-one-model-out mean",
        "max",
    ]
    return _table(header, body)


def summary_template(summary: dict, svm: dict | None = None, key: str = "summary") -> str:
    """:func:`summary` as a two-column template on ``metrics[key]``; SVM entries carry †."""
    body = []
    for name, v in summary.items():
        label = name + " †" if ".svm" in name else name
        signed = "minus" in name or name.endswith("offset")
        spec = "+.4f" if signed else ".1e" if name.endswith("abs_diff_prune") else None
        body.append([label, field(f"{key}/{name}", v, spec)])
    table = _table(["metric", "value"], body)
    if svm is not None and any(".svm" in n for n in summary):
        table += "\n\n† " + svm_flag_template(svm) + "."
    return table
