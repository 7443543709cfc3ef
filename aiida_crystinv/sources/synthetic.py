"""A synthetic, offline polymorph landscape labelled with Ewald lattice energies.

Pure layer: pymatgen and numpy only, no AiiDA import.

The landscape is built from ionic prototype structures (rocksalt, CsCl, zincblende,
wurtzite, NiAs, fluorite / anti-fluorite, rutile, CdI2, cubic perovskite) for a few
compositions with fixed oxidation states. Every prototype is scaled so that no two ions
are closer than the sum of their ionic radii, then given a random strain, an optional
supercell and random atomic displacements. Each structure is labelled with its Ewald
(point-charge Coulomb) energy per atom, in eV/atom, computed with pymatgen's
:class:`~pymatgen.analysis.ewald.EwaldSummation`.

A few per cent of the records are deliberate near-duplicates of earlier ones: the same
crystal written with another unit cell (a unimodular change of basis), rotated, with the
atoms in another order and displaced by about 0.01 Angstrom. Their identifiers end in
``-dup`` so that a near-duplicate search can be checked against them.

Everything is deterministic for a given ``seed``::

    >>> from aiida_crystinv.sources.synthetic import ewald_landscape
    >>> ids, structures, targets, units = ewald_landscape(n=20, seed=0)
    >>> len(ids), targets["ewald_energy_per_atom"].shape, units
    (20, (20,), {'ewald_energy_per_atom': 'eV/atom'})
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pymatgen.analysis.ewald import EwaldSummation
from pymatgen.core import Lattice, Structure

__all__ = [
    "OxidationStateError",
    "PROTOTYPES",
    "COMPOSITIONS",
    "TARGET_NAME",
    "TARGET_UNIT",
    "prototype_structure",
    "guess_oxidation_states",
    "ewald_energy_per_atom",
    "ewald_landscape",
]

LOGGER = logging.getLogger(__name__)

TARGET_NAME = "ewald_energy_per_atom"
TARGET_UNIT = "eV/atom"

#: Shannon ionic radii (Angstrom) of the ions used below, keyed by (element, charge).
IONIC_RADII: dict[tuple[str, int], float] = {
    ("Li", 1): 0.90,
    ("Na", 1): 1.16,
    ("K", 1): 1.52,
    ("Mg", 2): 0.86,
    ("Ca", 2): 1.14,
    ("Sr", 2): 1.32,
    ("Ba", 2): 1.49,
    ("Zn", 2): 0.88,
    ("Ti", 4): 0.745,
    ("Zr", 4): 0.86,
    ("Sn", 4): 0.83,
    ("Nb", 5): 0.78,
    ("La", 3): 1.172,
    ("Al", 3): 0.675,
    ("F", -1): 1.19,
    ("Cl", -1): 1.67,
    ("Br", -1): 1.82,
    ("O", -2): 1.26,
    ("S", -2): 1.70,
}


class OxidationStateError(ValueError):
    """The oxidation states of a structure are unknown, ambiguous or not charge-neutral."""


@dataclass(frozen=True)
class Prototype:
    """A prototype structure in nominal units: lattice rows, fractional sites and roles.

    Roles are the keys a composition maps to elements (``"M"``, ``"X"``; ``"A"``, ``"B"``,
    ``"X"`` for perovskites). ``roles`` lists the role of each site, in site order.
    """

    name: str
    lattice: tuple[tuple[float, float, float], ...]
    frac_coords: tuple[tuple[float, float, float], ...]
    roles: tuple[str, ...]


def _hexagonal(c_over_a: float) -> tuple[tuple[float, float, float], ...]:
    return ((1.0, 0.0, 0.0), (-0.5, np.sqrt(3.0) / 2.0, 0.0), (0.0, 0.0, c_over_a))


_FCC = ((0.0, 0.5, 0.5), (0.5, 0.0, 0.5), (0.5, 0.5, 0.0))
_CUBIC = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
_U_RUTILE = 0.305
_U_WURTZITE = 0.375

#: The prototypes, by name.
PROTOTYPES: dict[str, Prototype] = {
    p.name: p
    for p in (
        Prototype("rocksalt", _FCC, ((0, 0, 0), (0.5, 0.5, 0.5)), ("M", "X")),
        Prototype("cscl", _CUBIC, ((0, 0, 0), (0.5, 0.5, 0.5)), ("M", "X")),
        Prototype("zincblende", _FCC, ((0, 0, 0), (0.25, 0.25, 0.25)), ("M", "X")),
        Prototype(
            "wurtzite",
            _hexagonal(float(np.sqrt(8.0 / 3.0))),
            (
                (1 / 3, 2 / 3, 0.0),
                (2 / 3, 1 / 3, 0.5),
                (1 / 3, 2 / 3, _U_WURTZITE),
                (2 / 3, 1 / 3, 0.5 + _U_WURTZITE),
            ),
            ("M", "M", "X", "X"),
        ),
        Prototype(
            "nias",
            _hexagonal(1.39),
            ((0, 0, 0), (0, 0, 0.5), (1 / 3, 2 / 3, 0.25), (2 / 3, 1 / 3, 0.75)),
            ("M", "M", "X", "X"),
        ),
        Prototype(
            "fluorite", _FCC, ((0, 0, 0), (0.25, 0.25, 0.25), (0.75, 0.75, 0.75)), ("M", "X", "X")
        ),
        Prototype(
            "rutile",
            ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 0.644)),
            (
                (0, 0, 0),
                (0.5, 0.5, 0.5),
                (_U_RUTILE, _U_RUTILE, 0),
                (1 - _U_RUTILE, 1 - _U_RUTILE, 0),
                (0.5 + _U_RUTILE, 0.5 - _U_RUTILE, 0.5),
                (0.5 - _U_RUTILE, 0.5 + _U_RUTILE, 0.5),
            ),
            ("M", "M", "X", "X", "X", "X"),
        ),
        Prototype(
            "cdi2",
            _hexagonal(1.61),
            ((0, 0, 0), (1 / 3, 2 / 3, 0.25), (2 / 3, 1 / 3, 0.75)),
            ("M", "X", "X"),
        ),
        Prototype(
            "perovskite",
            _CUBIC,
            ((0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)),
            ("A", "B", "X", "X", "X"),
        ),
    )
}


@dataclass(frozen=True)
class Composition:
    """A composition: which element fills each role, with its oxidation state."""

    formula: str
    elements: Mapping[str, tuple[str, int]]  # role -> (element, charge)
    prototypes: tuple[str, ...]


_AB = ("rocksalt", "cscl", "zincblende", "wurtzite", "nias")
_AB2 = ("fluorite", "rutile", "cdi2")

#: The compositions, each with the prototypes it is built in.
COMPOSITIONS: tuple[Composition, ...] = (
    Composition("NaCl", {"M": ("Na", 1), "X": ("Cl", -1)}, _AB),
    Composition("KBr", {"M": ("K", 1), "X": ("Br", -1)}, _AB),
    Composition("LiF", {"M": ("Li", 1), "X": ("F", -1)}, _AB),
    Composition("MgO", {"M": ("Mg", 2), "X": ("O", -2)}, _AB),
    Composition("CaO", {"M": ("Ca", 2), "X": ("O", -2)}, _AB),
    Composition("ZnS", {"M": ("Zn", 2), "X": ("S", -2)}, _AB),
    Composition("CaF2", {"M": ("Ca", 2), "X": ("F", -1)}, _AB2),
    Composition("MgF2", {"M": ("Mg", 2), "X": ("F", -1)}, _AB2),
    Composition("ZrO2", {"M": ("Zr", 4), "X": ("O", -2)}, _AB2),
    Composition("TiO2", {"M": ("Ti", 4), "X": ("O", -2)}, _AB2),
    # anti-structures: the anion on the cation site
    Composition("Li2O", {"M": ("O", -2), "X": ("Li", 1)}, _AB2),
    Composition("Na2S", {"M": ("S", -2), "X": ("Na", 1)}, _AB2),
    Composition("SrTiO3", {"A": ("Sr", 2), "B": ("Ti", 4), "X": ("O", -2)}, ("perovskite",)),
    Composition("BaZrO3", {"A": ("Ba", 2), "B": ("Zr", 4), "X": ("O", -2)}, ("perovskite",)),
    Composition("LaAlO3", {"A": ("La", 3), "B": ("Al", 3), "X": ("O", -2)}, ("perovskite",)),
    Composition("KNbO3", {"A": ("K", 1), "B": ("Nb", 5), "X": ("O", -2)}, ("perovskite",)),
)

# Minimum separations, as fractions of the sum of the ionic radii, that the scaled
# prototypes respect exactly and that displaced structures must keep.
_CONTACT_OPPOSITE = 1.0
_CONTACT_SAME = 0.8
_MIN_OPPOSITE = 0.75
_MIN_SAME = 0.6


def _radii_and_charges(composition: Composition, roles: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    radii = np.array([IONIC_RADII[composition.elements[r]] for r in roles])
    charges = np.array([composition.elements[r][1] for r in roles], dtype=float)
    return radii, charges


def _contact_ratio(structure: Structure, radii: np.ndarray, charges: np.ndarray) -> np.ndarray:
    """Pairwise (distance / allowed-minimum) ratios, including each site's own images."""
    dist = structure.distance_matrix.copy()
    same = np.equal.outer(np.sign(charges), np.sign(charges))
    allowed = np.add.outer(radii, radii) * np.where(same, _CONTACT_SAME, _CONTACT_OPPOSITE)
    np.fill_diagonal(dist, min(structure.lattice.abc))  # nearest image of the site itself
    return dist / allowed


