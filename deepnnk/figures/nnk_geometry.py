"""Figures of ``notebooks/00_nnk_geometry.ipynb``, drawn from what
:mod:`deepnnk.studies.nnk_geometry` computes.

- one query: :func:`draw_neighbourhood` (kNN ball vs NNK neighbours, or KRI lines and the NNK
  polytope), :func:`neighbourhood_panels` (one panel per data set);
- fields and curves: :func:`draw_field`, :func:`field_panels`, :func:`loo_figure`;
- the ReLU network: :func:`draw_regions`, :func:`draw_polytopes`, :func:`region_panel`,
  :func:`polytope_figure` (its linear regions with input and pulled-back NNK polytopes),
  :func:`agreement_figure` (NNK-on-features vs the network, and the training history, on an
  epoch axis with the integer ticks of :func:`epoch_ticks`);
- the k sweep :func:`k_sweep_figure` and the ipywidgets :func:`neighbourhood_explorer` it stands
  in for, built only where :func:`widgets_available`;
- the cosine kernel: :func:`cosine_bridge_figure` (Gaussian KRI lines against the cosine
  kernel's rays from the origin);
- :func:`show_source`, a function's source shown as a code block (the solver written out).

Every figure is drawn in the book's style (:mod:`deepnnk.figures.style`): at most
:data:`~deepnnk.figures.style.BOOK_WIDTH` wide, legends off the data, integer ticks on counts.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.patches import Circle, Polygon

from deepnnk.figures import style
from deepnnk.nets.geometry import Region
from deepnnk.studies import nnk_geometry as study

CLASS_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple")
PROBE_COLOURS = ("crimson", "darkviolet", "teal", "darkorange", "navy")


# --------------------------------------------------------------------------- one query


def _scatter_data(ax, X, y, alpha=0.35, s=10):
    for c in np.unique(y):
        ax.scatter(*X[y == c].T, s=s, c=CLASS_COLOURS[c % len(CLASS_COLOURS)], alpha=alpha, lw=0)


def _kri_segment(query, x_j, length: float) -> np.ndarray:
    n = np.asarray(query) - np.asarray(x_j)
    t = np.array([-n[1], n[0]]) / max(np.hypot(*n), 1e-300)
    return np.stack([x_j - length * t, x_j + length * t])


def draw_neighbourhood(
    ax,
    X,
    y,
    nb: study.Neighbourhood,
    kri: bool = False,
    zoom: float = 2.2,
    title: str | None = None,
    half_width: float | None = None,
) -> None:
    """Draw the data, the query (star), its kNN ball (dashed circle; only meaningful when the
    neighbours were chosen in this plane) and the NNK neighbours (edges ∝ weight).

    With ``kri``: every selected neighbour's KRI line, the NNK polytope they bound (shaded), and
    the discarded candidates — crosses when outside the polytope, open circles when inside.
    The view is a square of half-width ``half_width`` (default ``zoom`` × the ball's radius).
    """
    q, r = nb.query, nb.radius
    half = zoom * r if half_width is None else half_width
    view = (q[0] - half, q[0] + half, q[1] - half, q[1] + half)
    _scatter_data(ax, X, y)
    kept, P = nb.kept, nb.points
    if kri:
        poly = study.nnk_region(nb, view)
        if len(poly):
            ax.add_patch(Polygon(poly, closed=True, fc="gold", ec="none", alpha=0.25, zorder=1))
        segs = [_kri_segment(q, x, 4 * half) for x in P[kept]]
        ax.add_collection(LineCollection(segs, colors="darkgoldenrod", lw=1.0, zorder=2))
        outside = study.discarded_outside(nb)
        D = P[~kept]
        ax.scatter(*D[outside].T, marker="x", c="grey", s=30, zorder=3, label="discarded, outside")
        if (~outside).any():
            ax.scatter(
                *D[~outside].T,
                marker="o",
                facecolors="none",
                edgecolors="crimson",
                s=60,
                lw=1.2,
                zorder=3,
                label="discarded, inside",
            )
    else:
        ax.add_patch(Circle(q, r, fill=False, ls="--", ec="k", lw=1.0, zorder=2))
        ax.scatter(
            *P[~kept].T,
            marker="o",
            facecolors="none",
            edgecolors="k",
            s=30,
            zorder=3,
            label="kNN only",
        )
    w = nb.weights[kept]
    segs = [np.stack([q, x]) for x in P[kept]]
    ax.add_collection(LineCollection(segs, colors="k", lw=0.5 + 5 * w, zorder=4))
    colours = [CLASS_COLOURS[c % len(CLASS_COLOURS)] for c in nb.labels[kept]]
    ax.scatter(*P[kept].T, c=colours, s=70, edgecolors="k", zorder=5, label="NNK neighbour")
    ax.scatter(*q, marker="*", c="k", s=220, zorder=6, label="query")
    ax.set_xlim(view[:2])
    ax.set_ylim(view[2:])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)


def neighbourhood_panels(data: dict, nbs: dict, kri: bool = False):
    """One panel per data set (``data[name]`` a :class:`~deepnnk.studies.nnk_geometry.Split`,
    ``nbs[name]`` its query's :class:`~deepnnk.studies.nnk_geometry.Neighbourhood`). Returns the
    figure."""
    style.use()
    w = style.BOOK_WIDTH
    fig, axes = plt.subplots(1, len(data), figsize=(w, w / len(data) + 0.4), squeeze=False)
    for ax, name in zip(axes[0], data, strict=True):
        d, nb = data[name], nbs[name]
        k, m = len(nb.weights), int(nb.kept.sum())
        if kri:
            title = f"{name}: KRI lines, polytope\n({m} of {k} kept)"
        else:
            title = f"{name}: kNN ball (k={k})\nvs {m} NNK neighbours"
        draw_neighbourhood(ax, d.X_train, d.y_train, nb, kri=kri, title=title)
    fig.tight_layout()
    style.legend_outside(fig, "below")
    return fig


# --------------------------------------------------------------------------- fields and curves


def draw_field(ax, xx, yy, P, X, y, title: str) -> None:
    """A probability field in [0, 1] with its 0.5 contour and the training data on top."""
    ax.pcolormesh(xx, yy, P, cmap="RdBu_r", vmin=0, vmax=1, shading="auto", rasterized=True)
    ax.contour(xx, yy, P, levels=[0.5], colors="k", linewidths=1.2)
    for c in np.unique(y):
        ax.scatter(
            *X[y == c].T,
            s=9,
            c=CLASS_COLOURS[c % len(CLASS_COLOURS)],
            edgecolors="w",
            linewidths=0.3,
        )
    ax.set_title(title, fontsize=10)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def field_panels(fields: dict, split: study.Split):
    """One P(class 1) field per classifier (``fields[title] = (xx, yy, P)``, from
    :func:`deepnnk.studies.nnk_geometry.proba_fields`), side by side, with ``split``'s training
    data and a shared colour bar. Returns the figure."""
    style.use()
    fig, axes = plt.subplots(1, len(fields), figsize=(style.BOOK_WIDTH, 2.6), squeeze=False)
    for ax, (title, (xx, yy, P)) in zip(axes[0], fields.items(), strict=True):
        draw_field(ax, xx, yy, P, split.X_train, split.y_train, f"{title}: P(class 1)")
    fig.colorbar(axes[0, 0].collections[0], ax=axes[0].tolist(), shrink=0.8)
    return fig


def loo_figure(loo: dict):
    """LOO error against k, NNK vs kNN, one panel per data set (``loo[name]`` from
    :func:`deepnnk.studies.nnk_geometry.loo_curve`), with NNK's mean number of selected
    neighbours on a second axis."""
    style.use()
    fig, axes = plt.subplots(1, len(loo), figsize=style.figsize(1), squeeze=False)
    nnk_c, knn_c = style.METHOD_COLOURS["NNK"], style.METHOD_COLOURS["kNN"]
    for ax, (name, c) in zip(axes[0], loo.items(), strict=True):
        ax.plot(c["k"], c["nnk"], "o-", c=nnk_c, label="NNK: LOO error")
        ax.plot(c["k"], c["knn"], "s--", c=knn_c, label="kernel kNN: LOO error")
        ax.set_xscale("log")
        ax.set_xticks(c["k"], [str(k) for k in c["k"]])
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xlabel("k (candidates)")
        ax.set_ylabel("leave-one-out error")
        ax.set_title(name, fontsize=10)
        ax2 = ax.twinx()
        ax2.plot(c["k"], c["nnk_selected"], ":", c=nnk_c, label="NNK: neighbours used")
        ax2.plot(c["k"], c["k"], ":", c=knn_c, label="kNN: neighbours used (= k)")
        ax2.set_yscale("log")
        ax2.set_yticks(c["k"], [str(k) for k in c["k"]])
        ax2.yaxis.set_minor_formatter(plt.NullFormatter())
        ax2.set_ylabel("neighbours used (dotted)")
        ax2.spines["right"].set_visible(True)
    fig.tight_layout()
    handles, labels = [], []
    for a in (axes[0, 0], fig.axes[-1]):
        h, lab = a.get_legend_handles_labels()
        handles, labels = handles + h, labels + lab
    fig.legend(
        handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False
    )
    return fig


# --------------------------------------------------------------------------- the network


def draw_regions(ax, regions: list[Region], boundary=None, seed: int = 0, alpha: float = 0.55):
    """The network's linear regions (random pastel colours, thin edges) and, if given, its
    decision boundary (``[S, 2, 2]`` segments, black)."""
    rng = np.random.default_rng(seed)
    colours = 0.55 + 0.45 * rng.random((len(regions), 3))
    ax.add_collection(
        PolyCollection(
            [r.vertices for r in regions],
            facecolors=colours,
            edgecolors=(0.3, 0.3, 0.3, 0.5),
            linewidths=0.3,
            alpha=alpha,
            zorder=0,
            rasterized=True,
        )
    )
    if boundary is not None and len(boundary):
        ax.add_collection(LineCollection(boundary, colors="k", linewidths=2.0, zorder=3))


def draw_polytopes(ax, polys, colour, edges: bool = True, fill: bool = True) -> None:
    """Polygons (a list of ``[m, 2]``) in one colour: filled and/or outlined."""
    polys = [p for p in polys if len(p) >= 3]
    if polys:
        rgb = plt.matplotlib.colors.to_rgb(colour)
        ax.add_collection(
            PolyCollection(
                polys,
                facecolors=(*rgb, (0.45 if edges else 0.6) if fill else 0.0),
                edgecolors=(*rgb, 1.0) if edges else "none",
                linewidths=1.6,
                zorder=4,
                rasterized=len(polys) > 50,
            )
        )


def region_panel(
    ax, regions, boundary, split: study.Split, bounds, probes: list[dict], space: str, title: str
) -> None:
    """Regions + decision boundary + training data, with each probe's NNK polytope chosen in
    ``space`` ("input" or "feature"): star = query, rings = its NNK neighbours. Probes carry
    their colour under ``"colour"``."""
    draw_regions(ax, regions, boundary)
    _scatter_data(ax, split.X_train, split.y_train, alpha=0.5, s=6)
    for p in probes:
        nbrs, polys = p[space]
        draw_polytopes(ax, polys, p["colour"], edges=space == "input")
        ax.scatter(*nbrs.T, s=45, facecolors="none", edgecolors=p["colour"], lw=1.5, zorder=5)
        ax.scatter(*p["query"], marker="*", s=200, c=p["colour"], edgecolors="k", zorder=6)
    ax.set_xlim(bounds[:2])
    ax.set_ylim(bounds[2:])
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=10)


def polytope_figure(regions, boundary, split: study.Split, bounds, probes: list[dict]):
    """The network's regions and decision boundary with NNK polytopes: first panel, every probe's
    polytope in the input plane; then one panel per probe with its NNK polytope on the last
    hidden layer, pulled back to the plane (the input polytope outlined for comparison)."""
    n = len(probes) + 1
    rows = (n + 1) // 2
    style.use()
    fig, axes = plt.subplots(rows, 2, figsize=(style.BOOK_WIDTH, 3.0 * rows), squeeze=False)
    probes = [{**p, "colour": c} for p, c in zip(probes, PROBE_COLOURS, strict=False)]
    region_panel(
        axes[0, 0],
        regions,
        boundary,
        split,
        bounds,
        probes,
        "input",
        f"{len(regions)} linear regions, boundary;\nNNK polytopes in the input",
    )
    for ax, p in zip(axes.flat[1:], probes, strict=False):
        qx, qy = p["query"]
        region_panel(
            ax,
            regions,
            boundary,
            split,
            bounds,
            [p],
            "feature",
            f"query ({qx:.2f}, {qy:.2f}): NNK on features,\n"
            f"pulled back ({p['feature_selected']} nbrs, {p['feature_pieces']} pieces)",
        )
        draw_polytopes(ax, p["input"][1], "k", fill=False)
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def agreement_figure(xx, yy, net_labels, nnk_labels, split: study.Split, hist: dict):
    """Left: the network's labels on the grid, with the cells where NNK-on-features disagrees in
    black. Right: regions, LOO-NNK error, test error and disagreement over the snapshots."""
    style.use()
    fig, axes = plt.subplots(1, 2, figsize=(style.BOOK_WIDTH, 3.4))
    ax = axes[0]
    ax.pcolormesh(
        xx,
        yy,
        net_labels.reshape(xx.shape),
        cmap="RdBu_r",
        vmin=-0.5,
        vmax=1.5,
        alpha=0.35,
        shading="auto",
        rasterized=True,
    )
    dis = (net_labels != nnk_labels).reshape(xx.shape)
    ax.pcolormesh(
        xx,
        yy,
        np.ma.masked_where(~dis, dis),
        cmap="Greys",
        vmin=0,
        vmax=1,
        shading="auto",
        rasterized=True,
    )
    _scatter_data(ax, split.X_train, split.y_train, alpha=0.7, s=6)
    ax.set_aspect("equal")
    ax.set_title(
        f"network labels; black: NNK on\nfeatures disagrees ({dis.mean():.1%})", fontsize=10
    )
    ax = axes[1]
    e = np.asarray(hist["epoch"])
    ax.plot(e, hist["loo_nnk_features"], "o-", c="tab:red", label="LOO-NNK error (features)")
    ax.plot(e, hist["test_error"], "s-", c="k", label="network test error")
    ax.plot(
        e,
        1 - np.asarray(hist["agreement_nnk_features"]),
        "^--",
        c="tab:purple",
        label="NNK vs network disagreement",
    )
    ax.set_xscale("symlog", linthresh=1)
    ticks = epoch_ticks(e)
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.set_xlabel("epoch")
    ax.set_ylabel("error / disagreement")
    ax2 = ax.twinx()
    ax2.plot(e, hist["n_regions"], "d:", c="tab:green", label="linear regions (right axis)")
    ax2.set_ylabel("linear regions", color="tab:green")
    ax2.spines["right"].set_visible(True)
    style.integer_ticks(ax2, "y")
    fig.tight_layout()
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    fig.legend(
        h1 + h2, l1 + l2, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False
    )
    return fig


def epoch_ticks(epochs) -> list[int]:
    """Integer ticks for a symlog epoch axis: 0, the powers of ten below the last epoch, and the
    last epoch itself (a power of ten closer than 40% to it on the log scale is left out)."""
    last = int(max(epochs))
    ticks = [0] + [10**i for i in range(len(str(last))) if 10**i < last]
    ticks = [t for t in ticks if t == 0 or np.log10(last / t) > 0.4 or t == 1]
    return sorted(set(ticks + [last]))


# --------------------------------------------------------------------------- k and the query


def k_sweep_figure(split: study.Split, sweep: dict):
    """The KRI polytope of one query for several k (``sweep[k]`` a neighbourhood, from
    :func:`deepnnk.studies.nnk_geometry.k_sweep`), one panel each, in one view. Returns the
    figure."""
    style.use()
    n = len(sweep)
    fig, axes = plt.subplots(
        1, n, figsize=(style.BOOK_WIDTH, style.BOOK_WIDTH / n + 0.5), squeeze=False
    )
    half = 1.3 * max(nb.radius for nb in sweep.values())  # one view for all panels
    for ax, (kk, nb) in zip(axes[0], sweep.items(), strict=True):
        draw_neighbourhood(
            ax,
            split.X_train,
            split.y_train,
            nb,
            kri=True,
            half_width=half,
            title=f"k={kk}: {int(nb.kept.sum())} kept",
        )
    fig.tight_layout()
    style.legend_outside(fig, "below")
    return fig


# --------------------------------------------------------------------------- the cosine kernel


def draw_rays(ax, nb: study.Neighbourhood, title: str, half_width: float) -> None:
    """A cosine-kernel neighbourhood (``nb`` from a ``kernel="cosine"`` classifier): the query and
    its candidates, and the line from the origin through each NNK neighbour — the cosine kernel's
    KRI boundary in the plane — with the wedge between them shaded, when there are two."""
    q = nb.query
    view = (q[0] - half_width, q[0] + half_width, q[1] - half_width, q[1] + half_width)
    far = 4 * float(np.hypot(*q))
    rays = [np.stack([np.zeros(2), x / np.hypot(*x) * far]) for x in nb.points[nb.kept]]
    if len(rays) == 2:
        ax.add_patch(
            Polygon([[0, 0], rays[0][1], rays[1][1]], fc="gold", ec="none", alpha=0.25, zorder=1)
        )
    ax.add_collection(
        LineCollection(rays, colors="darkgoldenrod", lw=1.0, zorder=2, label="cosine KRI line")
    )
    ax.plot(*np.stack([np.zeros(2), q / np.hypot(*q) * far]).T, ls="--", c="k", lw=0.6, zorder=2)
    D = nb.points[~nb.kept]
    ax.scatter(*D.T, marker="x", c="grey", s=30, zorder=3, label="discarded, outside")
    w = nb.weights[nb.kept]
    segs = [np.stack([q, x]) for x in nb.points[nb.kept]]
    ax.add_collection(LineCollection(segs, colors="k", lw=0.5 + 5 * w, zorder=4))
    colours = [CLASS_COLOURS[c % len(CLASS_COLOURS)] for c in nb.labels[nb.kept]]
    ax.scatter(*nb.points[nb.kept].T, c=colours, s=70, edgecolors="k", zorder=5)
    ax.scatter(*q, marker="*", c="k", s=220, zorder=6)
    ax.set_xlim(view[:2])
    ax.set_ylim(view[2:])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)


def cosine_bridge_figure(split: study.Split, gauss: study.Neighbourhood, cos: study.Neighbourhood):
    """One query of the moved moons (``split``, from :func:`deepnnk.studies.nnk_geometry.shifted`)
    under both kernels, same candidates: left, the Gaussian kernel's KRI lines and polytope;
    right, the cosine kernel's boundaries, lines through the origin (dashed: the query's own
    direction). Returns the figure."""
    style.use()
    fig, axes = plt.subplots(1, 2, figsize=(style.BOOK_WIDTH, style.BOOK_WIDTH / 2 + 0.4))
    half = 1.3 * gauss.radius
    m_g, m_c = int(gauss.kept.sum()), int(cos.kept.sum())
    draw_neighbourhood(
        axes[0],
        split.X_train,
        split.y_train,
        gauss,
        kri=True,
        half_width=half,
        title=f"Gaussian kernel: KRI lines\n({m_g} of {len(gauss.weights)} kept)",
    )
    _scatter_data(axes[1], split.X_train, split.y_train)
    draw_rays(
        axes[1], cos, f"cosine kernel: lines through 0\n({m_c} of {len(cos.weights)} kept)", half
    )
    fig.tight_layout()
    style.legend_outside(fig, "below")
    return fig


def show_source(func) -> str:
    """Show the source of ``func`` as a Python code block (in a notebook; the text is returned
    too), so a function the notebook relies on can be read where it is used."""
    import inspect

    text = f"```python\n{inspect.getsource(func).rstrip()}\n```"
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:
        return text
    if get_ipython() is not None:
        display(Markdown(text))
    return text


def widgets_available() -> bool:
    """True in a live Jupyter kernel whose matplotlib backend can show figures in widget output
    (inline or ipympl), with ipywidgets installed. False under a plain interpreter and under
    ``MPLBACKEND=Agg`` (how the tests run the notebook with papermill)."""
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    if ip is None or not hasattr(ip, "kernel"):
        return False
    backend = plt.get_backend().lower()
    return "inline" in backend or "widget" in backend or "ipympl" in backend


def neighbourhood_explorer(data: dict, queries: dict, k: int, k_max: int = 40):
    """An ipywidgets box: pick a data set, k and the query position; redraws the kNN-vs-NNK and
    KRI-polytope panels (sections 1–2 of the notebook) for that choice."""
    try:
        import ipywidgets as w
    except ImportError as e:
        raise ImportError(
            "the neighbourhood explorer needs ipywidgets: pip install 'deepnnk[notebooks]'"
        ) from e

    name = w.Dropdown(options=list(data), description="data")
    ks = w.IntSlider(value=k, min=2, max=k_max, description="k")
    q0 = queries[name.value]
    lo = np.min([d.X_train.min(0) for d in data.values()], axis=0)
    hi = np.max([d.X_train.max(0) for d in data.values()], axis=0)
    qx = w.FloatSlider(value=q0[0], min=lo[0], max=hi[0], step=0.05, description="query x")
    qy = w.FloatSlider(value=q0[1], min=lo[1], max=hi[1], step=0.05, description="query y")

    def draw(name, k, qx, qy):
        d = data[name]
        nb = study.fit_neighbourhood(d, k, (qx, qy))
        fig, axes = plt.subplots(1, 2, figsize=(10, 5))
        draw_neighbourhood(axes[0], d.X_train, d.y_train, nb, title=f"kNN ball vs NNK (k={k})")
        draw_neighbourhood(axes[1], d.X_train, d.y_train, nb, kri=True, title="KRI polytope")
        plt.show()
        plt.close(fig)

    out = w.interactive_output(draw, {"name": name, "k": ks, "qx": qx, "qy": qy})
    return w.VBox([w.HBox([name, ks]), w.HBox([qx, qy]), out])
