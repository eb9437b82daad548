"""The tables of notebook 02, from the tidy rows of :func:`deepnnk.studies.loo.sweep` (one per
model, epoch and k): selections, model rankings, Pearson correlations, markdown tables, the SVM's
cost and the summary. Plain data and markdown; no computation is cached here.
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

    Returns {estimator: {values: {model: value}, ranking: [best → worst], best, agrees,
    picks_best}} plus "truth": the ranking by ``truth`` ({model: test error}, e.g. from
    :func:`~deepnnk.studies.loo.network_test_error` on the full test set), by default the rows'
    ``net_test``.
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
    out = {"truth": {"values": truth_vals, "ranking": truth, "best": truth[0]}}
    for name in estimators:
        vals, order = rank(name)
        if len(vals) < len(here):
            continue
        out[name] = {
            "values": vals,
            "ranking": order,
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


def correlations(rows: list[dict], ks) -> dict:
    """{k: {estimator: Pearson r with the network's test error over all checkpoints}}."""
    return {str(k): {e: pearson(select(rows, k=k), e) for e in ESTIMATORS} for k in ks}


def ranking_table(ranking: dict, models) -> str:
    """Markdown: each estimator's values per model, its ranking, and whether it is the truth's."""
    body = [
        [
            ESTIMATORS.get(e, "network test error (truth)"),
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
    header = [
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
    return markdown_table(header, body)


def svm_cost(rows: list[dict], plan: dict) -> dict:
    """What the SVM baseline cost here, and its projection to full-data checkpoints (each fit is
    a fixed number of passes over its rows, so time grows at least linearly with them)."""
    svm_rows = [r for r in select(rows, k=plan["ks"][0]) if r["svm_train"] is not None]
    fits = 5 * len(svm_rows)
    per_fit = sum(r["svm_seconds"] for r in svm_rows) / max(fits, 1)
    n_fit = 0.8 * (plan["svm_n_train"] or 50_000)
    per_full = 5 * per_fit * 40_000 / n_fit
    return {
        "checkpoints": len(svm_rows),
        "fits": fits,
        "convergence_warnings": sum(r["svm_convergence_warnings"] for r in svm_rows),
        "seconds_per_fit": per_fit,
        "rows_per_fit": n_fit,
        "projected_seconds_per_full_checkpoint_linear": per_full,
        "projected_seconds_all_60_full_checkpoints_linear": 60 * per_full,
    }


def summary(rows, plan, ranking, correlation, check, timing) -> dict:
    """The headline numbers: last-epoch k_main errors per model, ranking agreement, Pearson r,
    the largest deviation from the paper's table (prune, full data; None if not computed)."""
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
    out["sweep_seconds"] = timing["sweep_seconds"]
    out["nnk_seconds_when_computed"] = timing["nnk_seconds_when_computed"]
    return out
