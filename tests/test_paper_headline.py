"""The paper's headline, recomputed from scratch: the authors' regularised model at epoch 20,
k = 50, their prune solver, all 50,000 training and 10,000 test images.

Shekkizhar & Ortega (2020), Table 1: LOO-NNK 0.2053, LOO-kNN 0.2634, NNK on the test set 0.2171
(:data:`deepnnk.studies.loo_report.PAPER_TABLE`). No cache is read or written, so the features, the
neighbour search and the solves all run here (about a minute and a half on 2 cores).
"""

from __future__ import annotations

import pytest

from deepnnk.studies import loo as ex
from deepnnk.studies.loo_report import PAPER_TABLE

PAPER = {"loo_nnk": 0.2053, "loo_knn": 0.2634, "test_nnk": 0.2171}


@pytest.mark.data
@pytest.mark.slow
def test_regularised_epoch_20_reproduces_the_paper(real_data_root):
    assert PAPER == PAPER_TABLE["regularised"]  # the numbers as published, in one place
    res = ex.evaluate_checkpoint(
        "paper",
        "regularised",
        20,
        data_root=real_data_root,
        ks=(50,),
        solvers=("prune",),
        cache_dir=False,
        feature_cache_dir=False,
    )
    assert (res["n_train"], res["n_test"]) == (50_000, 10_000)
    loo, test = res["loo"]["50"], res["test"]["50"]
    ours = {
        "loo_nnk": loo["prune"]["error"],
        "loo_knn": loo["knn_error"],
        "test_nnk": test["prune"]["error"],
    }
    for name, want in PAPER.items():
        assert ours[name] == pytest.approx(want, abs=1e-4), (name, ours)