def prototype_structure(prototype: str, composition: Composition | str) -> tuple[Structure, dict[str, int]]:
    """The ideal prototype filled with a composition, scaled to touching ionic radii.

    :param prototype: a key of :data:`PROTOTYPES`.
    :param composition: a :class:`Composition` or its formula (a key in :data:`COMPOSITIONS`).
    :return: the structure (plain elements, Angstrom) and its oxidation states by element.
    """
    if isinstance(composition, str):
        matches = [c for c in COMPOSITIONS if c.formula == composition]
        if not matches:
            raise ValueError(f"unknown composition {composition!r}; known: {[c.formula for c in COMPOSITIONS]}")
        composition = matches[0]
    proto = PROTOTYPES[prototype]
    species = [composition.elements[r][0] for r in proto.roles]
    structure = Structure(Lattice(np.array(proto.lattice)), species, np.array(proto.frac_coords))
    radii, charges = _radii_and_charges(composition, proto.roles)
    scale = 1.0 / float(_contact_ratio(structure, radii, charges).min())
    structure = Structure(
        Lattice(structure.lattice.matrix * scale), species, structure.frac_coords
    )
    oxidation_states = {el: ch for el, ch in composition.elements.values()}
    return structure, oxidation_states


def guess_oxidation_states(structure: Structure) -> dict[str, float]:
    """Oxidation states by element: from decorated species, else pymatgen's best guess.

    :raises OxidationStateError: if no charge-neutral assignment is found.
    """
    charges: dict[str, float] = {}
    decorated = True
    for site in structure:
        for sp in site.species:
            oxi = getattr(sp, "oxi_state", None)
            if oxi is None:
                decorated = False
                break
            charges[sp.symbol] = float(oxi)
    if decorated and charges:
        return charges
    guesses = structure.composition.oxi_state_guesses(max_sites=-1)
    if not guesses:
        raise OxidationStateError(
            f"cannot determine oxidation states of {structure.composition.reduced_formula}: "
            "no charge-neutral assignment found; pass them explicitly"
        )
    charges = {el: float(ch) for el, ch in guesses[0].items()}
    if not any(charges.values()):
        raise OxidationStateError(
            f"cannot determine oxidation states of {structure.composition.reduced_formula}: "
            "the only neutral assignment has zero charge on every element (not an ionic crystal)"
        )
    return charges


