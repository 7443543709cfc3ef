"""DFT results back into datasets: collect, put on the target's scale, extend, score.

* :func:`collect_dft_results` -- for each handed-off structure, the structure the child
  computed (its ``output_structure`` when it relaxed, else the structure it was given) and
  its energy per atom (eV/atom; the pressure in GPa when the child reports one) into a new
  ``CrystalDatasetData`` with the records' identifiers. Its inputs are the child's own
  output nodes, so the dataset's creator links to the DFT processes that made them.
* :func:`calibrate_dft` -- DFT total energies depend on the pseudopotentials and codes; a
  dataset's energies (Carbon-24: AIRSS/CASTEP, about -154.5 eV/atom) on another scale. For
  reference records computed by both, the per-element shifts ``mu`` with
  ``target = E_dft + sum_el x_el mu_el`` (``x_el`` the atomic fraction) are fitted by least
  squares; one reference per element is enough for one-element sets such as Carbon-24.
* :func:`extend_training` -- the training set plus the DFT records, their target on the
  dataset's scale.
* :func:`score_round` -- the model's predictions of the handed-off structures against the
  DFT values: MAE, Spearman rank correlation, the best value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from ..data import CrystalDatasetData
from ..exit_codes import EXIT
from ..data._arrays import jsonable

__all__ = ["energy_per_atom", "collect_dft_results", "calibrate_dft", "extend_training", "score_round",
           "DFT_ENERGY", "DFT_PRESSURE", "dft_inputs"]

DFT_ENERGY = "dft_energy_per_atom"
DFT_PRESSURE = "dft_pressure"


def energy_per_atom(node: Any, n_atoms: int) -> tuple[float, float | None]:
    """``(eV/atom, pressure in GPa or None)`` from a child's energy output.

    * a ``Dict`` as aiida-quantumespresso's ``output_parameters``: ``energy`` (total, in
      ``energy_units``, eV) divided by ``number_of_atoms`` (else ``n_atoms``); ``pressure``
      (``pressure_units`` GPa) when present;
    * a ``Float``: an energy per atom in eV/atom (what ``crystinv.ewald_energy`` returns).

    Raises:
        ValueError: no energy, another unit, a value that is not finite.
    """
    pressure = None
    if isinstance(node, orm.Dict):
        values = node.get_dict()
        if "energy" not in values:
            raise ValueError(f"output_parameters <{node.pk}> has no 'energy' (keys: {', '.join(sorted(values)[:12])}...)")
        unit = str(values.get("energy_units", "eV"))
        if unit.lower() != "ev":
            raise ValueError(f"output_parameters <{node.pk}>: energy in {unit!r}, expected eV")
        atoms = int(values.get("number_of_atoms") or n_atoms)
        energy = float(values["energy"]) / atoms
        if "pressure" in values and values["pressure"] is not None:
            if str(values.get("pressure_units", "GPa")).lower() != "gpa":
                raise ValueError(f"output_parameters <{node.pk}>: pressure in {values.get('pressure_units')!r}, expected GPa")
            pressure = float(values["pressure"])
    elif isinstance(node, orm.Float):
        energy = float(node.value)
    else:
        raise ValueError(f"{type(node).__name__} <{node.pk}> is not an energy (output_parameters Dict or Float)")
    if not np.isfinite(energy):
        raise ValueError(f"the energy of <{node.pk}> is {energy}")
    return energy, pressure


def dft_inputs(results: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    """The inputs of :func:`collect_dft_results` from ``{record id: (structure, energy node)}``."""
    ids = list(results)
    inputs: dict[str, Any] = {"ids": orm.List(ids)}
    for i, record in enumerate(ids):
        structure, energy = results[record]
        inputs[f"structure_{i}"] = structure
        inputs[f"energy_{i}"] = energy
    return inputs


@calcfunction
def collect_dft_results(ids: orm.List, **nodes: Any):
    """One dataset of the DFT results: record ``ids[i]`` is ``structure_<i>`` with the energy
    of ``energy_<i>`` (:func:`energy_per_atom`) as target ``dft_energy_per_atom`` (eV/atom)
    and, when every child reported one, ``dft_pressure`` (GPa).

    Exit codes: 215 an energy output without an energy, 213 a structure that is not
    StructureData, 210 an invalid structure, 211 nothing to collect.
    """
    records = ids.get_list()
    if not records:
        return EXIT.ERROR_NO_VALID_RECORDS.format(message="no DFT result to collect")
    structures, energies, pressures = [], [], []
    for i, record in enumerate(records):
        structure, energy = nodes.get(f"structure_{i}"), nodes.get(f"energy_{i}")
        if not isinstance(structure, orm.StructureData):
            return EXIT.ERROR_WRONG_NODE_TYPE.format(message=f"{record}: structure_{i} is {type(structure).__name__}, not StructureData")
        try:
            e, p = energy_per_atom(energy, len(structure.sites))
        except ValueError as exc:
            return EXIT.ERROR_NO_ENERGY.format(message=f"{record}: {exc}")
        structures.append(structure.get_pymatgen_structure())
        energies.append(e)
        pressures.append(p)
    targets: dict[str, list[float]] = {DFT_ENERGY: energies}
    units = {DFT_ENERGY: "eV/atom"}
    if all(p is not None for p in pressures):
        targets[DFT_PRESSURE] = [float(p) for p in pressures if p is not None]
        units[DFT_PRESSURE] = "GPa"
    try:
        dataset = CrystalDatasetData.from_structures(
            structures, ids=[str(r) for r in records], targets=targets, units=units,
            source={"description": f"DFT results of {len(records)} hand-off(s)", "extras": {"format": "dft"}},
        )
    except ValueError as exc:
        return EXIT.ERROR_INVALID_RECORD.format(message=str(exc))
    return {"dataset": dataset}


def _fractions(dataset: CrystalDatasetData, index: int, elements: list[str]) -> np.ndarray:
    composition = dataset.get_structure(index).composition.fractional_composition
    return np.array([float(composition[e]) for e in elements])


@calcfunction
def calibrate_dft(dft: CrystalDatasetData, training: CrystalDatasetData, target: orm.Str):
    """Per-element shifts (eV/atom) from the reference records in both datasets:
    ``target = dft_energy_per_atom + sum_el x_el shift_el`` by least squares.

    Returns ``calibration`` (Dict): ``shifts`` {element: eV/atom}, ``references`` (ids),
    ``residuals`` (eV/atom, per reference).

    Exit codes: 226 no reference in both, fewer references than elements (or references
    whose compositions do not determine the shifts).
    """
    name = target.value
    common = [r for r in dft.ids if r in set(training.ids)]
    if not common:
        return EXIT.ERROR_CALIBRATION.format(message="no reference record is in both the DFT results and the training set")
    elements = sorted({str(e) for r in common for e in dft.get_structure(r).composition.elements})
    a = np.array([_fractions(dft, dft.index_of(r), elements) for r in common])
    e_dft = dft.get_target(DFT_ENERGY)[[dft.index_of(r) for r in common]]
    e_ref = training.get_target(name)[[training.index_of(r) for r in common]]
    if np.linalg.matrix_rank(a) < len(elements):
        return EXIT.ERROR_CALIBRATION.format(
            message=f"{len(common)} reference(s) ({', '.join(common)}) do not determine a shift for each of "
            f"{', '.join(elements)}: give references whose compositions differ (one per element at least)"
        )
    shifts, *_ = np.linalg.lstsq(a, e_ref - e_dft, rcond=None)
    residuals = e_ref - (e_dft + a @ shifts)
    return {"calibration": orm.Dict(jsonable({
        "shifts": dict(zip(elements, shifts.tolist())), "references": common, "residuals": residuals.tolist(),
        "target": name, "unit": training.units.get(name, ""),
    }))}


def calibrated(dft: CrystalDatasetData, calibration: dict[str, Any] | None) -> np.ndarray:
    """``dft_energy_per_atom`` of every record on the target's scale."""
    values = dft.get_target(DFT_ENERGY).astype(float)
    if not calibration:
        return values
    shifts = calibration["shifts"]
    missing = sorted({str(e) for i in range(len(dft)) for e in dft.get_structure(i).composition.elements} - set(shifts))
    if missing:
        raise ValueError(f"no calibration shift for {', '.join(missing)} (calibrated: {', '.join(sorted(shifts))})")
    elements = sorted(shifts)
    mu = np.array([shifts[e] for e in elements])
    return values + np.array([_fractions(dft, i, elements) @ mu for i in range(len(dft))])


