"""Check that two checkouts of deepnnk extract the very same features and logits.

    git worktree add /tmp/old <commit>
    .venv/bin/python benchmarks/compare_extract_across_trees.py /tmp/old .

Each tree runs ``deepnnk.nets.features.extract`` (no cache) in its own process on all 60,000
CIFAR-10 images ($DEEPNNK_DATA) with three of the authors' checkpoints, and the arrays are
compared byte for byte. Used when ``extract`` became a caller of ``deepnnk.extract_features``
(issue 14): any difference would have changed every published number built on the features.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

WORKER = """
import sys, time, numpy as np
from deepnnk.nets.data import load_cifar10
from deepnnk.nets.features import extract
from deepnnk.nets.loading import load_network
import deepnnk
print("deepnnk from", deepnnk.__file__, flush=True)
CHECKPOINTS = [("regularised", 20), ("overfit", 5), ("underparameterised", 12)]
x_tr, _, x_te, _ = load_cifar10(None)
out = {}
for model, epoch in CHECKPOINTS:
    net = load_network("paper", model, epoch)
    t = time.perf_counter()
    for side, x in (("train", x_tr), ("test", x_te)):
        for layer in ("features", "logits"):
            out[f"{model}-{epoch}-{side}-{layer}"] = extract(net, x, layer=layer, cache_dir=False)
    print(model, epoch, f"{time.perf_counter() - t:.1f} s", flush=True)
np.savez(sys.argv[1], **out)
"""


def run(tree: Path, target: Path) -> dict:
    env = os.environ | {"PYTHONPATH": str(tree.resolve()), "TQDM_DISABLE": "1"}
    subprocess.run([sys.executable, "-c", WORKER, str(target)], env=env, check=True, cwd="/")
    return dict(np.load(target))


def main() -> int:
    old_tree, new_tree = map(Path, sys.argv[1:3])
    with tempfile.TemporaryDirectory() as tmp:
        old = run(old_tree, Path(tmp) / "old.npz")
        new = run(new_tree, Path(tmp) / "new.npz")
    same = True
    for key in sorted(old):
        equal = old[key].dtype == new[key].dtype and old[key].tobytes() == new[key].tobytes()
        same &= equal
        print(f"{key:<40} {str(old[key].shape):<14} {'bit-identical' if equal else 'DIFFERENT'}")
    return 0 if same and sorted(old) == sorted(new) else 1


if __name__ == "__main__":
    sys.exit(main())
