"""The compiled (numba) kernel behind ``amd``, ``pdd``, ``grid`` and ``neighbour_distances``:
distances only (no neighbour indices), input checks fused in, one call per structure.
Its exactness argument is in the comment below."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._kernels import lll_kernel

# ----------------------------------------------------------------------------- AMD / PDD kernel
#
# The kernel behind amd(), pdd() and neighbour_distances(): distances only (no neighbour
# indices), input checks fused in, one call per structure. For one threshold ``tau`` shared
# by all rows it collects, for every row i, every point of the periodic set within ``tau``
# of point i: for each motif point j, the lattice points t with |o_ij + t| <= tau are
# enumerated exactly, line by line in a frame where the reduced cell is triangular
# (:func:`_ball_points`), so no lattice point outside the ball costs more than its line.
# The multiset of distances from i to the translates of j equals the one from j to the
# translates of i, so each unordered pair is visited once and feeds both rows; the pair
# (i, i) is the lattice itself and the same for every row. If a row collected at least
# k + 1 candidates (the point itself, at distance exactly 0, is one of them), its k + 1
# smallest are exact; a row with fewer is redone alone with a larger ``tau``
# (:func:`_row_alone`), so the result never depends on the first guess of ``tau``.

#: status codes of :func:`neighbour_kernel` (the caller turns them into messages)
STATUS_OK = 0
STATUS_CELL_NOT_FINITE = 1
STATUS_COORDS_NOT_FINITE = 2
STATUS_DEGENERATE_CELL = 3


@njit(cache=True)
def _det3(a):
    return (a[0, 0] * (a[1, 1] * a[2, 2] - a[1, 2] * a[2, 1])
            - a[0, 1] * (a[1, 0] * a[2, 2] - a[1, 2] * a[2, 0])
            + a[0, 2] * (a[1, 0] * a[2, 1] - a[1, 1] * a[2, 0]))


@njit(cache=True)
def _adjugate3(a):
    """Adjugate of a 3x3 matrix (its inverse times its determinant)."""
    r = np.empty((3, 3))
    r[0, 0] = a[1, 1] * a[2, 2] - a[1, 2] * a[2, 1]
    r[0, 1] = a[0, 2] * a[2, 1] - a[0, 1] * a[2, 2]
    r[0, 2] = a[0, 1] * a[1, 2] - a[0, 2] * a[1, 1]
    r[1, 0] = a[1, 2] * a[2, 0] - a[1, 0] * a[2, 2]
    r[1, 1] = a[0, 0] * a[2, 2] - a[0, 2] * a[2, 0]
    r[1, 2] = a[0, 2] * a[1, 0] - a[0, 0] * a[1, 2]
    r[2, 0] = a[1, 0] * a[2, 1] - a[1, 1] * a[2, 0]
    r[2, 1] = a[0, 1] * a[2, 0] - a[0, 0] * a[2, 1]
    r[2, 2] = a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]
    return r


@njit(cache=True)
def _smallest_sorted(buf, n, kk, vmax, out, counts):
    """Write the ``kk`` smallest of ``buf[:n]`` (values in [0, vmax]) ascending to ``out[:kk]``.

    A bucket sort (n equal-width buckets) followed by an insertion sort of the buckets up to
    the one holding position kk - 1: exact for any input, linear time for the near-uniform
    squared distances it gets. ``out`` and ``counts`` are scratch of length >= n and n + 1.
    """
    nb = n
    for b in range(nb + 1):
        counts[b] = 0
    scale = nb / vmax if vmax > 0.0 else 0.0
    for c in range(n):
        b = int(buf[c] * scale)
        if b >= nb:
            b = nb - 1
        counts[b + 1] += 1
    for b in range(nb):
        counts[b + 1] += counts[b]
    for c in range(n):
        b = int(buf[c] * scale)
        if b >= nb:
            b = nb - 1
        out[counts[b]] = buf[c]
        counts[b] += 1
    end = n
    for b in range(nb):  # counts[b] is now the end of bucket b
        if counts[b] >= kk:
            end = counts[b]
            break
    for i in range(1, end):
        x = out[i]
        j = i - 1
        while j >= 0 and out[j] > x:
            out[j + 1] = out[j]
            j -= 1
        out[j + 1] = x


@njit(cache=True)
def _wrapped_offset(f, cell, i, j):
    """Cartesian offset from motif point i to motif point j, wrapped into the cell."""
    f0 = f[j, 0] - f[i, 0]
    f1 = f[j, 1] - f[i, 1]
    f2 = f[j, 2] - f[i, 2]
    f0 -= math.floor(f0 + 0.5)
    f1 -= math.floor(f1 + 0.5)
    f2 -= math.floor(f2 + 0.5)
    return (f0 * cell[0, 0] + f1 * cell[1, 0] + f2 * cell[2, 0],
            f0 * cell[0, 1] + f1 * cell[1, 1] + f2 * cell[2, 1],
            f0 * cell[0, 2] + f1 * cell[1, 2] + f2 * cell[2, 2])


@njit(cache=True)
def _frame(cell):
    """The cell in an orthonormal frame where it is triangular: (6,) a1 a2 a3 b1 b2 c1 and
    the frame (3, 3) rows e1 e2 e3; ``c`` is the shortest cell vector (the innermost loop
    of :func:`_ball_points`), ``b`` the next."""
    n = np.empty(3)
    for a in range(3):
        n[a] = cell[a, 0] ** 2 + cell[a, 1] ** 2 + cell[a, 2] ** 2
    ic = 0
    for a in range(3):
        if n[a] < n[ic]:
            ic = a
    ib = (ic + 1) % 3
    ia = (ic + 2) % 3
    if n[ia] < n[ib]:
        ib, ia = ia, ib
    e = np.empty((3, 3))
    lc = math.sqrt(n[ic])
    for c in range(3):
        e[0, c] = cell[ic, c] / lc
    bc = cell[ib, 0] * e[0, 0] + cell[ib, 1] * e[0, 1] + cell[ib, 2] * e[0, 2]
    for c in range(3):
        e[1, c] = cell[ib, c] - bc * e[0, c]
    lb = math.sqrt(e[1, 0] ** 2 + e[1, 1] ** 2 + e[1, 2] ** 2)
    for c in range(3):
        e[1, c] /= lb
    e[2, 0] = e[0, 1] * e[1, 2] - e[0, 2] * e[1, 1]
    e[2, 1] = e[0, 2] * e[1, 0] - e[0, 0] * e[1, 2]
    e[2, 2] = e[0, 0] * e[1, 1] - e[0, 1] * e[1, 0]
    co = np.empty(6)
    for c in range(3):
        co[c] = cell[ia, 0] * e[c, 0] + cell[ia, 1] * e[c, 1] + cell[ia, 2] * e[c, 2]
    co[3] = bc
    co[4] = lb
    co[5] = lc
    return co, e


@njit(cache=True)
def _ball_points(o1, o2, o3, co, tau, buf, cnt, r, q, cap):
    """Append |o + t|^2 for every lattice vector t with |o + t| <= tau to row r (and q >= 0).

    ``o`` is given in the frame of :func:`_frame` (coefficients ``co``); the lattice points
    in the ball are enumerated line by line (x, then y, then an interval of z), so the work
    is about the number of points found plus the number of lines crossing the ball.
    """
    a1, a2, a3, b1, b2, c1 = co[0], co[1], co[2], co[3], co[4], co[5]
    tau2 = tau * tau
    eps = 1e-9 * (tau + 1.0)
    x0 = (-tau - o3) / a3
    x1 = (tau - o3) / a3
    if x0 > x1:
        x0, x1 = x1, x0
    for x in range(int(math.ceil(x0 - eps)), int(math.floor(x1 + eps)) + 1):
        p3 = o3 + x * a3
        rem3 = tau2 - p3 * p3
        if rem3 < 0.0:
            continue
        s3 = math.sqrt(rem3)
        u2 = o2 + x * a2
        u1 = o1 + x * a1
        for y in range(int(math.ceil((-s3 - u2) / b2 - eps)), int(math.floor((s3 - u2) / b2 + eps)) + 1):
            p2 = u2 + y * b2
            rem2 = rem3 - p2 * p2
            if rem2 < 0.0:
                continue
            s2 = math.sqrt(rem2)
            w1 = u1 + y * b1
            h = p2 * p2 + p3 * p3
            for z in range(int(math.ceil((-s2 - w1) / c1 - eps)), int(math.floor((s2 - w1) / c1 + eps)) + 1):
                p1 = w1 + z * c1
                d2s = p1 * p1 + h
                if d2s <= tau2:
                    c = cnt[r]
                    if c < cap:
                        buf[r, c] = d2s
                    cnt[r] = c + 1
                    if q >= 0:
                        c = cnt[q]
                        if c < cap:
                            buf[q, c] = d2s
                        cnt[q] = c + 1


@njit(cache=True)
def _row_alone(cell, f, co, e, i, k, tau, out_row):
    """Distances from motif point i to its k nearest neighbours, growing ``tau`` as needed."""
    m = f.shape[0]
    cap = 4 * k + 64
    while True:
        buf = np.empty((1, cap))
        cnt = np.zeros(1, dtype=np.int64)
        for j in range(m):
            o0, o1, o2 = _wrapped_offset(f, cell, i, j)
            _ball_points(o0 * e[0, 0] + o1 * e[0, 1] + o2 * e[0, 2],
                         o0 * e[1, 0] + o1 * e[1, 1] + o2 * e[1, 2],
                         o0 * e[2, 0] + o1 * e[2, 1] + o2 * e[2, 2], co, tau, buf, cnt, 0, -1, cap)
        n = cnt[0]
        if n > cap:
            cap = n + 16
        elif n < k + 1:
            tau *= 1.25
        else:
            break
    out = np.empty(n)
    counts = np.empty(n + 1, dtype=np.int64)
    _smallest_sorted(buf[0], n, k + 1, tau * tau, out, counts)
    for c in range(k):
        out_row[c] = math.sqrt(out[c + 1])


@njit(cache=True)
def _prepare(cell, frac, k, min_volume_per_site):
    """Stage 1 of :func:`neighbour_kernel`: checks, LLL reduction, the motif in the reduced
    cell, the triangular frame and the first ``tau``.

    Returns ``(status, reduced, f, co, e, tau)`` (arrays are placeholders unless status is OK).
    """
    m = frac.shape[0]
    for a in range(3):
        for c in range(3):
            if not math.isfinite(cell[a, c]):
                return STATUS_CELL_NOT_FINITE, cell, frac, np.empty(6), cell, 0.0
    for i in range(m):
        for c in range(3):
            if not math.isfinite(frac[i, c]):
                return STATUS_COORDS_NOT_FINITE, cell, frac, np.empty(6), cell, 0.0
    vol = abs(_det3(cell))
    if not vol > min_volume_per_site * m:
        return STATUS_DEGENERATE_CELL, cell, frac, np.empty(6), cell, 0.0
    reduced, T = lll_kernel(cell, 0.75)
    Ti = _adjugate3(T)  # T is unimodular with det +1: its inverse is its adjugate
    f = np.empty((m, 3))
    for i in range(m):
        w0 = frac[i, 0] - math.floor(frac[i, 0])
        w1 = frac[i, 1] - math.floor(frac[i, 1])
        w2 = frac[i, 2] - math.floor(frac[i, 2])
        for c in range(3):
            v = w0 * Ti[0, c] + w1 * Ti[1, c] + w2 * Ti[2, c]
            v -= math.floor(v)
            f[i, c] = 0.0 if v >= 1.0 else v
    co, e = _frame(reduced)
    # tau: radius of a ball holding k + 1 points on average, with a margin that shrinks as
    # k grows (as the spread of the k-th distance over the rows does); a row short of k + 1
    # candidates is redone alone with a larger tau, so tau only sets the speed.
    tau = (3.0 * (k + 1) * vol / (4.0 * math.pi * m)) ** (1.0 / 3.0) * (1.0 + 0.3 / (k + 1) ** (1.0 / 3.0))
    return STATUS_OK, reduced, f, co, e, tau


@njit(cache=True)
def _collect(reduced, f, co, e, rows, k, tau):
    """Stage 2 of :func:`neighbour_kernel`: every squared distance <= tau^2 from each row.

    Returns ``(buf, cnt, cap)``: row r's candidates are ``buf[r, :cnt[r]]`` unless
    ``cnt[r] > cap`` (overflow: the row is redone alone).
    """
    m = f.shape[0]
    nr = rows.shape[0]
    pos = np.full(m, -1, dtype=np.int64)  # row of each motif point (-1: not a row)
    for r in range(nr):
        pos[rows[r]] = r
    cap = 2 * (k + 1) + 64
    buf = np.empty((nr, cap))
    cnt = np.zeros(nr, dtype=np.int64)
    _ball_points(0.0, 0.0, 0.0, co, tau, buf, cnt, 0, -1, cap)  # the lattice: the same for every row
    nl = cnt[0]
    if nl > cap:
        cap = nl + 2 * (k + 1)
        buf = np.empty((nr, cap))
        cnt[0] = 0
        _ball_points(0.0, 0.0, 0.0, co, tau, buf, cnt, 0, -1, cap)
    for r in range(1, nr):
        for c in range(nl):
            buf[r, c] = buf[0, c]
        cnt[r] = nl
    for r in range(nr):
        i = rows[r]
        for j in range(m):
            q = pos[j]
            if j == i or 0 <= q < r:
                continue  # the lattice, or a pair already visited from row q
            o0, o1, o2 = _wrapped_offset(f, reduced, i, j)
            _ball_points(o0 * e[0, 0] + o1 * e[0, 1] + o2 * e[0, 2],
                         o0 * e[1, 0] + o1 * e[1, 1] + o2 * e[1, 2],
                         o0 * e[2, 0] + o1 * e[2, 1] + o2 * e[2, 2], co, tau, buf, cnt, r, q, cap)
    return buf, cnt, cap


@njit(cache=True)
def _select(reduced, f, co, e, rows, k, tau, buf, cnt, cap, min_separation):
    """Stage 3 of :func:`neighbour_kernel`: the k smallest of each row, sorted, as distances.

    Returns ``(bad_row, dist)`` as :func:`neighbour_kernel`.
    """
    nr = rows.shape[0]
    dist = np.empty((nr, k))
    out = np.empty(cap)
    counts = np.empty(cap + 1, dtype=np.int64)
    bad_row = -1
    tau2 = tau * tau
    for r in range(nr):
        n = cnt[r]
        if n > cap or n < k + 1:
            _row_alone(reduced, f, co, e, rows[r], k, tau if n > cap else tau * 1.25, dist[r])
        else:
            _smallest_sorted(buf[r], n, k + 1, tau2, out, counts)
            for c in range(k):  # out[0] is the point itself (distance exactly 0)
                dist[r, c] = math.sqrt(out[c + 1])
        if bad_row < 0 and dist[r, 0] < min_separation:
            bad_row = r
    return bad_row, dist


@njit(cache=True)
def neighbour_kernel(cell, frac, rows, k, min_volume_per_site, min_separation):
    """Check, reduce, and find the k nearest neighbour distances of motif points ``rows``.

    Args:
        cell: (3, 3) lattice vectors as rows, Angstrom (any basis, either handedness).
        frac: (m, 3) fractional coordinates (any real values; wrapped here).
        rows: int64 indices of the motif points whose rows are wanted.
        k: number of neighbours.
        min_volume_per_site: a cell with |det| <= this * m is degenerate.
        min_separation: a row whose nearest neighbour is closer is reported.

    Returns:
        ``(status, bad_row, dist)``: ``status`` is one of the ``STATUS_*`` codes (``dist`` is
        empty unless it is ``STATUS_OK``); ``bad_row`` is the first row whose nearest
        neighbour is closer than ``min_separation`` (-1: none); ``dist`` (len(rows), k), each
        row ascending, Angstrom.
    """
    status, reduced, f, co, e, tau = _prepare(cell, frac, k, min_volume_per_site)
    if status != STATUS_OK:
        return status, -1, np.empty((0, k))
    buf, cnt, cap = _collect(reduced, f, co, e, rows, k, tau)
    bad_row, dist = _select(reduced, f, co, e, rows, k, tau, buf, cnt, cap, min_separation)
    return STATUS_OK, bad_row, dist
