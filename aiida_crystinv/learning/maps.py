"""Pictures of a set of crystals drawn from its invariants, as PNG (matplotlib's Agg canvas).

* :func:`heatmap_png` -- a distance matrix as a heatmap, rows and columns in the order of
  the leaves of a hierarchical clustering (``scipy.cluster.hierarchy``), with the
  dendrogram above it;
* :func:`map_png` -- a 2-D map of the set: metric multidimensional scaling
  (``sklearn.manifold.MDS`` on the precomputed distances, fixed ``random_state``) coloured
  by a target, with a colour bar and the target's unit;
* :func:`landscape_png` -- a target (an energy) against the mass density: the
  energy-density landscape of a crystal-structure-prediction set, the lowest points
  marked and named.

And the numbers behind them: :func:`check_distance_matrix`, :func:`cluster_order`,
:func:`mds_embedding` (with Kruskal's stress-1, how faithful the 2-D distances are),
:func:`mass_density` (g/cm^3 of a structure), :func:`lowest_indices`, :func:`sample_indices`,
:func:`condensed_submatrix` (a sample of a condensed matrix, read row segment by segment).

Every function draws on its own ``Figure`` (no global pyplot state, no display) and
returns the PNG bytes; ``path`` also writes them to a file. Too many points for a picture
(:data:`MAX_HEATMAP`, :data:`MAX_MAP`) raise a ``ValueError`` that says to sample.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

__all__ = [
    "MAX_HEATMAP",
    "MAX_MAP",
    "LINKAGE_METHODS",
    "check_distance_matrix",
    "cluster_order",
    "heatmap_png",
    "mds_embedding",
    "map_png",
    "mass_density",
    "lowest_indices",
    "landscape_png",
    "sample_indices",
    "condensed_submatrix",
]

#: Most records a heatmap is drawn for (a 2000 x 2000 matrix already has more cells than
#: the picture has pixels); sample a larger set.
MAX_HEATMAP = 2000
#: Most records a 2-D map is computed for (metric MDS costs O(n^2) per iteration).
MAX_MAP = 2000
#: Linkage methods of the clustering that orders the heatmap (those defined for any
#: dissimilarity; ``ward`` / ``centroid`` / ``median`` assume Euclidean distances).
LINKAGE_METHODS = ("average", "single", "complete", "weighted")
#: Avogadro's number (1/mol) and Angstrom^3 in cm^3, for g/cm^3 from amu / Angstrom^3.
_AVOGADRO = 6.02214076e23
_A3_TO_CM3 = 1e-24


def check_distance_matrix(D: Any, what: str = "the distance matrix", max_size: int | None = None) -> np.ndarray:
    """``D`` as a float (n, n) array after checking it is a distance matrix.

    Args:
        D: (n, n) distances, symmetric, zero diagonal (up to rounding: 1e-9 relative).
        what: how messages name the matrix.
        max_size: refuse more than this many rows (the message says to sample).

    Raises:
        ValueError: not square, fewer than 2 rows, NaN / infinite / negative entries,
            not symmetric, more rows than ``max_size``.
    """
    a = np.asarray(D, dtype=float)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"{what} must be square (n, n), got shape {a.shape}")
    n = a.shape[0]
    if n < 2:
        raise ValueError(f"{what} has {n} row(s): a picture needs at least 2 records")
    if max_size is not None and n > max_size:
        raise ValueError(f"{what} has {n} rows, more than the {max_size} a picture can show: sample at most {max_size} records")
    if not np.isfinite(a).all():
        raise ValueError(f"{what} has NaN or infinite entries")
    if (a < 0).any():
        raise ValueError(f"{what} has negative entries")
    scale = float(a.max()) or 1.0
    if not np.allclose(a, a.T, rtol=0.0, atol=1e-9 * scale):
        raise ValueError(f"{what} is not symmetric: pairwise distances within one set are needed")
    a = 0.5 * (a + a.T)
    np.fill_diagonal(a, 0.0)
    return a


def cluster_order(D: Any, method: str = "average") -> tuple[np.ndarray, np.ndarray]:
    """Hierarchical clustering of a distance matrix and the order of its leaves.

    Args:
        D: (n, n) distance matrix (see :func:`check_distance_matrix`).
        method: linkage, one of :data:`LINKAGE_METHODS` (``average`` = UPGMA).

    Returns:
        ``(order, Z)``: (n,) int permutation, the records left to right in the dendrogram
        (similar records next to each other), and the (n - 1, 4) linkage matrix of
        ``scipy.cluster.hierarchy.linkage`` with ``optimal_ordering=True``.
    """
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    if method not in LINKAGE_METHODS:
        raise ValueError(f"unknown linkage method {method!r}; use one of {', '.join(LINKAGE_METHODS)}")
    a = check_distance_matrix(D)
    Z = linkage(squareform(a, checks=False), method=method, optimal_ordering=len(a) <= 1000)
    return np.asarray(leaves_list(Z), dtype=np.int64), Z


def _png(fig: Any, path: str | Path | None, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    data = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _unit(unit: str) -> str:
    return f" ({unit})" if unit else ""


def heatmap_png(
    D: Any,
    labels: Sequence[str] | None = None,
    *,
    title: str = "",
    unit: str = "",
    method: str = "average",
    path: str | Path | None = None,
    dpi: int = 120,
) -> bytes:
    """A distance matrix as a heatmap ordered by hierarchical clustering, with its dendrogram.

    Args:
        D: (n, n) distances, 2 <= n <= :data:`MAX_HEATMAP` (sample larger sets).
        labels: (n,) record identifiers, written on the axes when n <= 40.
        title: the figure title; unit: the distances' unit (e.g. ``'Angstrom'``).
        method: the linkage of :func:`cluster_order`.
        path: also write the PNG there; dpi: its resolution.

    Returns:
        The PNG content (bytes).
    """
    a = check_distance_matrix(D, max_size=MAX_HEATMAP)
    if labels is not None and len(labels) != len(a):
        raise ValueError(f"{len(labels)} labels for a {len(a)} x {len(a)} matrix")
    order, Z = cluster_order(a, method)
    from scipy.cluster.hierarchy import dendrogram

    n = len(a)
    fig = _figure(7.0, 7.4)
    grid = fig.add_gridspec(2, 2, height_ratios=(1.2, 5.0), width_ratios=(20, 1), hspace=0.02, wspace=0.04,
                            left=0.14 if n <= 40 else 0.08, right=0.9, bottom=0.14 if n <= 40 else 0.08, top=0.93)
    top = fig.add_subplot(grid[0, 0])
    heat = fig.add_subplot(grid[1, 0])
    bar = fig.add_subplot(grid[1, 1])
    dendrogram(Z, ax=top, no_labels=True, color_threshold=0, above_threshold_color="0.2", link_color_func=None)
    top.set_xlim(0, 10 * n)
    top.set_xticks([])
    top.set_ylabel(f"{method} linkage{_unit(unit)}", fontsize=7)
    top.tick_params(labelsize=7)
    for side in ("top", "right", "bottom"):
        top.spines[side].set_visible(False)
    image = heat.imshow(a[np.ix_(order, order)], cmap="viridis", interpolation="nearest", aspect="auto",
                        extent=(0, n, n, 0))
    if labels is not None and n <= 40:
        names = [str(labels[i]) for i in order]
        ticks = np.arange(n) + 0.5
        heat.set_xticks(ticks, names, rotation=90, fontsize=6)
        heat.set_yticks(ticks, names, fontsize=6)
    else:
        heat.set_xlabel(f"{n} records, in dendrogram order", fontsize=8)
        heat.set_xticks([])
        heat.set_yticks([])
    colorbar = fig.colorbar(image, cax=bar)
    colorbar.set_label(f"distance{_unit(unit)}", fontsize=8)
    bar.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return _png(fig, path, dpi)


def mds_embedding(D: Any, random_state: int = 0, max_iter: int = 300) -> tuple[np.ndarray, float]:
    """2-D coordinates whose Euclidean distances approximate ``D`` (metric MDS).

    ``sklearn.manifold.MDS`` on the precomputed dissimilarities (SMACOF), initialised with
    classical MDS where scikit-learn offers it (1.8 and later), one run, seeded.

    Args:
        D: (n, n) distance matrix, 2 <= n <= :data:`MAX_MAP`.
        random_state: the seed (the same seed gives the same map).
        max_iter: SMACOF iterations.

    Returns:
        ``(X, stress)``: (n, 2) coordinates in the unit of ``D``, and Kruskal's stress-1
        ``sqrt(sum (d_ij - |x_i - x_j|)^2 / sum d_ij^2)`` over the pairs (0: exact; below
        0.1 a faithful map, above 0.2 a poor one).
    """
    import inspect

    from scipy.spatial.distance import pdist, squareform
    from sklearn.manifold import MDS

    a = check_distance_matrix(D, max_size=MAX_MAP)
    if float(a.max()) == 0.0:
        return np.zeros((len(a), 2)), 0.0
    parameters = inspect.signature(MDS).parameters
    if "metric_mds" in parameters:  # scikit-learn >= 1.8: `metric` names the dissimilarity
        mds = MDS(n_components=2, metric_mds=True, metric="precomputed", init="classical_mds", n_init=1,
                  max_iter=max_iter, random_state=random_state)
    else:  # pragma: no cover - scikit-learn < 1.8
        mds = MDS(n_components=2, dissimilarity="precomputed", n_init=1, max_iter=max_iter, random_state=random_state)
    X = np.asarray(mds.fit_transform(a), dtype=float)
    d = squareform(a, checks=False)
    stress = math.sqrt(float(((d - pdist(X)) ** 2).sum()) / float((d**2).sum()))
    return X, stress


def map_png(
    D: Any,
    values: Any,
    *,
    target: str = "",
    unit: str = "",
    distance_unit: str = "",
    labels: Sequence[str] | None = None,
    title: str = "",
    random_state: int = 0,
    path: str | Path | None = None,
    dpi: int = 120,
) -> bytes:
    """A 2-D map of a set (metric MDS of its distance matrix) coloured by a target.

    Args:
        D: (n, n) distances, 2 <= n <= :data:`MAX_MAP` (sample larger sets).
        values: (n,) target values in ``unit``; NaN values are drawn grey.
        target: the target's name; unit: its unit (colour bar label).
        distance_unit: the unit of ``D`` (axis labels: MDS coordinates are distances).
        labels: (n,) identifiers, written next to the points when n <= 30.
        title: figure title; random_state: the MDS seed; path / dpi: as :func:`heatmap_png`.

    Returns:
        The PNG content (bytes). The stress-1 of the embedding is printed in a corner.
    """
    y = np.asarray(values, dtype=float).ravel()
    a = check_distance_matrix(D, max_size=MAX_MAP)
    if y.shape != (len(a),):
        raise ValueError(f"{y.size} target values for a {len(a)} x {len(a)} distance matrix")
    if not np.isfinite(y).any():
        raise ValueError(f"the target {target or ''} has no finite value to colour by".replace("  ", " "))
    X, stress = mds_embedding(a, random_state=random_state)
    fig = _figure(6.2, 5.0)
    ax = fig.add_subplot(111)
    finite = np.isfinite(y)
    if (~finite).any():
        ax.scatter(X[~finite, 0], X[~finite, 1], s=14, c="0.75", linewidths=0, label="no value")
        ax.legend(fontsize=7, loc="lower right")
    points = ax.scatter(X[finite, 0], X[finite, 1], c=y[finite], cmap="viridis", s=18 if len(a) <= 500 else 8,
                        linewidths=0.2, edgecolors="0.3")
    colorbar = fig.colorbar(points, ax=ax)
    colorbar.set_label(f"{target or 'target'}{_unit(unit)}", fontsize=8)
    colorbar.ax.tick_params(labelsize=7)
    if labels is not None and len(a) <= 30:
        for i, name in enumerate(labels):
            ax.annotate(str(name), X[i], fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(f"MDS 1{_unit(distance_unit)}", fontsize=8)
    ax.set_ylabel(f"MDS 2{_unit(distance_unit)}", fontsize=8)
    ax.set_aspect("equal", adjustable="datalim")
    ax.tick_params(labelsize=7)
    ax.text(0.02, 0.98, f"n = {len(a)}, stress-1 {stress:.3f}", transform=ax.transAxes, va="top", fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _png(fig, path, dpi)


def mass_density(structure: Any) -> float:
    """Mass density of a crystal in g/cm^3: the occupancy-weighted atomic masses of the
    motif over the cell volume.

    Args:
        structure: a pymatgen ``Structure`` (ordered or disordered) or anything
            :func:`aiida_crystinv.invariants.as_crystal` accepts.
    """
    from ..invariants import as_crystal
    from ..invariants.elements import element_property

    crystal = as_crystal(structure, check_overlap=False)
    mass = sum(o * element_property(el, "atomic_mass") for site in crystal.species for el, o in site)
    return float(mass / _AVOGADRO / (crystal.volume * _A3_TO_CM3))


def lowest_indices(values: Any, n: int) -> np.ndarray:
    """Positions of the ``n`` smallest finite values, smallest first (ties: first position)."""
    y = np.asarray(values, dtype=float).ravel()
    finite = np.flatnonzero(np.isfinite(y))
    order = finite[np.argsort(y[finite], kind="stable")]
    return order[: max(0, int(n))]


def landscape_png(
    density: Any,
    values: Any,
    *,
    target: str = "energy",
    unit: str = "",
    labels: Sequence[str] | None = None,
    n_lowest: int = 5,
    title: str = "",
    path: str | Path | None = None,
    dpi: int = 120,
) -> bytes:
    """A target against mass density (the energy-density landscape of a CSP set), with the
    ``n_lowest`` lowest points marked (and named when ``labels`` are given).

    Args:
        density: (n,) mass densities, g/cm^3 (:func:`mass_density`).
        values: (n,) target values in ``unit`` (NaN values are left out).
        target / unit: the y-axis label; labels: (n,) identifiers.
        n_lowest: how many of the lowest points to mark (0: none).
        title / path / dpi: as :func:`heatmap_png`.

    Returns:
        The PNG content (bytes).
    """
    x = np.asarray(density, dtype=float).ravel()
    y = np.asarray(values, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"{x.size} densities but {y.size} target values")
    if labels is not None and len(labels) != y.size:
        raise ValueError(f"{len(labels)} labels for {y.size} points")
    keep = np.isfinite(x) & np.isfinite(y)
    if not keep.any():
        raise ValueError("no point has both a finite density and a finite target value")
    low = lowest_indices(np.where(keep, y, np.nan), n_lowest)
    named = labels is not None and len(low) > 0
    fig = _figure(8.0 if named else 6.0, 4.6)
    ax = fig.add_subplot(111)
    ax.scatter(x[keep], y[keep], s=10 if keep.sum() <= 2000 else 4, alpha=0.6, linewidths=0, color="tab:blue",
               label=f"{int(keep.sum())} structures")
    if len(low):
        ax.scatter(x[low], y[low], s=60, marker="*", color="tab:red", edgecolors="k", linewidths=0.4, zorder=3,
                   label=f"lowest {len(low)}")
        for rank, i in enumerate(low, start=1):
            ax.annotate(str(rank), (x[i], y[i]), fontsize=7, xytext=(4, 2), textcoords="offset points")
    if named:  # the names beside the axes, where they cannot hide points
        names = "\n".join(f"{rank}  {str(labels[i])[:28]}" for rank, i in enumerate(low[:25], start=1))
        fig.text(0.745, 0.9, f"lowest {len(low)}\n{names}", va="top", ha="left", fontsize=6.5, family="monospace")
    ax.set_xlabel("density (g/cm$^3$)", fontsize=8)
    ax.set_ylabel(f"{target}{_unit(unit)}", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper right")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.73, 1) if named else None)
    return _png(fig, path, dpi)


def condensed_submatrix(read: Callable[[int, int], np.ndarray], n: int, rows: Sequence[int]) -> np.ndarray:
    """The (m, m) matrix of the records ``rows`` of a condensed distance vector of ``n``
    records (``scipy``'s ``pdist`` order), read segment by segment.

    Args:
        read: ``read(start, stop)`` returns the entries ``start:stop`` of the condensed
            vector (e.g. from a file, without loading the rest).
        n: number of records of the full matrix.
        rows: m sorted, distinct positions in ``range(n)``.

    Only the segments of the rows asked for are read: ``m`` reads of at most ``n - 1``
    entries each, so a sample of a matrix too large for memory can be drawn.
    """
    idx = np.asarray(rows, dtype=np.int64)
    if idx.ndim != 1 or (np.diff(idx) <= 0).any() or (len(idx) and (idx[0] < 0 or idx[-1] >= n)):
        raise ValueError(f"rows must be sorted, distinct positions in range({n})")
    m = len(idx)
    out = np.zeros((m, m))
    for a in range(m - 1):
        i = int(idx[a])
        start = n * i - i * (i + 1) // 2  # the pair (i, i + 1)
        segment = np.asarray(read(start, start + n - i - 1))  # the pairs (i, i+1 .. n-1)
        values = segment[idx[a + 1 :] - i - 1]
        out[a, a + 1 :] = values
        out[a + 1 :, a] = values
    return out


def sample_indices(n: int, size: int, seed: int = 0) -> np.ndarray:
    """``size`` distinct positions of ``range(n)`` drawn with ``numpy``'s seeded generator,
    sorted (all of them when ``size >= n``)."""
    if size >= n:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=int(size), replace=False)).astype(np.int64)
