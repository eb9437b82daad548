"""The README's "Explain your own model" block runs as written, on tabular rows and on images."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

README = Path(__file__).resolve().parents[1] / "README.md"


def _block() -> str:
    text = README.read_text()
    section = text.split("### Explain your own model", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def _train(model, x, y, epochs=60):
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def _run(namespace, capsys):
    exec(compile(_block(), "README.md", "exec"), namespace)  # noqa: S102 - our own README
    return capsys.readouterr().out


def test_readme_block_on_tabular_digits(capsys, tmp_path, monkeypatch):
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    monkeypatch.setenv("DEEPNNK_CACHE", str(tmp_path))
    X, y = sklearn_datasets.load_digits(return_X_y=True)
    x = torch.tensor(X / 16, dtype=torch.float32)
    y = torch.tensor(y)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    _train(model, x[:1500], y[:1500])
    ns = {
        "model": model,
        "layer": "1",
        "x_train": x[:1500],
        "y_train": y[:1500].numpy(),
        "x_query": x[1500:1505],
    }
    out = _run(ns, capsys)
    assert out.count("\n") == 1 + 5 + 1  # header, 5 queries, the LOO line
    assert ns["F_train"].shape == (1500, 32) and ns["table"].weights.shape[0] == 5
    loo = float(out.strip().rsplit(" ", 1)[1])
    assert 0.0 <= loo < 0.2  # digits are easy: the interpolation must generalize
    np.testing.assert_allclose(ns["table"].weights.sum(1), 1.0, rtol=1e-9)


def test_readme_block_on_images(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPNNK_CACHE", str(tmp_path))
    g = torch.Generator().manual_seed(0)
    x = torch.rand(120, 3, 8, 8, generator=g)
    y = (x[:, 0].mean((1, 2)) > x[:, 2].mean((1, 2))).long()  # red vs blue images
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 2)
    )
    _train(model, x[:100], y[:100])
    ns = {
        "model": model,
        "layer": "1",
        "x_train": x[:100],
        "y_train": y[:100].numpy(),
        "x_query": x[100:],
    }
    out = _run(ns, capsys)
    assert ns["F_train"].shape == (100, 8)  # conv map [8, 8, 8] average-pooled to 8 channels
    assert out.count("\n") == 1 + 20 + 1
