"""studies.decoy: a tiny Decoy-CIFAR run with each penalty, resumed from its checkpoints."""

from __future__ import annotations

import pytest

from deepnnk.studies import decoy


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("penalty, lam", [("none", 0.0), ("cdep", 1.0), ("rrr", 1.0)])
def test_decoy_run_reports_and_resumes(real_data_root, tmp_path, monkeypatch, penalty, lam):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    kw = dict(
        n_train=120,
        n_test=60,
        epochs=1,
        data_root=real_data_root,
        checkpoints_root=tmp_path,
        progress=False,
    )
    r = decoy.decoy_run(penalty, lam, **kw)
    for key in ("clean", "random", "swap", "train_decoy"):
        assert 0.0 <= r[key] <= 1.0, (key, r[key])
    assert r["reliance"] == pytest.approx(r["clean"] - r["swap"])
    assert (r["n_train"], r["n_test"], r["epochs"]) == (120, 60, 1)
    assert (r["last_penalty"] is None) == (penalty == "none")
    (folder,) = tmp_path.iterdir()
    assert folder.name == f"decoy-underparameterised-{penalty}-lam{lam:g}-seed0-n120"
    again = decoy.decoy_run(penalty, lam, **kw)  # resumed: nothing retrained
    assert {k: v for k, v in again.items() if "seconds" not in k} == {
        k: v for k, v in r.items() if "seconds" not in k
    }


def test_an_unknown_penalty_is_named():
    with pytest.raises(ValueError, match="penalty must be one of"):
        decoy.decoy_run("lasso", 1.0)