def ewald_energy_per_atom(structure: Structure, oxidation_states: Mapping[str, float] | None = None) -> float:
    """Ewald (point-charge Coulomb) energy per atom of an ionic structure, in eV/atom.

    :param structure: a pymatgen ``Structure``; ordered (one species per site).
    :param oxidation_states: charge of each element, e.g. ``{"Na": 1, "Cl": -1}``; when
        omitted, the structure's own oxidation states are used, else pymatgen's guess.
    :raises OxidationStateError: when the charges are unknown or the cell is not neutral.
    """
    if not structure.is_ordered:
        raise OxidationStateError(
            f"{structure.composition.reduced_formula}: partial occupancies are not supported by the Ewald energy"
        )
    if oxidation_states is None:
        oxidation_states = guess_oxidation_states(structure)
    missing = {el.symbol for el in structure.composition.elements} - set(oxidation_states)
    if missing:
        raise OxidationStateError(f"no oxidation state given for element(s) {sorted(missing)}")
    decorated = structure.copy()
    decorated.remove_oxidation_states()
    decorated.add_oxidation_state_by_element(dict(oxidation_states))
    total_charge = sum(oxidation_states[site.specie.symbol] for site in structure)
    if abs(total_charge) > 1e-6:
        raise OxidationStateError(
            f"{structure.composition.reduced_formula}: the cell is not charge neutral "
            f"(total charge {total_charge:+g} e with {dict(oxidation_states)})"
        )
    return float(EwaldSummation(decorated).total_energy) / len(structure)


