"""Documented model recipes: the descriptor and model specs the docs' accuracy tables use.

Pure data (JSON-able dicts for :func:`~aiida_crystinv.learning.describe` and
:func:`~aiida_crystinv.learning.build_model`), so a benchmark, a study file and a user
all train exactly the same thing:

* :data:`MP_BULK_DESCRIPTOR` -- the Materials Project bulk-modulus descriptor
  ``density+element_roles+element_stats+pdd_stats`` (element_roles with AMD_48 per role,
  pdd_stats with k=16; 287 columns).
* :func:`bulk_modulus_model` -- the default bulk-modulus model: a stack of three members
  (RBF and Laplacian kernel ridge, record-weighted, on two column views, plus feature kNN)
  on log10(K V), each kernel ridge tuning its (gamma, alpha) grid by closed-form
  leave-one-out on a seeded subset of ``search_size`` training records.
* :func:`bulk_modulus_stack_2026_12` -- the ten-member stack documented until 2026-12
  (every kernel ridge searches its grid on all training records: about 10 times the time
  of the default for the same cross-validated MAE within 5 %; see docs/learning.md).

The recipes (which parts, k, the grids, the member lists) were chosen by looking at
5-fold cross-validation on the MP set: design-level selection. Inside a fit, everything
(hyperparameters, standardisation, blend weights) is learned from the training records.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MP_BULK_DESCRIPTOR", "mp_bulk_views", "bulk_modulus_model", "bulk_modulus_stack_2026_12"]

#: ``(name, parameters)`` of the MP bulk-modulus descriptor for :func:`describe`
MP_BULK_DESCRIPTOR: tuple[str, dict[str, Any]] = (
    "density+element_roles+element_stats+pdd_stats", {"element_roles": {"k": 48}, "pdd_stats": {"k": 16}})

#: kernel ridge on log10(K V) (column 0 of ``density`` is the volume per atom, Angstrom^3)
_KRR_MP: dict[str, Any] = {"name": "krr", "alphas": [1e-3, 3e-3, 1e-2, 3e-2, 1e-1], "target_transform": "log10",
                           "scale_column": 0}


def mp_bulk_views() -> tuple[list[list[int]], list[list[int]]]:
    """Column ranges ``[[start, stop], ...]`` of two views of :data:`MP_BULK_DESCRIPTOR`:
    (a) density + element_roles (AMD_48 per role) + element_stats; (b) density +
    element_roles with AMD_24 per role + element_stats + pdd_stats."""
    from ..invariants.elements import ELEMENT_PROPERTIES

    p, k, pair = len(ELEMENT_PROPERTIES), 48, 4  # pair: 2 pair distances + 2 shares per role
    role = 2 + p + k + pair
    comp = 7 + 2 * role
    a = [[0, comp + 4 * p]]
    b = [[0, 7 + 2 + p + 24], [7 + role - pair, 7 + role + 2 + p + 24],
         [7 + 2 * role - pair, comp + 4 * p + 4 * 16]]
    return a, b


def bulk_modulus_stack_2026_12() -> dict[str, Any]:
    """The ten-member stack documented until 2026-12: Laplacian / RBF kernel ridge,
    unweighted / ``weight_power=1``, on both views, plus feature kNN on each view, all on
    log10(K V); every kernel ridge searches 3 gammas x 5 alphas by leave-one-out on all
    training records (one n x n eigendecomposition per gamma)."""
    members: list[dict[str, Any]] = []
    for cols in mp_bulk_views():
        for kernel, gf in (("laplacian", [0.5, 1.0, 2.0]), ("rbf", [0.25, 0.5, 1.0])):
            for wp in (0.0, 1.0):
                members.append(dict(_KRR_MP, kernel=kernel, gamma_factors=gf, weight_power=wp, columns=cols))
        members.append({"name": "knn_features", "k": [1, 3, 5, 10, 20, 40], "target_transform": "log10",
                        "scale_column": 0, "columns": cols})
    return {"name": "stack", "members": members}


def bulk_modulus_model(search_size: int = 800) -> dict[str, Any]:
    """The default bulk-modulus model (spec for :func:`build_model`, features
    :data:`MP_BULK_DESCRIPTOR`, target in GPa).

    A stack of RBF kernel ridge (``weight_power=1``) on view (a), Laplacian kernel ridge
    (``weight_power=1``) on view (b) and feature kNN on view (a), all on log10(K V). Each
    kernel ridge chooses (gamma, alpha) from 3 x 5 candidates by leave-one-out on a seeded
    subset of ``search_size`` training records, then fits all records and gives their exact
    leave-one-out predictions at that point (one Cholesky factorisation), which the stack
    blends (non-negative weights summing to one, minimum MAE).

    Args:
        search_size: records of the hyperparameter search subset (``None``: all).
    """
    a, b = mp_bulk_views()
    return {"name": "stack", "members": [
        dict(_KRR_MP, kernel="rbf", gamma_factors=[0.25, 0.5, 1.0], weight_power=1.0, search_size=search_size,
             columns=a),
        dict(_KRR_MP, kernel="laplacian", gamma_factors=[0.5, 1.0, 2.0], weight_power=1.0, search_size=search_size,
             columns=b),
        {"name": "knn_features", "k": [1, 3, 5, 10, 20, 40], "target_transform": "log10", "scale_column": 0,
         "columns": a},
    ]}
