"""The audit of descriptors as a provenance-tracked calcfunction (``crystinv.audit``).

``audit_descriptors(dataset, descriptors, parameters)`` runs
:func:`aiida_crystinv.audit.audit` on the first ``n_structures`` records of a
:class:`~aiida_crystinv.data.CrystalDatasetData` and, when ``parameters`` names a
``target``, :func:`aiida_crystinv.audit.target_continuity` on the first ``n_target``
records. Outputs (all plain JSON or PNG, no pickle):

=====================  ===============================================================
output                 content
=====================  ===============================================================
``table``              ``Dict``: ``rows`` (one per descriptor: the largest change under
                       each transform, ``None`` = not comparable, the verdicts, the
                       changes per eps), ``transforms``, ``eps``, ``ids`` of the records
``continuity_plot``    ``SinglefileData`` PNG: change / eps against eps
``target_table``       ``Dict`` (with ``target``): d, c, ratio per descriptor
``target_plot``        ``SinglefileData`` PNG (with ``target``)
=====================  ===============================================================

Parameters (``Dict``, all optional): ``n_structures`` (4), ``seed`` (0), ``n_trials`` (3),
``eps`` (list, Angstrom; default :data:`aiida_crystinv.audit.CONTINUITY_EPS`), ``target``,
``n_target`` (all records), ``close_fraction`` (0.01), ``fraction`` (0.95).

Exit codes: 201 an unknown or invalid parameter, 220 a descriptor that does not resolve,
230 a target the dataset does not have, 232 too few records, 301 a descriptor that fails
on a structure. Nothing is stored on failure: every check and computation happens before
the first output node is made.
"""

from __future__ import annotations

import io
import math
from typing import Any

from aiida import orm
from aiida.engine import calcfunction

from ..data import CrystalDatasetData
from ..exit_codes import EXIT
from .ports import validate_inputs

__all__ = ["audit_descriptors", "DEFAULTS"]

#: default parameters of :func:`audit_descriptors`
DEFAULTS: dict[str, Any] = {"n_structures": 4, "seed": 0, "n_trials": 3, "eps": None, "target": None,
                            "n_target": None, "close_fraction": 0.01, "fraction": 0.95}


def _json(x: Any) -> Any:
    """JSON-safe copy (non-finite floats as the strings 'inf' / 'nan'; arrays as lists)."""
    import numpy as np

    if isinstance(x, dict):
        return {str(k): _json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json(v) for v in x]
    if isinstance(x, np.ndarray):
        return _json(x.tolist())
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else ("inf" if x > 0 else ("-inf" if x < 0 else "nan"))
    if isinstance(x, np.integer):
        return int(x)
    return x


def _png(data: bytes, name: str) -> orm.SinglefileData:
    return orm.SinglefileData(io.BytesIO(data), filename=name)


