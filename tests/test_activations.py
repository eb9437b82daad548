"""deepnnk.extract_features: any layer of any model, any input container, cached, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import deepnnk
from deepnnk.activations import layer_names


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


def _convnet(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 5, 3, padding=1),
        nn.Flatten(),
        nn.Linear(5 * 8 * 8, 2),
    )


def test_tabular_mlp_layer_equals_manual_forward(tmp_path):
    model = _mlp()
    x = np.random.default_rng(0).normal(size=(37, 6)).astype(np.float32)
    got = deepnnk.extract_features(model, x, "3", batch_size=10, cache_dir=False)
    with torch.no_grad():
        want = model[:4](torch.from_numpy(x)).numpy()
    assert got.dtype == np.float32 and got.shape == (37, 8)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_float64_table_is_run_in_float32():
    model = _mlp()
    x = np.random.default_rng(1).normal(size=(5, 6))
    got = deepnnk.extract_features(model, x, model[1], cache_dir=False)
    with torch.no_grad():
        want = model[:2](torch.from_numpy(x).float()).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_dataloader_dataset_tensor_and_list_of_layers_agree():
    model = _convnet()
    x = torch.randn(20, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.arange(20) % 2
    layers = ["1", model[2]]
    from_tensor = deepnnk.extract_features(model, x, layers, cache_dir=False)
    from_ds = deepnnk.extract_features(
        model, TensorDataset(x, y), layers, batch_size=7, cache_dir=False
    )
    loader = DataLoader(TensorDataset(x, y), batch_size=6, shuffle=False)
    from_loader = deepnnk.extract_features(model, loader, layers, cache_dir=False)
    assert set(from_tensor) == {"1", "2"}
    assert from_tensor["1"].shape == (20, 4 * 64) and from_tensor["2"].shape == (20, 5 * 64)
    for out in (from_ds, from_loader):
        for name in ("1", "2"):
            np.testing.assert_array_equal(out[name], from_tensor[name])


def test_pooling_over_spatial_dimensions():
    model = _convnet()
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    flat = deepnnk.extract_features(model, x, "2", cache_dir=False).reshape(4, 5, 8, 8)
    avg = deepnnk.extract_features(model, x, "2", pool="avg", cache_dir=False)
    mx = deepnnk.extract_features(model, x, "2", pool="max", cache_dir=False)
    np.testing.assert_allclose(avg, flat.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(mx, flat.max(axis=(2, 3)))


def test_resnet18_layer():
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = deepnnk.extract_features(model, x, ["layer3", "layer4"], pool="avg", cache_dir=False)
    assert out["layer3"].shape == (3, 256) and out["layer4"].shape == (3, 512)
    assert np.isfinite(out["layer4"]).all()
    # The model is left in the mode it was in.
    model.train()
    deepnnk.extract_features(model, x, "layer4", pool="avg", cache_dir=False)
    assert model.training


def test_cache_gives_identical_features_and_keys_on_weights(tmp_path):
    model = _mlp()
    x = np.random.default_rng(2).normal(size=(11, 6)).astype(np.float32)
    first = deepnnk.extract_features(model, x, "1", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    again = deepnnk.extract_features(model, x, "1", cache_dir=tmp_path)
    np.testing.assert_array_equal(first, again)
    with torch.no_grad():
        model[0].bias += 1.0  # another model: another key
    changed = deepnnk.extract_features(model, x, "1", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 2
    assert not np.array_equal(first, changed)
    deepnnk.extract_features(model, x, "1", pool="avg", cache_dir=tmp_path)  # 2-D: same values
    assert len(list(tmp_path.glob("*.npz"))) == 3  # but pool is part of the key


def test_corrupt_cache_entry_is_recomputed(tmp_path):
    model = _mlp()
    x = np.ones((4, 6), np.float32)
    want = deepnnk.extract_features(model, x, "1", cache_dir=tmp_path)
    (entry,) = tmp_path.glob("*.npz")
    entry.write_bytes(b"not a zip")
    with pytest.warns(UserWarning, match="unreadable"):
        got = deepnnk.extract_features(model, x, "1", cache_dir=tmp_path)
    np.testing.assert_array_equal(got, want)


def test_unknown_layer_lists_valid_names():
    model = _mlp()
    with pytest.raises(ValueError, match=r"unknown layer 'fc9'.*'0', '1', '2', '3', '4'"):
        deepnnk.extract_features(model, np.zeros((2, 6), np.float32), "fc9", cache_dir=False)
    assert layer_names(model) == ["0", "1", "2", "3", "4"]


def test_foreign_module_and_bad_arguments():
    model, other = _mlp(), _mlp(1)
    x = np.zeros((2, 6), np.float32)
    with pytest.raises(ValueError, match="not part of the model"):
        deepnnk.extract_features(model, x, other[0], cache_dir=False)
    with pytest.raises(ValueError, match="pool must be one of"):
        deepnnk.extract_features(model, x, "1", pool="mean", cache_dir=False)
    with pytest.raises(ValueError, match="non-empty list"):
        deepnnk.extract_features(model, x, [], cache_dir=False)
    with pytest.raises(TypeError, match="nn.Module"):
        deepnnk.extract_features(lambda t: t, x, "1", cache_dir=False)
    loader = DataLoader(TensorDataset(torch.from_numpy(x)), batch_size=1, shuffle=True)
    with pytest.raises(ValueError, match="shuffle=False"):
        deepnnk.extract_features(model, loader, "1", cache_dir=False)


class _TupleOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 3, batch_first=True)
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def test_layer_with_tuple_output_is_refused_with_advice():
    model = _TupleOut()
    with pytest.raises(TypeError, match="outputs a tuple.*submodules"):
        deepnnk.extract_features(model, torch.zeros(2, 5, 4), "lstm", cache_dir=False)
    out = deepnnk.extract_features(model, torch.zeros(2, 5, 4), "head", cache_dir=False)
    assert out.shape == (2, 2)


def test_nan_activations_are_refused():
    model = _mlp()
    x = np.zeros((3, 6), np.float32)
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"non-finite activations .* for 1 of 3 examples"):
        deepnnk.extract_features(model, x, "1", cache_dir=False)


class _Reused(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.act = nn.Linear(3, 3), nn.Linear(3, 3), nn.ReLU()

    def forward(self, x):
        return self.b(self.act(self.act(self.a(x))))


def test_module_run_twice_is_ambiguous():
    with pytest.raises(ValueError, match="ran 2 times"):
        deepnnk.extract_features(_Reused(), np.zeros((2, 3), np.float32), "act", cache_dir=False)


def test_layer_input_gives_the_paper_cnn_features():
    from deepnnk.nets.models import PaperCNN

    torch.manual_seed(0)
    model = PaperCNN(width=8).eval()
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    got = deepnnk.extract_features(model, x, "fc", layer_input=True, cache_dir=False)
    with torch.no_grad():
        want = model.features(x).numpy()
    np.testing.assert_array_equal(got, want)
    conv = deepnnk.extract_features(model, x, "convs.5", pool="max", cache_dir=False)
    assert conv.shape == (6, 8)  # max-pooled over space: the last conv layer's C = 8 channels


def test_a_read_only_array_gives_the_same_features_without_a_warning():
    """Cached and memory-mapped arrays are read-only; torch cannot share such a buffer and
    would warn in every batch (a warning a published notebook must not show). The bits equal
    those of a writable copy, since every numpy batch is copied before it runs."""
    import warnings

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU())
    x = np.random.default_rng(0).normal(size=(30, 5)).astype(np.float32)
    frozen = x.copy()
    frozen.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = deepnnk.extract_features(
            mlp, frozen, "1", batch_size=7, cache_dir=False, progress_bar=False
        )
    np.testing.assert_array_equal(
        got,
        deepnnk.extract_features(mlp, x, "1", batch_size=7, cache_dir=False, progress_bar=False),
    )
