"""DeepNNK: explain deep models and estimate their generalization by NNK polytope interpolation.

The core, importable without data or a network:

- :func:`cosine_kernel`, :func:`gaussian_kernel` — similarities in [0, 1];
- :func:`knn` — exact blocked nearest-neighbour search (numpy or torch, CPU or GPU);
- :func:`solve_nnk`, :func:`kkt_residual` — batched non-negative kernel regression;
- :class:`NNKClassifier` — scikit-learn estimator with ``explain`` and leave-one-out;
- :class:`NNKRegressor` — the same interpolation for real-valued targets (R², leave-one-out);
- :func:`extract_features` — any layer of any PyTorch model, via forward hooks, cached.

CIFAR-10, the paper's CNN, training and the authors' checkpoints live in :mod:`deepnnk.nets`; the
computation behind each notebook in :mod:`deepnnk.studies`; its figures in :mod:`deepnnk.figures`.
"""

from .activations import extract_features
from .classifier import NNKClassifier, interpolate, nnk_residual
from .explain import NeighbourTable, neighbourhood_table, weight_share
from .kernels import cosine_kernel, gaussian_kernel
from .neighbors import knn
from .regressor import NNKRegressor
from .solver import kkt_residual, nnk_objective, solve_nnk

__version__ = "0.1.0"
__all__ = [
    "NNKClassifier",
    "NNKRegressor",
    "extract_features",
    "NeighbourTable",
    "cosine_kernel",
    "gaussian_kernel",
    "interpolate",
    "kkt_residual",
    "knn",
    "neighbourhood_table",
    "nnk_objective",
    "nnk_residual",
    "solve_nnk",
    "weight_share",
]
