"""Compiled (numba) kernels of the periodic neighbour search.

Exactness argument of :func:`knn_kernel`: translations ``t`` are visited in order of
increasing length ``|t|``. For motif point ``i`` and any motif point ``j`` the candidate
distance is ``|o_ij + t| >= |t| - R_i`` where ``o_ij`` is the wrapped offset and
``R_i = max_j |o_ij|``. Once ``|t| - R_i`` exceeds the current k-th smallest distance no
later translation can improve it. Translations are generated for all ``|t| <= r``; if a row
exhausts them before the stopping rule fires, the caller retries with a larger ``r``.
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
def _sift_down(hd, hj, pos, size):
    while True:
        left = 2 * pos + 1
        if left >= size:
            return
        big = left
        right = left + 1
        if right < size and hd[right] > hd[left]:
            big = right
        if hd[big] > hd[pos]:
            tmp = hd[big]
            hd[big] = hd[pos]
            hd[pos] = tmp
            tj = hj[big]
            hj[big] = hj[pos]
            hj[pos] = tj
            pos = big
        else:
            return


@njit(cache=True)
def _sift_up(hd, hj, pos):
    while pos > 0:
        parent = (pos - 1) // 2
        if hd[pos] > hd[parent]:
            tmp = hd[parent]
            hd[parent] = hd[pos]
            hd[pos] = tmp
            tj = hj[parent]
            hj[parent] = hj[pos]
            hj[pos] = tj
            pos = parent
        else:
            return


@njit(cache=True)
def knn_kernel(cell, frac, rows, k, tvec, tlen, radius):
    """k nearest neighbour distances of motif points ``rows``.

    ``tvec``/``tlen`` must hold every translation of length <= ``radius``, sorted by length.
    Returns (dist (r, k), index (r, k), ok) where ``ok`` is False if those translations did
    not suffice for some row; the caller then regenerates them with a larger radius.
    """
    m = frac.shape[0]
    nr = rows.shape[0]
    nt = tvec.shape[0]
    dist = np.empty((nr, k))
    index = np.empty((nr, k), dtype=np.int64)
    off = np.empty((m, 3))
    hd = np.empty(k)
    hj = np.empty(k, dtype=np.int64)
    for r in range(nr):
        i = rows[r]
        ri = 0.0
        for j in range(m):
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
            l = math.sqrt(o0 * o0 + o1 * o1 + o2 * o2)
            if l > ri:
                ri = l
        size = 0
        done = False
        for t in range(nt):
            if size == k and tlen[t] - ri > math.sqrt(hd[0]):
                done = True
                break
            t0 = tvec[t, 0]
            t1 = tvec[t, 1]
            t2 = tvec[t, 2]
            for j in range(m):
                if t == 0 and j == i:
                    continue
                d0 = off[j, 0] + t0
                d1 = off[j, 1] + t1
                d2 = off[j, 2] + t2
                d2s = d0 * d0 + d1 * d1 + d2 * d2
                if size < k:
                    hd[size] = d2s
                    hj[size] = j
                    _sift_up(hd, hj, size)
                    size += 1
                elif d2s < hd[0]:
                    hd[0] = d2s
                    hj[0] = j
                    _sift_down(hd, hj, 0, k)
        if not done:
            if size < k or math.sqrt(hd[0]) > radius - ri:
                return dist, index, False
        order = np.argsort(hd)
        for c in range(k):
            dist[r, c] = math.sqrt(hd[order[c]])
            index[r, c] = hj[order[c]]
    return dist, index, True