@calcfunction
def extend_training(training: CrystalDatasetData, dft: CrystalDatasetData, target: orm.Str, calibration: orm.Dict | None = None):
    """The training records plus the DFT records (target = the calibrated DFT energy).

    Only the column ``target`` is kept (the DFT records have no other); a DFT record whose
    identifier is already in the training set is refused (exit 210).
    """
    name = target.value
    taken = set(training.ids)
    clash = [r for r in dft.ids if r in taken]
    if clash:
        return EXIT.ERROR_INVALID_RECORD.format(message=f"already in the training set: {', '.join(clash[:10])}")
    try:
        values = calibrated(dft, calibration.get_dict() if calibration is not None else None)
    except ValueError as exc:
        return EXIT.ERROR_CALIBRATION.format(message=str(exc))
    crystals = [*training.get_crystals(), *dft.get_crystals()]
    ids = [*training.ids, *dft.ids]
    y = np.concatenate([training.get_target(name), values])
    dataset = CrystalDatasetData.from_structures(
        crystals, ids=ids, targets={name: y.tolist()}, units={name: training.units.get(name, "")},
        source={"description": f"{len(training)} training records + {len(dft)} DFT record(s)", "extras": {"format": "dft"}},
    )
    return {"dataset": dataset}


@calcfunction
def score_round(predictions: orm.ArrayData, dft: CrystalDatasetData, calibration: orm.Dict | None = None):
    """The model's predictions of the handed-off records against their DFT values (on the
    target's scale): ``n``, ``mae``, ``spearman`` (None below 3 records), ``best`` value and
    ``best_id`` (lowest), and the ``pairs`` [id, predicted, DFT]."""
    from scipy.stats import spearmanr

    pred = dict(zip(predictions.get_array("ids").tolist(), predictions.get_array("y_pred").tolist()))
    try:
        values = calibrated(dft, calibration.get_dict() if calibration is not None else None)
    except ValueError as exc:
        return EXIT.ERROR_CALIBRATION.format(message=str(exc))
    ids = [r for r in dft.ids if r in pred]
    if not ids:
        return EXIT.ERROR_UNKNOWN_RECORD.format(message="no DFT record has a prediction")
    y_pred = np.array([pred[r] for r in ids])
    y_dft = np.array([values[dft.index_of(r)] for r in ids])
    rho = float(spearmanr(y_pred, y_dft).statistic) if len(ids) >= 3 else None
    best = int(np.argmin(y_dft))
    return {"score": orm.Dict(jsonable({
        "n": len(ids), "mae": float(np.mean(np.abs(y_pred - y_dft))), "spearman": rho,
        "best": float(y_dft[best]), "best_id": ids[best],
        "pairs": [[r, float(p), float(d)] for r, p, d in zip(ids, y_pred, y_dft)],
    }))}
