"""Distances between binned radial profiles (GRID, RDF) and composition embeddings.

GRID and RDF distances are *exact* 1-D Wasserstein (Earth mover's) distances of the
binned representation: bin ``b`` is a point mass at its centre ``(b + 0.5) * bin_width``,
so for two distributions ``p, q`` on the same bins with cumulative sums ``P, Q``::

    W1(p, q) = bin_width * sum_{b < n_bins - 1} |P_b - Q_b|        (Angstrom)

which equals ``scipy.stats.wasserstein_distance(centres, centres, p, q)`` and the
integral of ``|CDF_p - CDF_q| dr``. Every profile is normalised to total mass 1 first
(each GRID shell separately), as ``gridrdf`` does.

Speed (the matrix functions): a normalised cumulative profile is exactly 0 below and
exactly 1 above a window (GRID shells are Gaussians truncated at 4 sigma, so a window
is a few tenths of an Angstrom to a few Angstrom wide). Each profile is stored once as
its window ``[lo, hi)`` plus prefix sums of ``|P|`` and ``|1 - P|`` on it; a pair of
shells then costs a loop over the *overlap* of the two windows only, and every other
part of the axis is a prefix-sum difference or a count of bins (where one CDF is 0 and
the other 1). Cumulative values within 1e-13 of 0 or 1 are snapped to 0 or 1, so results
equal the plain formula to about 1e-12 Angstrom.
"""

from __future__ import annotations

import math

import numpy as np
from numba import get_num_threads, njit, prange

__all__ = [
    "grid_emd",
    "rdf_emd",
    "composition_distance",
    "grid_emd_cdist",
    "rdf_emd_cdist",
    "ProfileBank",
    "prepare_profiles",
]

_SNAP = 1e-13
#: Below this many shell-pair comparisons (about 1 ms of work) a matrix is computed on
#: one thread: starting the threads would cost more than they save.
PARALLEL_MIN_WORK = 100_000


class ProfileShapeError(ValueError):
    """Profiles that cannot be compared (shapes, empty mass, bad bin width)."""


def _check_bin_width(bin_width) -> float:
    try:
        bw = float(bin_width)
    except (TypeError, ValueError):
        raise ProfileShapeError(f"bin_width must be a number, got {bin_width!r}") from None
    if not math.isfinite(bw) or bw <= 0:
        raise ProfileShapeError(f"bin_width must be a finite number > 0 (Angstrom), got {bin_width!r}")
    return bw


