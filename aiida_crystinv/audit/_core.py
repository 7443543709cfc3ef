"""Invariance and continuity checks of one descriptor on a list of structures."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..representations import NotComparableError, get_descriptor

__all__ = ["TRANSFORMS", "CONTINUITY_EPS", "JUMP_FACTOR", "transform", "perturb", "invariance", "continuity",
           "audit", "format_table"]

#: the cell changes of :func:`invariance`, in table order
TRANSFORMS = ("supercell_diagonal", "supercell_nondiagonal", "unimodular_skew", "rotation", "origin_shift",
              "permutation")
_DIAGONAL = np.diag([2, 1, 1])
_NONDIAGONAL = np.array([[1, 1, 0], [-1, 1, 0], [0, 0, 1]])      # det 2
_UNIMODULAR = np.array([[1, 4, 3], [2, 9, 7], [1, 5, 5]])        # det 1, entries up to 9
#: displacement bounds of :func:`continuity`, Angstrom
CONTINUITY_EPS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
#: a largest-ratio / ratio-at-largest-eps above this is reported as a jump
JUMP_FACTOR = 10.0
_RTOL, _ATOL = 1e-6, 1e-9


def _structure(obj):
    if not hasattr(obj, "lattice") or not hasattr(obj, "frac_coords"):
        raise TypeError(f"the audit takes pymatgen Structures, got {type(obj).__name__}")
    return obj


def transform(structure, name: str, rng: np.random.Generator):
    """``structure`` described differently: one of :data:`TRANSFORMS` (the same crystal)."""
    from pymatgen.core import Lattice, Structure

    s = _structure(structure).copy()
    if name in ("supercell_diagonal", "supercell_nondiagonal", "unimodular_skew"):
        M = {"supercell_diagonal": _DIAGONAL, "supercell_nondiagonal": _NONDIAGONAL, "unimodular_skew": _UNIMODULAR}[name]
        s.make_supercell(M)
        return s
    if name == "rotation":
        from scipy.spatial.transform import Rotation

        R = Rotation.random(random_state=int(rng.integers(2**31))).as_matrix()
        return Structure(Lattice(s.lattice.matrix @ R.T), s.species_and_occu, s.frac_coords)
    if name == "origin_shift":
        s.translate_sites(list(range(len(s))), rng.random(3), frac_coords=True, to_unit_cell=True)
        return s
    if name == "permutation":
        perm = rng.permutation(len(s))
        return Structure.from_sites([s[int(i)] for i in perm])
    raise ValueError(f"unknown transform {name!r}; one of {TRANSFORMS}")


def perturb(structure, eps: float, rng: np.random.Generator):
    """``structure`` with every atom moved by a random vector of length uniform in [0, eps]
    (Angstrom) in a uniformly random direction."""
    from pymatgen.core import Structure

    s = _structure(structure)
    n = len(s)
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    disp = direction * (eps * rng.random(n))[:, None]
    return Structure(s.lattice, s.species_and_occu, s.cart_coords + disp, coords_are_cartesian=True)


def _scale(value: np.ndarray) -> float:
    return float(np.max(np.abs(value))) if value.size else 0.0


def invariance(descriptor: Any, structures: Sequence[Any], seed: int = 0) -> dict[str, Any]:
    """Largest change of ``descriptor`` under each of :data:`TRANSFORMS` over ``structures``.

    Returns:
        ``{"changes": {transform: float or None}, "tolerance": float, "verdict": str,
        "per_transform": {transform: "invariant" | "changes" | "not comparable"}}``; the
        change is the descriptor's own distance (its unit); ``None`` = the output shape
        changed. Invariant means change <= 1e-6 * max|value| + 1e-9.
    """
    d = get_descriptor(descriptor).bind(structures, fixed_shape=False)
    rng = np.random.default_rng(seed)
    changes: dict[str, float | None] = {t: 0.0 for t in TRANSFORMS}
    tol = 0.0
    for s in structures:
        base = d(s)
        tol = max(tol, _RTOL * _scale(base) + _ATOL)
        for t in TRANSFORMS:
            try:
                delta = d.distance(base, d(transform(s, t, rng)))
            except NotComparableError:
                changes[t] = None
                continue
            if changes[t] is not None:
                changes[t] = max(float(changes[t]), delta)  # type: ignore[arg-type]
    per = {t: "not comparable" if c is None else ("invariant" if c <= tol else "changes") for t, c in changes.items()}
    verdict = "invariant" if all(v == "invariant" for v in per.values()) else "not invariant"
    return {"changes": changes, "tolerance": tol, "per_transform": per, "verdict": verdict}


def continuity(descriptor: Any, structures: Sequence[Any], eps: Sequence[float] = CONTINUITY_EPS,
               n_trials: int = 3, supercell: Sequence[int] | None = (2, 1, 1), seed: int = 0) -> dict[str, Any]:
    """Change of ``descriptor`` when every atom moves by at most eps, for each eps.

    The structures are first described in a ``supercell`` (default 2x1x1) so that a
    perturbation can break translational symmetry, as a generic perturbation of a
    crystal does; ``None`` perturbs the cells as given.

    Returns:
        ``{"eps": (m,), "change": (m,) largest change over structures and trials,
        "ratio": change / eps, "lipschitz": largest ratio over eps >= 1e-2 Angstrom,
        "jump_factor": max(ratio) / ratio[-1], "verdict": "continuous" | "jumps"}``.
    """
    eps_arr = np.asarray(sorted(float(e) for e in eps))
    if eps_arr.size < 2 or eps_arr[0] <= 0:
        raise ValueError(f"eps must hold at least two positive displacements (Angstrom), got {list(eps)!r}")
    rng = np.random.default_rng(seed)
    bases = []
    for s in structures:
        b = _structure(s).copy()
        if supercell is not None:
            b.make_supercell(list(supercell))
        bases.append(b)
    d = get_descriptor(descriptor).bind(bases, fixed_shape=False)
    change = np.zeros(eps_arr.size)
    for b in bases:
        base = d(b)
        for i, e in enumerate(eps_arr):
            for _ in range(int(n_trials)):
                change[i] = max(change[i], d.distance(base, d(perturb(b, e, rng))))
    ratio = change / eps_arr
    if ratio[-1] > 0:
        jump = float(ratio.max() / ratio[-1])
    else:
        jump = math.inf if ratio.max() > 0 else 1.0
    big = eps_arr >= 1e-2
    return {"eps": eps_arr, "change": change, "ratio": ratio,
            "lipschitz": float(ratio[big].max()) if big.any() else float(ratio[-1]),
            "jump_factor": jump, "verdict": "jumps" if jump > JUMP_FACTOR else "continuous"}


def audit(descriptors: Sequence[Any], structures: Sequence[Any], seed: int = 0, eps: Sequence[float] = CONTINUITY_EPS,
          n_trials: int = 3) -> list[dict[str, Any]]:
    """:func:`invariance` and :func:`continuity` of every descriptor on ``structures``.

    Returns:
        one row (dict) per descriptor: ``descriptor``, ``metric``, ``unit``, one key per
        transform (largest change, ``None`` = not comparable), ``invariance``,
        ``continuity``, ``lipschitz``, ``jump_factor``, ``eps``, ``change`` (per eps).
    """
    if not structures:
        raise ValueError("the audit needs at least one structure")
    rows = []
    for spec in descriptors:
        d = get_descriptor(spec)
        inv = invariance(d, structures, seed=seed)
        con = continuity(d, structures, eps=eps, n_trials=n_trials, seed=seed)
        rows.append({
            "descriptor": d.name, "metric": d.metric, "unit": d.unit, **inv["changes"],
            "invariance": inv["verdict"], "continuity": con["verdict"], "lipschitz": con["lipschitz"],
            "jump_factor": con["jump_factor"], "eps": con["eps"].tolist(), "change": con["change"].tolist(),
        })
    return rows


def _fmt(x: Any) -> str:
    if x is None:
        return "not comparable"
    if isinstance(x, float):
        if math.isinf(x):
            return "inf"
        return "0" if x == 0 else f"{x:.2g}"
    return str(x)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of :func:`audit` rows (changes in each descriptor's own unit)."""
    cols = ["descriptor", *TRANSFORMS, "invariance", "lipschitz", "jump_factor", "continuity"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    return "\n".join(lines)