_SUPERCELLS = ((2, 1, 1), (1, 2, 1), (1, 1, 2))
_UNIMODULAR = (
    ((1, 1, 0), (0, 1, 0), (0, 0, 1)),
    ((1, 0, 0), (1, 1, 0), (0, 0, 1)),
    ((1, 0, 1), (0, 1, 0), (0, 0, 1)),
    ((0, 1, 0), (0, 0, 1), (1, 0, 0)),
    ((1, 0, 0), (0, 1, 1), (0, 0, 1)),
)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _is_valid(structure: Structure, charges: np.ndarray, radii: np.ndarray) -> bool:
    dist = structure.distance_matrix.copy()
    same = np.equal.outer(np.sign(charges), np.sign(charges))
    allowed = np.add.outer(radii, radii) * np.where(same, _MIN_SAME, _MIN_OPPOSITE)
    np.fill_diagonal(dist, np.inf)
    return bool((dist >= allowed).all() and min(structure.lattice.abc) >= 2 * radii.max() * _MIN_SAME)


def _perturbed(
    base: Structure, composition: Composition, roles: Sequence[str], rng: np.random.Generator, max_atoms: int
) -> Structure:
    """Strain, optionally enlarge and randomly displace a scaled prototype."""
    strain = rng.normal(scale=0.03, size=(3, 3))
    strain = 0.5 * (strain + strain.T) + np.eye(3) * rng.uniform(-0.04, 0.06)
    lattice = Lattice(base.lattice.matrix @ (np.eye(3) + strain))
    structure = Structure(lattice, base.species, base.frac_coords)
    site_roles = list(roles)
    if rng.random() < 0.25 and 2 * len(structure) <= max_atoms:
        scaling = _SUPERCELLS[rng.integers(len(_SUPERCELLS))]
        structure.make_supercell(scaling)
        site_roles = [r for r in roles for _ in range(int(np.prod(scaling)))]
    radii, charges = _radii_and_charges(composition, site_roles)
    bond = float(radii.min() + radii.max())
    sigma = rng.uniform(0.0, 0.07) * bond
    displacements = rng.normal(size=(len(structure), 3))
    for _ in range(6):
        candidate = Structure(
            structure.lattice, structure.species, structure.cart_coords + sigma * displacements, coords_are_cartesian=True
        )
        if _is_valid(candidate, charges, radii):
            return candidate
        sigma *= 0.5
    return structure


