"""Compiled (numba) kernels of the periodic neighbour search.

Two searches exist. :func:`~._neighbour_kernel.neighbour_kernel` (in
:mod:`._neighbour_kernel`) is the one behind ``amd``, ``pdd``, ``grid`` and
``neighbour_distances``: distances only, input checks fused in, one call per structure;
its exactness argument is in that module. :func:`knn_core`, here, also returns the motif
index of every neighbour (for ``knn_distances``, ``min_pair_distance`` and the site
features of ``learning``); the lattice reduction, translations and the collapse of equal
PDD rows are here too.

Exactness argument of :func:`knn_kernel`: for motif point ``i`` and any motif point ``j``
the candidate distance is ``|o_ij + t| >= |t| - R_i`` where ``o_ij`` is the offset wrapped
into the cell and ``R_i = max_j |o_ij|``. So all candidates within a threshold ``tau`` come
from translations with ``|t| <= tau + R_i``; those are visited (sorted by length) and every
candidate within ``tau`` is kept. If at least k were kept, the k smallest of them are the k
nearest neighbours; otherwise ``tau`` grows and the row is redone. Translations are
generated for all ``|t| <= radius``; a row that needs more makes the caller regenerate them.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def _gram_schmidt(b):
    bs = np.zeros((3, 3))
    mu = np.zeros((3, 3))
    for i in range(3):
        for c in range(3):
            bs[i, c] = b[i, c]
        for j in range(i):
            num = 0.0
            den = 0.0
            for c in range(3):
                num += b[i, c] * bs[j, c]
                den += bs[j, c] * bs[j, c]
            mu[i, j] = num / den
            for c in range(3):
                bs[i, c] -= mu[i, j] * bs[j, c]
    return bs, mu


@njit(cache=True)
def lll_kernel(cell, delta=0.75):
    """LLL reduction of a 3x3 row basis: returns (reduced, T) with reduced = T @ cell."""
    b = cell.copy()
    T = np.eye(3)
    bs, mu = _gram_schmidt(b)
    k = 1
    it = 0
    while k < 3 and it < 10000:
        it += 1
        for j in range(k - 1, -1, -1):
            q = np.round(mu[k, j])
            if q != 0.0:
                for c in range(3):
                    b[k, c] -= q * b[j, c]
                    T[k, c] -= q * T[j, c]
                bs, mu = _gram_schmidt(b)
        nk = 0.0
        nk1 = 0.0
        for c in range(3):
            nk += bs[k, c] * bs[k, c]
            nk1 += bs[k - 1, c] * bs[k - 1, c]
        if nk >= (delta - mu[k, k - 1] ** 2) * nk1:
            k += 1
        else:
            for c in range(3):
                tmp = b[k, c]
                b[k, c] = b[k - 1, c]
                b[k - 1, c] = tmp
                tmp = T[k, c]
                T[k, c] = T[k - 1, c]
                T[k - 1, c] = tmp
            bs, mu = _gram_schmidt(b)
            k = max(k - 1, 1)
    if np.linalg.det(T) < 0:
        b = -b
        T = -T
    return b, T


@njit(cache=True)
def translations_kernel(cell, radius):
    """Integer translations with |t @ cell| <= radius, sorted by length: (T, 3) and (T,)."""
    inv = np.linalg.inv(cell)
    nmax = np.empty(3, dtype=np.int64)
    for a in range(3):
        nrm = math.sqrt(inv[0, a] ** 2 + inv[1, a] ** 2 + inv[2, a] ** 2)
        nmax[a] = int(math.ceil(radius * nrm))
    total = (2 * nmax[0] + 1) * (2 * nmax[1] + 1) * (2 * nmax[2] + 1)
    vec = np.empty((total, 3))
    length = np.empty(total)
    n = 0
    r2 = radius * radius
    for x in range(-nmax[0], nmax[0] + 1):
        for y in range(-nmax[1], nmax[1] + 1):
            for z in range(-nmax[2], nmax[2] + 1):
                v0 = x * cell[0, 0] + y * cell[1, 0] + z * cell[2, 0]
                v1 = x * cell[0, 1] + y * cell[1, 1] + z * cell[2, 1]
                v2 = x * cell[0, 2] + y * cell[1, 2] + z * cell[2, 2]
                l2 = v0 * v0 + v1 * v1 + v2 * v2
                if l2 <= r2:
                    vec[n, 0] = v0
                    vec[n, 1] = v1
                    vec[n, 2] = v2
                    length[n] = math.sqrt(l2)
                    n += 1
    order = np.argsort(length[:n], kind="mergesort")
    return vec[:n][order], length[:n][order]


@njit(cache=True)
def wrapped_offsets(cell, frac, i, off):
    """Cartesian offsets from motif point i to every motif point, wrapped into the cell.

    Fills ``off`` (m, 3) with ``(f_j - f_i - round(f_j - f_i)) @ cell`` and returns the
    largest offset length ``R_i``.
    """
    ri = 0.0
    for j in range(frac.shape[0]):
        f0 = frac[j, 0] - frac[i, 0]
        f1 = frac[j, 1] - frac[i, 1]
        f2 = frac[j, 2] - frac[i, 2]
        f0 -= math.floor(f0 + 0.5)
        f1 -= math.floor(f1 + 0.5)
        f2 -= math.floor(f2 + 0.5)
        o0 = f0 * cell[0, 0] + f1 * cell[1, 0] + f2 * cell[2, 0]
        o1 = f0 * cell[0, 1] + f1 * cell[1, 1] + f2 * cell[2, 1]
        o2 = f0 * cell[0, 2] + f1 * cell[1, 2] + f2 * cell[2, 2]
        off[j, 0] = o0
        off[j, 1] = o1
        off[j, 2] = o2
        length = math.sqrt(o0 * o0 + o1 * o1 + o2 * o2)
        if length > ri:
            ri = length
    return ri


@njit(cache=True)
def knn_kernel(cell, frac, rows, k, tvec, tlen, radius, tau0):
    """k nearest neighbour distances of motif points ``rows``.

    ``tvec``/``tlen`` must hold every translation of length <= ``radius``, sorted by length.
    For each row every candidate within a threshold ``tau`` is collected; a candidate
    ``o_ij + t`` with ``|t| > tau + R_i`` is farther than ``tau``, so the collection is
    complete, and once it holds at least k candidates the k smallest are exact. ``tau``
    starts at ``tau0`` and grows by 25% for a row that collected fewer than k.

    Returns (dist (r, k), index (r, k), needed_radius): ``needed_radius`` is 0 on success,
    otherwise the radius the translations must cover for a retry.
    """
    m = frac.shape[0]
    nr = rows.shape[0]
    nt = tvec.shape[0]
    dist = np.empty((nr, k))
    index = np.empty((nr, k), dtype=np.int64)
    off = np.empty((m, 3))
    cap = 4 * k + 64
    bufd = np.empty(cap)
    bufj = np.empty(cap, dtype=np.int64)
    for r in range(nr):
        i = rows[r]
        ri = wrapped_offsets(cell, frac, i, off)
        tau = tau0
        while True:
            limit = tau + ri
            if limit > radius:
                return dist, index, limit * 1.2
            tau2 = tau * tau
            cnt = 0
            overflow = False
            for t in range(nt):
                if tlen[t] > limit:
                    break
                t0 = tvec[t, 0]
                t1 = tvec[t, 1]
                t2 = tvec[t, 2]
                for j in range(m):
                    d0 = off[j, 0] + t0
                    d1 = off[j, 1] + t1
                    d2 = off[j, 2] + t2
                    d2s = d0 * d0 + d1 * d1 + d2 * d2
                    if d2s <= tau2:
                        if t == 0 and j == i:
                            continue
                        if cnt == cap:
                            overflow = True
                            break
                        bufd[cnt] = d2s
                        bufj[cnt] = j
                        cnt += 1
                if overflow:
                    break
            if overflow:
                cap *= 2
                bufd = np.empty(cap)
                bufj = np.empty(cap, dtype=np.int64)
                continue
            if cnt < k:
                tau *= 1.25
                continue
            break
        order = np.argsort(bufd[:cnt])
        for c in range(k):
            dist[r, c] = math.sqrt(bufd[order[c]])
            index[r, c] = bufj[order[c]]
    return dist, index, 0.0


@njit(cache=True)
def initial_radius(cell, m, k):
    """Radius holding about k + 1 points on average, plus the reach of a wrapped offset.

    Only a first guess: :func:`knn_core` grows it until the stopping rule is met.
    """
    vol = abs(np.linalg.det(cell))
    r = (3.0 * (k + 1) * vol / (4.0 * math.pi * m)) ** (1.0 / 3.0) * 1.1
    if m > 1:
        for a in range(3):
            r += 0.5 * math.sqrt(cell[a, 0] ** 2 + cell[a, 1] ** 2 + cell[a, 2] ** 2)
    return r


@njit(cache=True)
def knn_core(cell, frac, rows, k):
    """Reduce the cell, then exact k nearest neighbour distances (and motif indices)."""
    reduced, T = lll_kernel(cell, 0.75)
    f = frac @ np.linalg.inv(T)
    for i in range(f.shape[0]):
        for c in range(3):
            f[i, c] -= math.floor(f[i, c])
            if f[i, c] >= 1.0:
                f[i, c] = 0.0
    m = f.shape[0]
    tau0 = (3.0 * (k + 1) * abs(np.linalg.det(reduced)) / (4.0 * math.pi * m)) ** (1.0 / 3.0) * 1.1
    radius = initial_radius(reduced, m, k)
    while True:
        tvec, tlen = translations_kernel(reduced, radius)
        dist, index, needed = knn_kernel(reduced, f, rows, k, tvec, tlen, radius, tau0)
        if needed == 0.0:
            return dist, index
        radius = max(needed, radius * 1.2)


@njit(cache=True)
def _lex_less(a, b):
    for c in range(a.shape[0]):
        if a[c] < b[c]:
            return True
        if a[c] > b[c]:
            return False
    return False


@njit(cache=True)
def lexsort_rows(d):
    """Order of the rows of ``d`` sorted lexicographically (stable)."""
    order = np.argsort(d[:, 0], kind="mergesort")
    for i in range(1, order.shape[0]):  # rows tied in column 0 are few: insertion sort
        cur = order[i]
        j = i - 1
        while j >= 0 and _lex_less(d[cur], d[order[j]]):
            order[j + 1] = order[j]
            j -= 1
        order[j + 1] = cur
    return order


@njit(cache=True)
def collapse_kernel(weights, dists, tol):
    """Merge rows within ``tol`` (Chebyshev) of a group's first row; sort lexicographically.

    Groups are formed greedily in lexicographic order; merged rows are averaged and their
    weights summed. Returns (weights (g,), dists (g, k)).
    """
    n, k = dists.shape
    order = lexsort_rows(dists)
    group = np.full(n, -1, dtype=np.int64)
    g = 0
    for a in range(n):
        i = order[a]
        if group[i] >= 0:
            continue
        group[i] = g
        for b in range(a + 1, n):
            j = order[b]
            if dists[j, 0] - dists[i, 0] > tol:
                break
            if group[j] >= 0:
                continue
            close = True
            for c in range(k):
                if abs(dists[i, c] - dists[j, c]) > tol:
                    close = False
                    break
            if close:
                group[j] = g
        g += 1
    new_w = np.zeros(g)
    new_d = np.zeros((g, k))
    counts = np.zeros(g)
    for i in range(n):
        new_w[group[i]] += weights[i]
        counts[group[i]] += 1.0
        for c in range(k):
            new_d[group[i], c] += dists[i, c]
    for r in range(g):
        for c in range(k):
            new_d[r, c] /= counts[r]
    order = lexsort_rows(new_d)
    return new_w[order], new_d[order]