def _as_profiles(x, name: str, ndim: int) -> np.ndarray:
    """(n, shells, bins) float64 array from a stack (ndim+1) or a single profile (ndim)."""
    a = np.asarray(x, dtype=float)
    if a.ndim == ndim:
        a = a[None]
    if a.ndim != ndim + 1:
        raise ProfileShapeError(
            f"{name} must have {ndim} (one profile) or {ndim + 1} (a stack) dimensions, "
            f"got shape {a.shape}"
        )
    if a.shape[-1] < 1 or (ndim == 2 and a.shape[-2] < 1):
        raise ProfileShapeError(f"{name} has an empty axis: shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ProfileShapeError(f"{name} contains NaN or infinite values")
    if ndim == 1:
        a = a[:, None, :]
    return a


@njit(cache=True, inline="always")
def _snap(c, snap):
    if abs(c) <= snap:
        return 0.0
    if abs(c - 1.0) <= snap:
        return 1.0
    return c


@njit(cache=True)
def _scan_profile(a, i, snap, lo, hi, inv, k0s):
    """Windows of the normalised cumulative rows of profile ``i``.

    Row ``s`` has cumulative values ``C_k = f * sum_{b <= k} a[i, s, b]`` on the edges
    ``k < n_bins - 1``, ``f = 1 / total``, snapped to 0 / 1 within ``snap``; its window is
    ``[first k with C_k != 0, last k with C_k != 1] + 1``. Only the stretch between the
    first and last non-zero bin is summed (C is constant outside it); the total is the
    sum over that stretch. Returns the first row whose total is not a positive finite
    number, or -1.
    """
    shells, nbins = a.shape[1], a.shape[2]
    ne = nbins - 1
    buf = np.empty(nbins)
    bad = -1
    for s in range(shells):
        row = a[i, s]
        # row[k] == 0 outside [k0, k1] (NaN and inf count as non-zero)
        k0 = 0
        while k0 < nbins - 1 and row[k0] == 0.0:
            k0 += 1
        k1 = nbins - 1
        while k1 > k0 and row[k1] == 0.0:
            k1 -= 1
        acc = 0.0
        for k in range(k0, k1 + 1):
            acc += row[k]
            buf[k] = acc
        tot = acc
        if not (tot > 0.0 and tot < np.inf):
            if bad < 0:
                bad = s
            tot = 1.0
        f = 1.0 / tot
        inv[i, s] = f
        kend = min(k1, ne - 1)  # C_k is constant (C_kend) for k > kend
        k0s[i, s] = k0
        for k in range(k0, kend + 1):
            buf[k] *= f
        first = ne
        for k in range(k0, kend + 1):
            if abs(buf[k]) > snap:
                first = k
                break
        last = first - 1
        if kend >= k0 and kend < ne - 1 and abs(buf[kend] - 1.0) > snap:
            last = ne - 1  # constant tail that is not 1 (mass cancels; not for histograms)
        else:
            for k in range(kend, first - 1, -1):
                if abs(buf[k] - 1.0) > snap:
                    last = k
                    break
        # all 0: [ne, ne); all 1: [0, 0); otherwise [first, last + 1)
        lo[i, s] = first
        hi[i, s] = last + 1
    return bad


@njit(cache=True)
def _fill_profile(a, i, snap, lo, hi, inv, k0s, start, pstart, vals, pabs, pone):
    """Window values of profile ``i`` and prefix sums of |P| and |1 - P| over them."""
    for s in range(a.shape[1]):
        f = inv[i, s]
        low = lo[i, s]
        h = hi[i, s]
        acc = 0.0
        for k in range(k0s[i, s], low):  # the same additions as in _scan_profile
            acc += a[i, s, k]
        st = start[i, s]
        ps = pstart[i, s]
        x = 0.0
        y = 0.0
        for k in range(low, h):
            acc += a[i, s, k]
            v = _snap(acc * f, snap)
            vals[st + k - low] = v
            x += abs(v)
            y += abs(1.0 - v)
            pabs[ps + k - low + 1] = x
            pone[ps + k - low + 1] = y


@njit(cache=True)
def _scan_serial(a, snap, lo, hi, inv, k0s, bad):
    for i in range(a.shape[0]):
        bad[i] = _scan_profile(a, i, snap, lo, hi, inv, k0s)


@njit(cache=True, parallel=True)
def _scan_parallel(a, snap, lo, hi, inv, k0s, bad):
    for i in prange(a.shape[0]):
        bad[i] = _scan_profile(a, i, snap, lo, hi, inv, k0s)


@njit(cache=True)
def _fill_serial(a, snap, lo, hi, inv, k0s, start, pstart, vals, pabs, pone):
    for i in range(a.shape[0]):
        _fill_profile(a, i, snap, lo, hi, inv, k0s, start, pstart, vals, pabs, pone)


@njit(cache=True, parallel=True)
def _fill_parallel(a, snap, lo, hi, inv, k0s, start, pstart, vals, pabs, pone):
    for i in prange(a.shape[0]):
        _fill_profile(a, i, snap, lo, hi, inv, k0s, start, pstart, vals, pabs, pone)


def _use_threads(work: float) -> bool:
    """Threads only pay off (and only survive a busy machine) for large jobs."""
    return work >= PARALLEL_MIN_WORK and get_num_threads() > 1


class ProfileBank:
    """Windowed cumulative profiles of a stack of GRIDs (or RDFs), ready for pair distances.

    Attributes:
        n: number of profiles; shells: rows per profile; n_edges: bins - 1.
        lo, hi: (n, shells) int64 window ``[lo, hi)`` of each normalised cumulative row
            (exactly 0 before ``lo``, exactly 1 from ``hi`` on).
        start, pstart: (n, shells) int64 offsets of each window in ``vals`` and in the
            prefix arrays (which have one extra leading 0 per window).
        vals, pabs, pone: flat float64 arrays: window values, prefix sums of ``|P|`` and
            of ``|1 - P|``.
    """

    def __init__(self, profiles: np.ndarray, name: str = "profiles") -> None:
        a = np.ascontiguousarray(profiles, dtype=np.float64)
        n, shells, nbins = a.shape
        lo = np.empty((n, shells), dtype=np.int64)
        hi = np.empty((n, shells), dtype=np.int64)
        inv = np.empty((n, shells))
        k0s = np.empty((n, shells), dtype=np.int64)
        badrow = np.empty(n, dtype=np.int64)
        parallel = _use_threads(a.size / 50.0)
        (_scan_parallel if parallel else _scan_serial)(a, _SNAP, lo, hi, inv, k0s, badrow)
        if np.any(badrow >= 0):
            first = int(np.argmax(badrow >= 0))
            where = (first, int(badrow[first]))
            total = float(a[where[0], where[1]].sum())
            raise ProfileShapeError(
                f"{name}: profile {where[0]} (shell {where[1]}) has total mass {total:g}; every "
                "profile (every GRID shell) needs a positive total to be compared (for an RDF: "
                "is the cutoff shorter than the nearest-neighbour distance?)"
            )
        length = (hi - lo).ravel()
        start = np.zeros(n * shells, dtype=np.int64)
        np.cumsum(length[:-1], out=start[1:])
        pstart = (start + np.arange(n * shells, dtype=np.int64)).reshape(n, shells)
        start = start.reshape(n, shells)
        total = int(length.sum())
        vals = np.empty(total)
        pabs = np.zeros(total + n * shells)
        pone = np.zeros(total + n * shells)
        (_fill_parallel if parallel else _fill_serial)(a, _SNAP, lo, hi, inv, k0s, start, pstart, vals, pabs, pone)
        self.n, self.shells, self.n_edges = n, shells, nbins - 1
        self.lo, self.hi, self.start, self.pstart = lo, hi, start, pstart
        self.vals, self.pabs, self.pone = vals, pabs, pone


def prepare_profiles(profiles, name: str = "profiles", ndim: int = 2) -> ProfileBank:
    """Validate a stack of GRIDs ((n, shells, bins); ndim=2) or RDFs ((n, bins); ndim=1)."""
    return ProfileBank(_as_profiles(profiles, name, ndim), name)


@njit(cache=True, fastmath=True)
def _row_pairs(i, j0, nb, lo_a, hi_a, st_a, ps_a, v_a, pa_a, po_a, lo_b, hi_b, st_b, ps_b, v_b, pa_b, po_b, scale, out):
    """out[i, j] for j in [j0, nb): mean over shells of sum_k |A_k - B_k|, times bin width.

    Branch-free apart from the overlap loop: with window lengths ``wa, wb`` the parts of
    A's window where B is still 0 / already 1 are the prefixes / suffixes of lengths
    ``clip(lb - la, 0, wa)`` / ``wa - clip(hb - la, 0, wa)``, and likewise for B. One flat
    loop nest on purpose: a helper call per shell pair costs more than its arithmetic.
    """
    shells = lo_a.shape[1]
    for j in range(j0, nb):
        total = 0.0
        for s in range(shells):
            la = lo_a[i, s]
            ha = hi_a[i, s]
            lb = lo_b[j, s]
            hb = hi_b[j, s]
            wa = ha - la
            wb = hb - lb
            psa = ps_a[i, s]
            psb = ps_b[j, s]
            # A's window where B == 0, where B == 1; B's window where A == 0, where A == 1
            total += pa_a[psa + min(max(lb - la, 0), wa)]
            total += po_a[psa + wa] - po_a[psa + min(max(hb - la, 0), wa)]
            total += pa_b[psb + min(max(la - lb, 0), wb)]
            total += po_b[psb + wb] - po_b[psb + min(max(ha - lb, 0), wb)]
            # between two disjoint windows |A - B| == 1
            total += max(lb - ha, 0) + max(la - hb, 0)
            # overlap of the windows: explicit sum
            p = max(la, lb)
            m = min(ha, hb) - p
            oa = st_a[i, s] + p - la
            ob = st_b[j, s] + p - lb
            for t in range(m):
                total += abs(v_a[oa + t] - v_b[ob + t])
        out[i, j] = total * scale


@njit(cache=True)
def _mirror(out):
    for i in range(out.shape[0]):
        out[i, i] = 0.0
        for j in range(i + 1, out.shape[1]):
            out[j, i] = out[i, j]


@njit(cache=True)
def _cdist_serial(lo_a, hi_a, st_a, ps_a, v_a, pa_a, po_a, lo_b, hi_b, st_b, ps_b, v_b, pa_b, po_b, bw, symmetric, out):
    scale = bw / lo_a.shape[1]
    nb = lo_b.shape[0]
    for i in range(lo_a.shape[0]):
        _row_pairs(i, i + 1 if symmetric else 0, nb, lo_a, hi_a, st_a, ps_a, v_a, pa_a, po_a,
                   lo_b, hi_b, st_b, ps_b, v_b, pa_b, po_b, scale, out)
    if symmetric:
        _mirror(out)
    return out


@njit(cache=True, parallel=True)
def _cdist_parallel(lo_a, hi_a, st_a, ps_a, v_a, pa_a, po_a, lo_b, hi_b, st_b, ps_b, v_b, pa_b, po_b, bw, symmetric, out):
    na = lo_a.shape[0]
    nb = lo_b.shape[0]
    scale = bw / lo_a.shape[1]
    if symmetric:
        # rows h and na-1-h together: equal work per parallel iteration
        for h in prange((na + 1) // 2):
            _row_pairs(h, h + 1, nb, lo_a, hi_a, st_a, ps_a, v_a, pa_a, po_a,
                       lo_b, hi_b, st_b, ps_b, v_b, pa_b, po_b, scale, out)
            g = na - 1 - h
            if g != h:
                _row_pairs(g, g + 1, nb, lo_a, hi_a, st_a, ps_a, v_a, pa_a, po_a,
                           lo_b, hi_b, st_b, ps_b, v_b, pa_b, po_b, scale, out)
        _mirror(out)
    else:
        for i in prange(na):
            _row_pairs(i, 0, nb, lo_a, hi_a, st_a, ps_a, v_a, pa_a, po_a,
                       lo_b, hi_b, st_b, ps_b, v_b, pa_b, po_b, scale, out)
    return out


def _bank_cdist(A: ProfileBank, B: ProfileBank | None, bw: float, out: np.ndarray | None) -> np.ndarray:
    symmetric = B is None
    if B is None:
        B = A
    if A.shells != B.shells or A.n_edges != B.n_edges:
        raise ProfileShapeError(
            f"profiles have different shapes: ({A.shells}, {A.n_edges + 1}) and "
            f"({B.shells}, {B.n_edges + 1}) (shells, bins); compute both with the same "
            "n_shells, bin_width and cutoff"
        )
    shape = (A.n, B.n)
    if out is None:
        out = np.empty(shape)
    elif out.shape != shape or out.dtype != np.float64 or not out.flags.c_contiguous:
        raise ProfileShapeError(f"out must be a C-contiguous float64 array of shape {shape}")
    pairs = A.n * B.n / (2.0 if symmetric else 1.0)
    kernel = _cdist_parallel if _use_threads(pairs * A.shells) else _cdist_serial
    return kernel(
        A.lo, A.hi, A.start, A.pstart, A.vals, A.pabs, A.pone,
        B.lo, B.hi, B.start, B.pstart, B.vals, B.pabs, B.pone,
        bw, symmetric, out,
    )


def _bank(x, name: str, ndim: int) -> ProfileBank:
    return x if isinstance(x, ProfileBank) else prepare_profiles(x, name, ndim)


def grid_emd_cdist(A, B=None, bin_width: float = 0.1, out: np.ndarray | None = None) -> np.ndarray:
    """GRID EMD between every GRID of ``A`` and every GRID of ``B`` (threads for large jobs).

    Args:
        A: (na, n_shells, n_bins) stack of GRIDs (or a :class:`ProfileBank` from
            :func:`prepare_profiles`, to reuse the preprocessing).
        B: (nb, n_shells, n_bins) stack, or ``None`` for ``A`` against itself (only the
            upper triangle is computed; the result is symmetric with a zero diagonal).
        bin_width: bin width of the GRIDs, Angstrom (default 0.1).
        out: optional C-contiguous float64 (na, nb) array to write into.

    Returns:
        (na, nb) float64 array, Angstrom; same values as :func:`grid_emd` on each pair.
    """
    bw = _check_bin_width(bin_width)
    a = _bank(A, "A", 2)
    b = None if B is None else _bank(B, "B", 2)
    return _bank_cdist(a, b, bw, out)


def rdf_emd_cdist(A, B=None, bin_width: float = 0.05, out: np.ndarray | None = None) -> np.ndarray:
    """RDF EMD between every RDF of ``A`` (na, n_bins) and of ``B`` (nb, n_bins): (na, nb).

    ``B=None`` compares ``A`` with itself (symmetric, zero diagonal). Angstrom.
    """
    bw = _check_bin_width(bin_width)
    a = _bank(A, "A", 1)
    b = None if B is None else _bank(B, "B", 1)
    return _bank_cdist(a, b, bw, out)


def _pair(x1, x2, ndim: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(x1, dtype=float)
    b = np.asarray(x2, dtype=float)
    if a.ndim != ndim or b.ndim != ndim:
        raise ProfileShapeError(
            f"{what} must be {ndim}-dimensional ({'(n_shells, n_bins)' if ndim == 2 else '(n_bins,)'}), "
            f"got shapes {a.shape} and {b.shape}"
        )
    if a.shape != b.shape:
        raise ProfileShapeError(
            f"cannot compare {what}s of shapes {a.shape} and {b.shape}; compute both with the "
            "same parameters (n_shells, bin_width, cutoff)"
        )
    return a, b


def grid_emd(g1, g2, bin_width: float = 0.1) -> float:
    """Exact GRID Earth mover's distance, Angstrom.

    The 1-D Wasserstein distance between corresponding shells (each normalised to mass 1,
    bin masses at bin centres), averaged over the shells.

    Args:
        g1, g2: (n_shells, n_bins) GRIDs of the same shape (from :func:`~aiida_crystinv.invariants.grid`).
        bin_width: their bin width, Angstrom (default 0.1).

    Raises:
        ValueError: different shapes, a non-positive bin width, or a shell with no mass.
    """
    a, b = _pair(g1, g2, 2, "GRID")
    return float(grid_emd_cdist(a[None], b[None], bin_width)[0, 0])


def rdf_emd(r1, r2, bin_width: float = 0.05) -> float:
    """Exact 1-D Wasserstein distance between two RDFs, Angstrom.

    Each RDF is first normalised to total mass 1 (so this compares the *shape* of the
    neighbour-count profile over ``[0, cutoff]``, not the density); bin masses sit at
    the bin centres.

    Args:
        r1, r2: (n_bins,) RDFs of the same shape (from :func:`~aiida_crystinv.invariants.rdf`).
        bin_width: their bin width, Angstrom (default 0.05).
    """
    a, b = _pair(r1, r2, 1, "RDF")
    return float(rdf_emd_cdist(a[None], b[None], bin_width)[0, 0])


def composition_distance(c1, c2, weights=None) -> float:
    """L1 distance between two composition embeddings (optionally feature-weighted).

    Args:
        c1, c2: (n_features,) vectors from :func:`~aiida_crystinv.invariants.composition`
            computed with the same properties and statistics.
        weights: optional (n_features,) non-negative weights (e.g. 1 / feature spread over a
            dataset, since raw features have different units and scales).

    Returns:
        ``sum(weights * |c1 - c2|)`` (unit weights by default).
    """
    a, b = _pair(c1, c2, 1, "composition embedding")
    d = np.abs(a - b)
    if weights is not None:
        w = np.asarray(weights, dtype=float)
        if w.shape != d.shape or np.any(w < 0) or not np.all(np.isfinite(w)):
            raise ProfileShapeError(
                f"weights must be {d.shape[0]} finite non-negative numbers, got shape {w.shape}"
            )
        d = d * w
    return float(d.sum())
