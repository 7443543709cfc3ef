"""A radial distribution function that does not depend on the choice of unit cell.

Definition
----------
For a periodic set with motif points ``i`` of occupancy ``w_i`` (1 for an ordered site)::

    rdf[b] = (1 / sum_i w_i) * sum_i sum_{j, t} w_i w_j K_b(|x_j + t - x_i|)

where the inner sum runs over every other point of the infinite crystal (all motif points
``j`` and lattice translations ``t``, the point itself excluded) and ``K_b(d)`` is the
mass of a Gaussian of standard deviation ``smearing`` centred at ``d`` that falls into bin
``b = [b * bin_width, (b + 1) * bin_width)``. The Gaussian is truncated at 4 sigma and
renormalised (as for :func:`~aiida_crystinv.invariants.grid`), so each neighbour adds
exactly its weight to the bins it touches.

So ``rdf`` is the *average number of neighbours per atom* in each bin (``sum(rdf[:b])`` is
the mean coordination number within ``b * bin_width``, smoothed). It is a per-atom
average, so a supercell, any other unit cell, rotation, origin shift or atom order of the
same crystal gives the same array (unlike the per-cell histograms of some packages, which
scale with the cell size). With ``normalise="density"`` every bin is divided by the
number of neighbours an ideal gas of the same density would put there,
``rho * 4/3 pi (r_{b+1}^3 - r_b^3)`` with ``rho = sum_i w_i / V``: the conventional
``g(r)``, tending to 1 at large ``r``.

Mass of the Gaussians beyond the last bin edge ``ceil(cutoff / bin_width) * bin_width``
is not counted (neighbours are searched up to that edge plus 4 sigma, so every bin is
complete). The profile is continuous in the atomic positions and the lattice (for
``smearing > 0``).

Partial RDFs (``partial=True``): the same sum split by the elements of the two points,
weighting a pair by ``x_iA * x_jB`` where ``x_iA`` is the occupancy of element ``A`` on
site ``i``. Keys are unordered element pairs ``(A, B)`` with ``Z(A) <= Z(B)``, in that
order; for ``A != B`` the value holds both orders (``A`` around ``B`` and ``B`` around
``A``), so the partials add up exactly to the total RDF.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._crystal import MIN_SEPARATION, InvalidStructureError, as_crystal
from ._kernels import translations_kernel, wrapped_offsets
from ._lattice import reduce_crystal
from .grid import (
    DEFAULT_SMEARING,
    GAUSSIAN_TRUNCATION,
    GridParameterError,
    _check_params,
    _smeared_cdf,
    _trunc_norm,
)

__all__ = ["rdf", "rdf_bins", "rdf_pairs"]

_NORMALISE = ("counts", "density")


def rdf_bins(bin_width: float = 0.05, cutoff: float = 10.0) -> np.ndarray:
    """Bin centres of :func:`rdf`: (n_bins,) array ``(b + 0.5) * bin_width``, Angstrom."""
    from .grid import grid_bins

    return grid_bins(bin_width, cutoff)


@njit(cache=True)
def _rdf_kernel(cell, frac, tvec, tlen, radius, site_w, X, pair_index, n_pairs, n_bins, bw, sigma, trunc, norm):
    """Smeared, weighted neighbour counts of every motif point: (n_pairs, n_bins).

    Every point ``x_j + t`` with ``0 < |x_j + t - x_i| <= radius`` is visited: with the
    offset ``o`` wrapped into the cell around ``x_i``, only translations with
    ``|t| <= radius + |o|`` can qualify, and ``tvec`` is sorted by length (it must cover
    ``radius + max |o|``). ``X`` (m, n_el) holds the element occupancies per site; element
    pair (a, c) goes to row ``pair_index[a, c]``. With ``n_pairs == 1`` a neighbour pair
    has weight ``site_w[i] * site_w[j]``.

    Returns (counts, min_distance).
    """
    m = frac.shape[0]
    out = np.zeros((n_pairs, n_bins))
    kern = np.empty(n_bins)
    half = trunc * sigma
    n_el = X.shape[1]
    dmin = np.inf
    off = np.empty((m, 3))
    for i in range(m):
        wrapped_offsets(cell, frac, i, off)
        for j in range(m):
            o0 = off[j, 0]
            o1 = off[j, 1]
            o2 = off[j, 2]
            reach = radius + math.sqrt(o0 * o0 + o1 * o1 + o2 * o2)
            for t in range(tvec.shape[0]):
                if tlen[t] > reach:
                    break
                v0 = o0 + tvec[t, 0]
                v1 = o1 + tvec[t, 1]
                v2 = o2 + tvec[t, 2]
                dist = math.sqrt(v0 * v0 + v1 * v1 + v2 * v2)
                if dist > radius or (i == j and t == 0):
                    continue
                if dist < dmin:
                    dmin = dist
                b0 = int(math.floor((dist - half) / bw))
                b1 = int(math.floor((dist + half) / bw)) + 1
                if b0 < 0:
                    b0 = 0
                if b1 > n_bins:
                    b1 = n_bins
                if b0 >= b1:
                    continue
                prev = _smeared_cdf(b0 * bw - dist, sigma, trunc, norm)
                for b in range(b0, b1):
                    cur = _smeared_cdf((b + 1) * bw - dist, sigma, trunc, norm)
                    kern[b] = cur - prev
                    prev = cur
                if n_pairs == 1:
                    w = site_w[i] * site_w[j]
                    for b in range(b0, b1):
                        out[0, b] += w * kern[b]
                else:
                    for a in range(n_el):
                        xa = X[i, a]
                        if xa == 0.0:
                            continue
                        for c in range(n_el):
                            xc = X[j, c]
                            if xc == 0.0:
                                continue
                            r = pair_index[a, c]
                            w = xa * xc
                            for b in range(b0, b1):
                                out[r, b] += w * kern[b]
    return out, dmin


def rdf_pairs(structure, label: str | None = None) -> list[tuple[str, str]]:
    """The keys of ``rdf(structure, partial=True)``: element pairs ordered by atomic number."""
    crystal = as_crystal(structure, label=label, check_overlap=False)
    return _pairs(_elements(crystal))


def _elements(crystal) -> list[str]:
    from pymatgen.core.periodic_table import Element

    els = {el for site in crystal.species for el, _ in site}
    return sorted(els, key=lambda e: (Element(e).Z, e))


def _pairs(elements: list[str]) -> list[tuple[str, str]]:
    return [(a, b) for n, a in enumerate(elements) for b in elements[n:]]


def rdf(
    structure,
    cutoff: float = 10.0,
    bin_width: float = 0.05,
    smearing: float = DEFAULT_SMEARING,
    partial: bool = False,
    normalise: str = "counts",
    label: str | None = None,
):
    """Cell-invariant, Gaussian-smeared radial distribution function.

    Args:
        structure: a pymatgen ``Structure``, ``(cell, frac_coords, species)`` tuple or
            :class:`~aiida_crystinv.invariants.Crystal`.
        cutoff: the bins cover ``[0, ceil(cutoff / bin_width) * bin_width)``, Angstrom
            (default 10).
        bin_width: bin width, Angstrom (default 0.05).
        smearing: Gaussian standard deviation, Angstrom (default 0.1; truncated at 4
            sigma; 0 gives an unsmeared, discontinuous histogram).
        partial: return element-pair partial RDFs instead of the total.
        normalise: ``"counts"`` (default): mean number of neighbours per atom in each bin;
            ``"density"``: divided by the ideal-gas count, the conventional ``g(r)``.
        label: name for error messages.

    Returns:
        ``partial=False``: (n_bins,) float array (bin centres from :func:`rdf_bins`).
        ``partial=True``: dict ``{(A, B): (n_bins,) array}`` with keys ordered by atomic
        number (``Z(A) <= Z(B)``); the values add up to the total RDF.

    Raises:
        ValueError: a parameter out of range (the message names it) or an invalid
            structure (:class:`~aiida_crystinv.invariants.InvalidStructureError`).
    """
    bw, _, sigma, n_bins = _check_params(bin_width, cutoff, smearing)
    if normalise not in _NORMALISE:
        raise GridParameterError(f"normalise must be one of {_NORMALISE}, got {normalise!r}")
    crystal = as_crystal(structure, label=label, check_overlap=False)
    cell, frac = reduce_crystal(crystal.cell, crystal.frac)
    radius = n_bins * bw + GAUSSIAN_TRUNCATION * sigma
    # a wrapped offset (fractional in [-1/2, 1/2)^3) is at most half a body diagonal long
    reach = radius + 0.5 * max(np.linalg.norm(v) for v in (
        cell[0] + cell[1] + cell[2], cell[0] + cell[1] - cell[2],
        cell[0] - cell[1] + cell[2], -cell[0] + cell[1] + cell[2]))
    tvec, tlen = translations_kernel(np.ascontiguousarray(cell), float(reach))
    occ = crystal.occupancy
    total_w = float(occ.sum())
    if partial:
        elements = _elements(crystal)
        index = {e: n for n, e in enumerate(elements)}
        X = np.zeros((crystal.n_sites, len(elements)))
        for s, site in enumerate(crystal.species):
            for el, o in site:
                X[s, index[el]] += o
        pairs = _pairs(elements)
        pair_index = np.zeros((len(elements), len(elements)), dtype=np.int64)
        for r, (a, b) in enumerate(pairs):
            pair_index[index[a], index[b]] = r
            pair_index[index[b], index[a]] = r
        n_rows = len(pairs)
        if n_rows == 1:  # one element: the total, weighted by that element's occupancies
            occ = X[:, 0].copy()
    else:
        X = np.zeros((crystal.n_sites, 1))
        pair_index = np.zeros((1, 1), dtype=np.int64)
        n_rows = 1
    counts, dmin = _rdf_kernel(
        np.ascontiguousarray(cell),
        np.ascontiguousarray(frac),
        tvec,
        tlen,
        radius,
        np.ascontiguousarray(occ, dtype=float),
        X,
        pair_index,
        n_rows,
        n_bins,
        bw,
        sigma,
        GAUSSIAN_TRUNCATION,
        _trunc_norm(GAUSSIAN_TRUNCATION),
    )
    if dmin < MIN_SEPARATION:
        raise InvalidStructureError(
            f"{crystal.label}: two points of the crystal are {dmin:.3g} A apart (overlapping "
            f"atoms, or a lattice vector shorter than {MIN_SEPARATION} A)"
        )
    counts /= total_w
    if normalise == "density":
        edges = np.arange(n_bins + 1) * bw
        rho = total_w / crystal.volume
        counts /= rho * (4.0 / 3.0) * math.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    if partial:
        return {pair: counts[r] for r, pair in enumerate(pairs)}
    return counts[0]
