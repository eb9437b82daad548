"""Figures of notebook 01: galleries of one query of a run
(:class:`~deepnnk.studies.explanations.Queries`: its image, the training images, the class
names), alone or NNK above kNN.

The general figures (galleries of any table, neighbour counts, weight shares, the confidence
scatter) are in :mod:`deepnnk.figures.gallery`.
"""

from __future__ import annotations

from deepnnk.explain import NeighbourTable
from deepnnk.figures.gallery import stacked_galleries, table_gallery
from deepnnk.studies.explanations import CLASSES, Queries


def query_gallery(q: Queries, table: NeighbourTable, i: int, title: str, r: int | None = None):
    """Gallery of row ``i`` of ``table``, for query row ``r`` of ``q`` (default ``i``): the query
    titled "true, predicted", then its NNK neighbours titled "class, weight"."""
    r = i if r is None else r
    return table_gallery(table, i, q.q_images[r], q.train_images, CLASSES, q.y_q[r], suptitle=title)


def nnk_vs_knn(q: Queries, nnk: NeighbourTable, knn: NeighbourTable, r: int, title: str):
    """Query row ``r`` explained by NNK (its neighbours) above kernel kNN (all k candidates)."""
    tables = {
        f"NNK: {nnk.n_neighbours[r]} neighbours": nnk,
        f"kernel kNN: all {knn.index.shape[1]}": knn,
    }
    args = (q.q_images[r], q.train_images, CLASSES, q.y_q[r])
    return stacked_galleries(tables, r, *args, suptitle=title)
