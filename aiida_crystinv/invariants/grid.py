"""GRID: grouped representation of interatomic distances (Zhang, Seth and Cumby).

Definition
----------
For every motif point ``i`` of the periodic set take the sorted distances
``d_i1 <= d_i2 <= ...`` to its nearest neighbours in the whole (infinite) crystal. Shell
``s`` of the GRID is the distribution, over the motif points, of the ``s``-th neighbour
distance ``d_is``: each point contributes its weight ``w_i`` (``1/m`` for an ordered
structure of ``m`` points; occupancy over total occupancy for a disordered site, see
:mod:`aiida_crystinv.invariants._crystal`), smeared by a Gaussian and integrated over
histogram bins ``[b * bin_width, (b + 1) * bin_width)``.

Details that make the array exactly invariant and continuous:

* **Smearing kernel**: a Gaussian of standard deviation ``smearing`` (Angstrom, default
  0.1 A as in ``gridrdf``) truncated at ``+-GAUSSIAN_TRUNCATION`` (4) standard deviations,
  where ``scipy.ndimage.gaussian_filter`` (which ``gridrdf`` uses) also cuts it, and
  renormalised: every point's mass lies within 0.4 A of its distance (for the default).
  The bin masses are computed analytically from ``erf`` at the bin edges (no fine
  sampling or convolution, unlike ``gridrdf``). ``smearing=0`` gives a plain
  (discontinuous) histogram, bin for bin the one of ``gridrdf`` without smearing.
* **Mass outside [0, cutoff]**: the first bin also holds any mass below 0 and the *last
  bin holds all mass at or beyond its lower edge* (clipped, not dropped), so every shell
  sums to exactly 1 even when its distances exceed ``cutoff``, and the array stays
  continuous when a distance crosses the cutoff.
* **Bins**: ``n_bins = ceil(cutoff / bin_width)`` bins of width ``bin_width`` starting at
  0; :func:`grid_bins` gives their centres.

The neighbour distances come from the exact periodic k-nearest-neighbour search on the
LLL-reduced cell (:func:`~aiida_crystinv.invariants.neighbour_distances`), so the GRID is
identical for any unit cell, origin, rotation or atom order of the same crystal. Ties
between neighbours do not matter (only the sorted distances enter), and the GRID moves
continuously when atoms or the lattice move, also when two shells swap order.

Compared with ``gridrdf``: its neighbour weights also include the *neighbour's*
occupancy; here only the centre site is weighted (geometry ignores occupancy, the rule of
:mod:`aiida_crystinv.invariants._crystal`), which is the same for ordered structures.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._crystal import as_crystal
from ._pdd import neighbour_distances

__all__ = ["grid", "grid_bins", "GAUSSIAN_TRUNCATION", "DEFAULT_SMEARING"]

#: The smearing Gaussian is cut at this many standard deviations (and renormalised).
GAUSSIAN_TRUNCATION = 4.0
#: Default Gaussian standard deviation, Angstrom (the value used by gridrdf).
DEFAULT_SMEARING = 0.1
#: Refuse to build profiles with more bins than this (memory guard).
MAX_BINS = 1_000_000


class GridParameterError(ValueError):
    """A GRID/RDF parameter is out of range; the message names it."""


def _check_positive(name: str, value, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise GridParameterError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        need = ">= 0" if allow_zero else "> 0"
        raise GridParameterError(f"{name} must be a finite number {need} (Angstrom), got {value!r}")
    return v


def _n_bins(bin_width: float, cutoff: float) -> int:
    n = int(math.ceil(cutoff / bin_width - 1e-9))
    n = max(n, 1)
    if n > MAX_BINS:
        raise GridParameterError(
            f"cutoff / bin_width = {cutoff:g} / {bin_width:g} gives {n} bins (more than {MAX_BINS}); "
            "increase bin_width or decrease cutoff"
        )
    return n


def _check_params(bin_width, cutoff, smearing) -> tuple[float, float, float, int]:
    bw = _check_positive("bin_width", bin_width)
    cut = _check_positive("cutoff", cutoff)
    sig = _check_positive("smearing", smearing, allow_zero=True)
    return bw, cut, sig, _n_bins(bw, cut)


def grid_bins(bin_width: float = 0.1, cutoff: float = 10.0) -> np.ndarray:
    """Bin centres of :func:`grid` (and :func:`~aiida_crystinv.invariants.rdf`).

    Returns:
        (n_bins,) array ``(b + 0.5) * bin_width`` for ``b = 0 .. ceil(cutoff/bin_width) - 1``,
        Angstrom.
    """
    bw = _check_positive("bin_width", bin_width)
    cut = _check_positive("cutoff", cutoff)
    return (np.arange(_n_bins(bw, cut)) + 0.5) * bw


@njit(cache=True, inline="always")
def _smeared_cdf(x: float, sigma: float, trunc: float, norm: float) -> float:
    """CDF at ``x`` of a Gaussian(0, sigma) truncated at +-trunc*sigma; sigma == 0: step."""
    if sigma == 0.0:
        return 1.0 if x > 0.0 else 0.0
    z = x / sigma
    if z <= -trunc:
        return 0.0
    if z >= trunc:
        return 1.0
    return 0.5 * (math.erf(z * 0.7071067811865476) - math.erf(-trunc * 0.7071067811865476)) / norm


def _trunc_norm(trunc: float) -> float:
    return 0.5 * (math.erf(trunc / math.sqrt(2.0)) - math.erf(-trunc / math.sqrt(2.0)))


@njit(cache=True)
def _grid_kernel(weights, dists, n_shells, n_bins, bw, sigma, trunc, norm):
    """(n_shells, n_bins) GRID from row weights (r,) and sorted distances (r, >= n_shells)."""
    out = np.zeros((n_shells, n_bins))
    cdf = np.empty(n_bins + 1)
    step = np.empty(n_bins + 2)
    half = trunc * sigma
    total = 0.0
    for i in range(weights.shape[0]):
        total += weights[i]
    for s in range(n_shells):
        cdf[:] = 0.0
        step[:] = 0.0
        for i in range(weights.shape[0]):
            d = dists[i, s]
            w = weights[i]
            # edges k = 1 .. n_bins - 1 (edge 0 is -inf, edge n_bins is +inf: clipping)
            klo = int(math.floor((d - half) / bw))
            khi = int(math.ceil((d + half) / bw)) + 1
            if klo < 1:
                klo = 1
            if khi > n_bins:
                khi = n_bins
            # edges in [klo, khi) see part of the Gaussian, edges from khi on all of it;
            # klo >= khi only when the Gaussian starts beyond the last interior edge, and
            # then all of its mass is in the last bin (no edge sees any of it)
            for k in range(klo, khi):
                cdf[k] += w * _smeared_cdf(k * bw - d, sigma, trunc, norm)
            if klo < khi:
                step[khi] += w
        acc = 0.0
        for k in range(1, n_bins):
            acc += step[k]
            cdf[k] += acc
        cdf[0] = 0.0
        cdf[n_bins] = total
        for b in range(n_bins):
            v = (cdf[b + 1] - cdf[b]) / total
            out[s, b] = v if v > 0.0 else 0.0  # rounding can give -1e-17
    return out


def grid(
    structure,
    bin_width: float = 0.1,
    cutoff: float = 10.0,
    n_shells: int = 100,
    smearing: float = DEFAULT_SMEARING,
    label: str | None = None,
) -> np.ndarray:
    """GRID of a periodic crystal: per-neighbour-shell smeared distance histograms.

    Args:
        structure: a pymatgen ``Structure``, ``(cell, frac_coords, species)`` tuple or
            :class:`~aiida_crystinv.invariants.Crystal`.
        bin_width: histogram bin width, Angstrom (default 0.1).
        cutoff: the bins cover ``[0, ceil(cutoff/bin_width) * bin_width)``, Angstrom
            (default 10). Mass beyond the last bin edge is clipped into the last bin.
        n_shells: number of neighbour shells (default 100): shell ``s`` holds the
            ``s+1``-th nearest neighbour distance of every motif point.
        smearing: standard deviation of the Gaussian smearing, Angstrom (default 0.1;
            truncated at 4 sigma; 0 means an unsmeared histogram).
        label: name for error messages.

    Returns:
        (n_shells, n_bins) float array; every row is non-negative and sums to 1.

    Raises:
        ValueError: a parameter out of range (the message names it) or an invalid
            structure (:class:`~aiida_crystinv.invariants.InvalidStructureError`).
    """
    bw, _, sigma, n_bins = _check_params(bin_width, cutoff, smearing)
    if isinstance(n_shells, bool) or not isinstance(n_shells, (int, np.integer)) or n_shells < 1:
        raise GridParameterError(f"n_shells must be a positive integer, got {n_shells!r}")
    crystal = as_crystal(structure, label=label, check_overlap=False)
    weights, dists = neighbour_distances(crystal, int(n_shells))
    return _grid_kernel(
        np.ascontiguousarray(weights, dtype=float),
        np.ascontiguousarray(dists, dtype=float),
        int(n_shells),
        n_bins,
        bw,
        sigma,
        GAUSSIAN_TRUNCATION,
        _trunc_norm(GAUSSIAN_TRUNCATION),
    )