def _check_parameters(params: dict[str, Any]) -> str | None:
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        return f"unknown parameter(s) {unknown}; known: {sorted(DEFAULTS)}"
    for key in ("n_structures", "n_trials"):
        v = params[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            return f"{key} must be a positive integer, got {v!r}"
    if params["n_target"] is not None and (not isinstance(params["n_target"], int) or params["n_target"] < 3):
        return f"n_target must be an integer >= 3, got {params['n_target']!r}"
    for key in ("close_fraction", "fraction"):
        v = params[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
            return f"{key} must be a number in (0, 1], got {v!r}"
    eps = params["eps"]
    if eps is not None and (not isinstance(eps, list) or len(eps) < 2
                            or not all(isinstance(e, (int, float)) and e > 0 for e in eps)):
        return f"eps must be a list of at least two positive displacements (Angstrom), got {eps!r}"
    return None


@calcfunction
def audit_descriptors(dataset: CrystalDatasetData, descriptors: orm.List, parameters: orm.Dict | None = None):
    """Audit ``descriptors`` (names, see :func:`aiida_crystinv.representations.get_descriptor`)
    for invariance and continuity on ``dataset``; see the module docstring."""
    from ..audit import CONTINUITY_EPS, TRANSFORMS, audit, target_continuity
    from ..audit.plots import continuity_plot, target_continuity_plot
    from ..representations import DescriptorError, get_descriptor

    params = {**DEFAULTS, **(parameters.get_dict() if parameters is not None else {})}
    problem = _check_parameters(params)
    if problem:
        return EXIT.ERROR_INVALID_OPTIONS.format(message=problem)
    names = list(descriptors.get_list())
    if not names or not all(isinstance(n, str) for n in names):
        return EXIT.ERROR_INVALID_SPEC.format(message=f"descriptors must be a non-empty list of names, got {names!r}")
    try:
        resolved = [get_descriptor(n) for n in names]
    except DescriptorError as exc:
        return EXIT.ERROR_INVALID_SPEC.format(message=str(exc))
    target = params["target"]
    if target is not None and target not in dataset.target_names:
        return EXIT.ERROR_MISSING_TARGET.format(
            message=f"the dataset has no target {target!r}; it has {dataset.target_names or 'none'}")
    n = min(int(params["n_structures"]), len(dataset))
    structures = dataset.get_structures(list(range(n)))
    ids = dataset.ids[:n]
    eps = list(params["eps"]) if params["eps"] is not None else list(CONTINUITY_EPS)
    try:
        rows = audit(resolved, structures, seed=int(params["seed"]), eps=eps, n_trials=int(params["n_trials"]))
    except (DescriptorError, ValueError) as exc:
        return EXIT.ERROR_DESCRIPTOR_FAILED.format(message=f"{type(exc).__name__}: {exc}")
    outputs: dict[str, Any] = {}
    table = {"rows": rows, "transforms": list(TRANSFORMS), "eps": eps, "ids": ids,
             "n_structures": n, "seed": int(params["seed"]), "n_trials": int(params["n_trials"])}
    plot = continuity_plot(rows, f"{len(structures)} structures of dataset {dataset.pk}")
    if target is not None:
        nt = len(dataset) if params["n_target"] is None else min(int(params["n_target"]), len(dataset))
        if nt < 3:
            return EXIT.ERROR_TOO_FEW_RECORDS.format(message=f"target continuity needs >= 3 records, the dataset has {nt}")
        tstructs = dataset.get_structures(list(range(nt)))
        y = dataset.get_target(target)[:nt]
        results = []
        try:
            for d in resolved:
                results.append(target_continuity(d, tstructs, y, close_fraction=float(params["close_fraction"]),
                                                 fraction=float(params["fraction"])))
        except (DescriptorError, ValueError) as exc:
            return EXIT.ERROR_DESCRIPTOR_FAILED.format(message=f"{type(exc).__name__}: {exc}")
        keep = ("descriptor", "unit", "n", "n_pairs", "n_close", "close_fraction", "fraction", "d", "c",
                "median_dy_close", "median_dy_all", "ratio")
        outputs["target_table"] = orm.Dict({"target": target, "rows": _json([{k: r[k] for k in keep} for r in results])})
        outputs["target_plot"] = _png(target_continuity_plot(results, target), "target_continuity.png")
    outputs["table"] = orm.Dict(_json(table))
    outputs["continuity_plot"] = _png(plot, "audit_continuity.png")
    return outputs


def _check_parameters_port(value: Any, _ctx: Any = None) -> str | None:
    if value is None:
        return None
    given = value.get_dict()
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        return f"unknown parameter(s) {unknown}; known: {sorted(DEFAULTS)}"
    return _check_parameters({**DEFAULTS, **given})


def _check_descriptors_port(value: Any, _ctx: Any = None) -> str | None:
    from ..representations import DescriptorError, get_descriptor

    names = list(value.get_list())
    if not names or not all(isinstance(n, str) for n in names):
        return f"descriptors must be a non-empty list of names, got {names!r}"
    try:
        for name in names:
            get_descriptor(name)
    except DescriptorError as exc:
        return str(exc)
    return None


def _check_target(inputs: Any, _ctx: Any = None) -> str | None:
    """The target named in ``parameters`` must be one of the dataset's."""
    dataset, parameters = inputs.get("dataset"), inputs.get("parameters")
    target = parameters.get_dict().get("target") if parameters is not None else None
    if dataset is None or target is None:
        return None
    if target not in dataset.target_names:
        return f"the dataset has no target {target!r}; it has {dataset.target_names or 'none'}"
    return None


# Checked when the process is built, before any node is stored: a refused input leaves
# nothing in the database (the checks inside the function stay for direct callers of .func).
validate_inputs(audit_descriptors, parameters=_check_parameters_port, descriptors=_check_descriptors_port)
audit_descriptors.process_class.spec().inputs._validator = _check_target  # type: ignore[attr-defined]
