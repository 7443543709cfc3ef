"""Continuity of a dataset's target over a descriptor's distance, and of a model's
prediction under a growing displacement of one atom."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..representations import get_descriptor

__all__ = ["target_continuity", "model_continuity"]


def target_continuity(descriptor: Any, structures: Sequence[Any], y: Any, close_fraction: float = 0.01,
                      fraction: float = 0.95, values: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
    """How the target difference grows with the descriptor distance over close pairs.

    The threshold ``d`` is the ``close_fraction`` quantile of all pairwise distances (the
    closest pairs; a distance that occurs, so at least that share of pairs has distance
    <= d); ``c`` is the smallest constant with ``|y_i - y_j| <= c d`` for at least a
    ``fraction`` of the pairs with distance <= d. Since ``c`` is in target units per
    descriptor unit, the unit-free ``ratio`` (median ``|dy|`` of the close pairs over the
    median ``|dy|`` of all pairs) compares descriptors: the smaller, the more closeness in
    the descriptor means closeness in the target.

    Args:
        descriptor: anything :func:`~aiida_crystinv.representations.get_descriptor` takes
            (bound to ``structures`` with a fixed shape).
        structures: n pymatgen Structures.
        y: (n,) targets; records with a non-finite target are left out.
        close_fraction: share of all pairs that count as close, in (0, 1].
        fraction: share of the close pairs that must satisfy the bound, in (0, 1].
        values: precomputed descriptor values (skips computing them).

    Returns:
        dict with ``descriptor``, ``n``, ``n_pairs``, ``n_close``, ``d``, ``c``,
        ``fraction``, ``median_dy_close``, ``median_dy_all``, ``ratio`` and the arrays
        ``pair_distance`` / ``pair_dy`` of the ``5 * close_fraction`` closest pairs (for
        plots).
    """
    if not 0 < close_fraction <= 1 or not 0 < fraction <= 1:
        raise ValueError(f"close_fraction and fraction must lie in (0, 1], got {close_fraction!r}, {fraction!r}")
    y = np.asarray(y, dtype=float).ravel()
    if len(y) != len(structures):
        raise ValueError(f"{len(structures)} structures but {len(y)} targets")
    keep = np.flatnonzero(np.isfinite(y))
    if keep.size < 3:
        raise ValueError("target continuity needs at least 3 records with a finite target")
    structs = [structures[int(i)] for i in keep]
    d = get_descriptor(descriptor).bind(structs, fixed_shape=True)
    vals = [values[int(i)] for i in keep] if values is not None else d.values(structs)
    dist = d.pdist(vals)
    iu = np.triu_indices(len(keep), 1)
    dy = np.abs(y[keep][iu[0]] - y[keep][iu[1]])
    thr = float(np.quantile(dist, close_fraction, method="inverted_cdf"))
    close = dist <= thr
    q = float(np.quantile(dy[close], fraction, method="inverted_cdf"))
    c = q / thr if thr > 0 else (0.0 if q == 0 else np.inf)
    order = np.argsort(dist, kind="stable")[: max(int(5 * close_fraction * dist.size), int(close.sum()))]
    med_all = float(np.median(dy))
    return {
        "descriptor": d.name, "unit": d.unit, "n": int(keep.size), "n_pairs": int(dist.size),
        "n_close": int(close.sum()), "close_fraction": float(close_fraction), "fraction": float(fraction),
        "d": thr, "c": float(c), "median_dy_close": float(np.median(dy[close])), "median_dy_all": med_all,
        "ratio": float(np.median(dy[close]) / med_all) if med_all > 0 else float("nan"),
        "pair_distance": dist[order], "pair_dy": dy[order],
    }


def model_continuity(predict: Callable[[list], np.ndarray], structures: Sequence[Any],
                     sigmas: Sequence[float] = (0.0, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5), n_repeats: int = 3,
                     truth: Callable[[Any], float] | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Predictions of a model as one atom of each structure moves by growing Gaussian noise.

    For each structure, each ``sigma`` (Angstrom) and each repeat, atom 0 moves by a vector
    drawn from N(0, sigma^2 I_3) (Cartesian); ``predict`` gets the list of displaced
    structures and returns one value each; ``truth`` (optional) gives a cheap reference
    value of one structure (e.g. :func:`aiida_crystinv.sources.synthetic.ewald_energy_per_atom`
    for ionic sets).

    Returns:
        dict of equal-length arrays: ``structure`` (index), ``sigma``, ``displacement``
        (Angstrom, the norm of the move), ``predicted``, ``delta_predicted`` (minus the
        prediction of the undisplaced structure), and with ``truth``: ``truth`` and
        ``delta_truth``.
    """
    from pymatgen.core import Structure

    rng = np.random.default_rng(seed)
    rows_s, rows_sig, rows_disp, displaced = [], [], [], []
    for i, s in enumerate(structures):
        for sig in sigmas:
            for _ in range(1 if sig == 0 else int(n_repeats)):
                v = rng.normal(scale=float(sig), size=3) if sig > 0 else np.zeros(3)
                cart = s.cart_coords.copy()
                cart[0] += v
                displaced.append(Structure(s.lattice, s.species_and_occu, cart, coords_are_cartesian=True))
                rows_s.append(i)
                rows_sig.append(float(sig))
                rows_disp.append(float(np.linalg.norm(v)))
    pred = np.asarray(predict(displaced), dtype=float).ravel()
    if pred.size != len(displaced):
        raise ValueError(f"predict returned {pred.size} values for {len(displaced)} structures")
    idx = np.asarray(rows_s)
    base = {}
    for k in range(len(idx)):
        if rows_disp[k] == 0.0 and idx[k] not in base:
            base[idx[k]] = k
    if len(base) != len(structures):
        raise ValueError("sigmas must include 0 (the undisplaced reference)")
    out = {"structure": idx, "sigma": np.asarray(rows_sig), "displacement": np.asarray(rows_disp),
           "predicted": pred, "delta_predicted": pred - pred[[base[i] for i in idx]]}
    if truth is not None:
        t = np.array([float(truth(x)) for x in displaced])
        out["truth"] = t
        out["delta_truth"] = t - t[[base[i] for i in idx]]
    return out