def _near_duplicate(structure: Structure, rng: np.random.Generator) -> Structure:
    """The same crystal in another cell, rotated, reordered and displaced by ~0.01 Angstrom."""
    dup = structure.copy()
    dup.make_supercell(_UNIMODULAR[rng.integers(len(_UNIMODULAR))])
    rotation = _random_rotation(rng)
    order = rng.permutation(len(dup))
    cart = dup.cart_coords[order] @ rotation.T + rng.normal(scale=0.01 / np.sqrt(3), size=(len(dup), 3))
    lattice = Lattice(dup.lattice.matrix @ rotation.T)
    return Structure(lattice, [dup.species[i] for i in order], cart, coords_are_cartesian=True, to_unit_cell=True)


def ewald_landscape(
    n: int = 200, seed: int = 0, duplicate_fraction: float = 0.08, max_atoms: int = 24
) -> tuple[list[str], list[Structure], dict[str, np.ndarray], dict[str, str]]:
    """A seeded landscape of ionic polymorphs labelled with their Ewald energy.

    :param n: number of structures (>= 1).
    :param seed: seed of the random generator; the same seed gives the same landscape.
    :param duplicate_fraction: fraction of the records that are near-duplicates of
        earlier records (identifier suffix ``-dup``).
    :param max_atoms: no supercell is made beyond this many atoms.
    :return: ``(ids, structures, targets, units)``: ``n`` identifiers such as
        ``"NaCl-rocksalt-1"``, ``n`` pymatgen structures (plain elements, Angstrom),
        ``{"ewald_energy_per_atom": array of shape (n,)}`` in eV/atom, and
        ``{"ewald_energy_per_atom": "eV/atom"}``.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 0.0 <= duplicate_fraction < 1.0:
        raise ValueError(f"duplicate_fraction must be in [0, 1), got {duplicate_fraction}")
    rng = np.random.default_rng(seed)
    pairs = [(c, p) for c in COMPOSITIONS for p in c.prototypes]
    n_dup = int(round(duplicate_fraction * n)) if n >= 10 else 0
    n_base = n - n_dup

    ids: list[str] = []
    structures: list[Structure] = []
    charges: list[dict[str, int]] = []
    counters: dict[str, int] = {}
    bases: dict[str, tuple[Structure, dict[str, int]]] = {}
    order: list[int] = []
    while len(order) < n_base:
        order.extend(rng.permutation(len(pairs)).tolist())
    for index in order[:n_base]:
        composition, proto = pairs[index]
        key = f"{composition.formula}-{proto}"
        if key not in bases:
            bases[key] = prototype_structure(proto, composition)
        base, oxidation = bases[key]
        counters[key] = counters.get(key, 0) + 1
        ids.append(f"{key}-{counters[key]}")
        structures.append(_perturbed(base, composition, PROTOTYPES[proto].roles, rng, max_atoms))
        charges.append(oxidation)

    for original in sorted(rng.choice(n_base, size=n_dup, replace=False).tolist()):
        ids.append(f"{ids[original]}-dup")
        structures.append(_near_duplicate(structures[original], rng))
        charges.append(charges[original])

    energies = np.array([ewald_energy_per_atom(s, q) for s, q in zip(structures, charges)])
    return ids, structures, {TARGET_NAME: energies}, {TARGET_NAME: TARGET_UNIT}
