"""deepnnk.cache: one root with a folder per kind, keys that follow the code, atomic JSON."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest

from deepnnk import cache


def test_root_and_kinds_follow_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPNNK_CACHE", str(tmp_path))
    assert cache.cache_root() == tmp_path
    for kind in cache.KINDS:
        assert cache.cache_dir(kind) == tmp_path / kind
    assert cache.cache_dir("loo", tmp_path / "mine") == tmp_path / "mine"
    assert cache.cache_dir("loo", False) is None
    monkeypatch.delenv("DEEPNNK_CACHE")
    assert cache.cache_root().parts[-2:] == (".cache", "deepnnk")
    with pytest.raises(ValueError, match="cache kind must be one of"):
        cache.cache_dir("nonsense")


def test_code_digest_follows_the_source_file(tmp_path, monkeypatch):
    (tmp_path / "toy_module_for_digest.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = importlib.import_module("toy_module_for_digest")
    try:
        first = cache.code_digest([mod])
        assert cache.code_digest([mod]) == first
        (tmp_path / "toy_module_for_digest.py").write_text("X = 1  # edited\n")
        assert cache.code_digest([mod]) != first  # read from disk: no restart needed
    finally:
        sys.modules.pop("toy_module_for_digest", None)
    # names and modules are interchangeable, and order does not matter
    assert cache.code_digest(["solver", "kernels"]) == cache.code_digest(
        [importlib.import_module("deepnnk.kernels"), "deepnnk.solver"]
    )


def test_json_round_trip_is_atomic_and_checks_the_spec(tmp_path):
    spec = {"a": 1, "b": [1, 2]}
    path = tmp_path / "x" / "entry.json"
    cache.write_json(path, {"spec": spec, "value": np.float32(0.5), "arr": np.arange(3)})
    assert cache.read_json(path, spec) == {"spec": spec, "value": 0.5, "arr": [0, 1, 2]}
    assert cache.read_json(path, {**spec, "a": 2}) is None  # a key collision is not a hit
    assert cache.read_json(tmp_path / "missing.json", spec) is None
    assert cache.read_json(None, spec) is None
    path.write_text("{ truncated")
    assert cache.read_json(path, spec) is None  # unreadable: a miss, not a crash
    assert not list(path.parent.glob(".*.tmp"))


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path):
    path = tmp_path / "f.bin"
    cache.atomic_write(path, lambda f: f.write(b"old"))

    def boom(f):
        f.write(b"half")
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        cache.atomic_write(path, boom)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_model_module_lists_the_code_of_every_submodule():
    """A model built from parts defined in several files is keyed by all of them: here the
    paper CNN's module and torch's container, conv and linear layers."""
    import torch

    from deepnnk.cache import model_module
    from deepnnk.nets.models import PaperCNN

    names = [m.__name__ for m in model_module(torch.nn.Sequential(PaperCNN(4), torch.nn.ReLU()))]
    assert names == sorted(names)
    assert {
        "deepnnk.nets.models",
        "torch.nn.modules.container",
        "torch.nn.modules.conv",
        "torch.nn.modules.linear",
    } <= set(names)
