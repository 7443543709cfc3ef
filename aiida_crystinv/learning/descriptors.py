"""Feature vectors ("features") of crystals for vector models: isometry-invariant parts,
and the representations of :mod:`aiida_crystinv.representations` as parts beside them.

Every feature part is a named, parametrised, deterministic function of one structure
whose length depends on the parameters only. The package's own parts (``amd`` ...
``site_roles``) are built only from interatomic distances (the exact periodic
k-nearest-neighbour lists that AMD/PDD are made of), the volume per atom and the
composition -- never from cell parameters or fractional coordinates -- so they are
invariant under any change of unit cell (supercells, skewed unimodular cell changes),
origin, rotation, reflection and atom order. The representation parts (``embedding``,
``soap``, ``mbtr``, ``acsf``, ``sine_matrix``, ``ewald_sum_matrix``) are the adapters'
values, as they are; the sine and Ewald sum matrices are NOT invariant (see the audit in
``docs/representations.md``).

Use :func:`describe`::

    X = describe("amd", structures, k=100)                       # (n, 100), Angstrom
    X = describe("amd+element_stats", structures, amd={"k": 50})   # joined, per-part params
    describe_spec("pdd_stats", k=8)   # {'name': 'pdd_stats', 'params': {'k': 8}}

:data:`FEATURES` lists every name with its defaults; a composite name joins parts
with ``+`` and takes each part's parameters as a dict keyed by the part's name (or, for
convenience, flat keyword arguments that exactly one part accepts).

Registered features (defaults in brackets; p = 18 element properties, see
:data:`aiida_crystinv.invariants.elements.ELEMENT_PROPERTIES`, the package's one element
table):

* ``amd`` (k=100) -- AMD_k, (k,) Angstrom: the same numbers as the invariant
  :func:`aiida_crystinv.invariants.amd`.
* ``pdd_stats`` (k=16, scale_free=False) -- weighted mean/std/min/max of the PDD rows'
  first k distances, (4k,).
* ``element_stats`` -- atom-fraction-weighted mean/std/min/max of element properties, (4p,).
  Not the composition invariant (:func:`aiida_crystinv.invariants.composition`: mean,
  std, min, max, range of 11 properties), hence its own name; ``composition`` is refused
  here with a pointer to ``element_stats``.
* ``density`` -- volume per atom and its log, mass density, packing fraction, valence
  electron density, volume relative to the elemental solids, log10 mean elemental bulk
  modulus, (7,); column 0 is the volume per atom (for ``scale_column=0`` models).
* ``element_roles`` (n_roles=2, k=48, n_shell=12, k_pair=1, scale_free=False) -- per
  element ranked by electronegativity: element properties, the element's AMD_k,
  element-pair nearest distances and neighbour shares (binary compounds).
* ``site_roles`` (cation_fraction=0.4, n_cations=2, cn=6, k=12) -- geometric A / B / X
  roles of ABX3 perovskites (octahedral B found from distances), element properties and
  distances per role.

Representation parts (computed from the pymatgen ``Structure``; a ``Crystal`` is turned
into one; need the ``repr`` extra). Whatever would depend on a dataset is a parameter, so
that a row never depends on the other structures:

* ``embedding`` (embedding='mat2vec', pooling='mean') -- the element embedding of
  ``elementembeddings`` pooled over the composition, (dim,): the value of
  ``get_descriptor('embedding:<embedding>:<pooling>')``.
* ``sine_matrix``, ``ewald_sum_matrix`` (n_atoms_max: required, permutation='sorted_l2')
  -- dscribe's matrices zero-padded to ``n_atoms_max`` atoms, flattened, (n_atoms_max^2,)
  (``eigenspectrum``: (n_atoms_max,)); a structure with more atoms is refused.
* ``soap`` (species: required, r_cut=5.0, n_max=4, l_max=3, sigma=0.5), ``mbtr``
  (species, n=100, sigma=0.02, scale=1.0), ``acsf`` (species, r_cut=6.0) -- dscribe's
  descriptors over the fixed, sorted species list; a structure with another element is
  refused.

Disordered sites are weighted by their occupancy and carry the occupancy-weighted mean of
their species' element properties (the embedding uses the occupancy-weighted composition;
dscribe refuses partial occupancies).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..invariants.elements import ELEMENT_PROPERTIES, element_property_matrix
from ._representation_parts import (
    _acsf,
    _check_embedding,
    _check_matrix,
    _embedding,
    _ewald_sum_matrix,
    _mbtr,
    _signature_defaults,
    _sine_matrix,
    _soap,
    _species_check,
)

__all__ = [
    "SiteTable",
    "Feature",
    "FEATURES",
    "site_table",
    "describe",
    "describe_spec",
    "feature_names",
    "feature_defaults",
    "register_feature",
]

_P = len(ELEMENT_PROPERTIES)
_X = ELEMENT_PROPERTIES.index("X")
_RADIUS = ELEMENT_PROPERTIES.index("atomic_radius")
_MASS = ELEMENT_PROPERTIES.index("atomic_mass")
_NVAL = ELEMENT_PROPERTIES.index("n_valence")
_MOLVOL = ELEMENT_PROPERTIES.index("molar_volume")
_BULK = ELEMENT_PROPERTIES.index("bulk_modulus")
_AVOGADRO = 6.02214076e23


@dataclass(frozen=True)
class SiteTable:
    """Exact neighbour lists of every motif point of one crystal.

    Attributes:
        weights: (m,) site weights (occupancies) normalised to sum 1.
        dists: (m, k) sorted distances to the k nearest neighbours, Angstrom.
        nbr: (m, k) motif index of each of those neighbours.
        props: (m, p) element properties of each site (occupancy-weighted mean over the
            site's species), columns as ``ELEMENT_PROPERTIES``.
        elements: length-m tuple, the majority element of each site.
        volume_per_atom: Angstrom^3 per (occupancy-weighted) atom.
        density: mass density, g/cm^3.
        label: name for error messages.
    """

    weights: np.ndarray
    dists: np.ndarray
    nbr: np.ndarray
    props: np.ndarray
    elements: tuple
    volume_per_atom: float
    density: float
    label: str = "structure"

    @property
    def k(self) -> int:
        return int(self.dists.shape[1])


def site_table(structure: Any, k: int, label: str | None = None) -> SiteTable:
    """Neighbour lists of every site (no symmetry reduction), see :class:`SiteTable`.

    Args:
        structure: a pymatgen ``Structure`` or anything
            :func:`aiida_crystinv.invariants.as_crystal` accepts.
        k: number of neighbours per site (>= 1).
    """
    from ..invariants import as_crystal
    from ..invariants._lattice import knn_distances, reduce_crystal

    if isinstance(structure, SiteTable):
        if structure.k < k:
            raise ValueError(f"{structure.label}: site table has k={structure.k} < {k}")
        return structure
    crystal = as_crystal(structure, label=label)
    cell, frac = reduce_crystal(crystal.cell, crystal.frac)
    dists, nbr = knn_distances(cell, frac, int(k), return_index=True)
    occ = crystal.occupancy
    props = np.zeros((crystal.n_sites, _P))
    elements = []
    for i, site in enumerate(crystal.species):
        symbols = [el for el, _ in site]
        w = np.array([o for _, o in site], dtype=float)
        props[i] = (w / w.sum()) @ element_property_matrix(symbols)
        elements.append(symbols[int(np.argmax(w))])
    n_atoms = float(occ.sum())
    mass = float(occ @ props[:, _MASS])
    return SiteTable(
        weights=occ / n_atoms,
        dists=np.asarray(dists, dtype=float),
        nbr=np.asarray(nbr, dtype=np.int64),
        props=props,
        elements=tuple(elements),
        volume_per_atom=crystal.volume / n_atoms,
        density=mass / _AVOGADRO / (crystal.volume * 1e-24),
        label=crystal.label,
    )


# ---------------------------------------------------------------------------------------
# helpers


def _wstats(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted mean, std, min, max over rows of (m, d) values -> (4 d,)."""
    values = np.asarray(values, dtype=float).reshape(len(weights), -1)
    w = weights / weights.sum()
    mean = w @ values
    std = np.sqrt(np.maximum(w @ (values - mean) ** 2, 0.0))
    return np.concatenate([mean, std, values.min(0), values.max(0)])


def _nearest_of(t: SiteTable, rows: np.ndarray, mask_sites: np.ndarray) -> np.ndarray:
    """Distance from each site in ``rows`` to its nearest neighbour among ``mask_sites``.

    Falls back to the k-th neighbour distance when none of the k neighbours qualifies.
    """
    hit = mask_sites[t.nbr[rows]]
    d = np.where(hit, t.dists[rows], np.inf).min(1)
    return np.where(np.isfinite(d), d, t.dists[rows, -1])


def _scaled(t: SiteTable) -> SiteTable:
    """The same table with distances in units of (volume per atom)^(1/3)."""
    from dataclasses import replace

    return replace(t, dists=t.dists / t.volume_per_atom ** (1.0 / 3.0))


def _first_of(t: SiteTable, rows: np.ndarray, mask_sites: np.ndarray, n: int) -> np.ndarray:
    """(len(rows), n) distances from each site in ``rows`` to its first n neighbours among
    ``mask_sites``; missing ones (beyond the table's k) repeat the last available distance
    (or the table's k-th distance when there is none)."""
    out = np.empty((len(rows), n))
    for j, i in enumerate(rows):
        d = t.dists[i][mask_sites[t.nbr[i]]]
        if d.size == 0:
            d = t.dists[i, -1:]
        out[j] = d[np.minimum(np.arange(n), d.size - 1)]
    return out


def _group_start(weights: np.ndarray, keys: tuple) -> np.ndarray:
    """For each item, the weight share of all items sorted strictly before its group.

    Items are sorted lexicographically by ``keys`` (last key most significant, as in
    ``np.lexsort``); items with equal keys form a group and share its start.
    """
    if len(weights) == 0:
        return np.zeros(0)
    order = np.lexsort(keys)
    w = weights[order] / weights.sum()
    stacked = np.stack([np.asarray(k)[order] for k in keys], 1)
    new_group = np.ones(len(order), bool)
    new_group[1:] = np.any(stacked[1:] != stacked[:-1], axis=1)
    before = np.concatenate([[0.0], np.cumsum(w)[:-1]])
    gid = np.cumsum(new_group) - 1
    first = before[new_group]
    out = np.empty(len(order))
    out[order] = first[gid]
    return out


# ---------------------------------------------------------------------------------------
# features: each takes a SiteTable and keyword parameters, returns a 1-D array


def _amd(t: SiteTable, k: int = 100) -> np.ndarray:
    """AMD_k: (k,) weighted mean of the sorted neighbour distances, Angstrom."""
    return t.weights @ t.dists[:, :k]


def _pdd_stats(t: SiteTable, k: int = 16, scale_free: bool = False) -> np.ndarray:
    """Statistics of PDD rows: weighted mean, std, min, max of the first k columns -> (4k,).

    Rows are per site (weights = occupancy share); the mean part equals AMD_k. With
    ``scale_free`` distances are divided by the cube root of the volume per atom.
    """
    if scale_free:
        t = _scaled(t)
    return _wstats(t.dists[:, :k], t.weights)


def _element_stats(t: SiteTable) -> np.ndarray:
    """Element-property statistics over atoms: weighted mean, std, min, max -> (4p,)."""
    return _wstats(t.props, t.weights)


def _density(t: SiteTable) -> np.ndarray:
    """Volume-based features -> (7,).

    [volume per atom (A^3), its log, mass density (g/cm^3), packing fraction of atomic
    radii, valence electrons per A^3, volume per atom over the atom-weighted volume of the
    elemental solids, log10 of the atom-weighted elemental bulk modulus (GPa)]. Column 0
    (volume per atom) is what ``scale_column=0`` of a model multiplies the target by.
    """
    r = t.props[:, _RADIUS]
    packing = float(t.weights @ (4.0 / 3.0 * np.pi * r**3)) / t.volume_per_atom
    n_val = float(t.weights @ t.props[:, _NVAL])
    v_elem = float(t.weights @ t.props[:, _MOLVOL]) / 0.602214076  # cm^3/mol -> A^3/atom
    k_elem = float(t.weights @ t.props[:, _BULK])
    return np.array([t.volume_per_atom, np.log(t.volume_per_atom), t.density, packing,
                     n_val / t.volume_per_atom, t.volume_per_atom / v_elem, np.log10(max(k_elem, 1e-3))])


def _element_roles(t: SiteTable, n_roles: int = 2, k: int = 48, n_shell: int = 12,
                   k_pair: int = 1, scale_free: bool = False) -> np.ndarray:
    """Per-element ("role") AMD, element properties and element-pair nearest distances.

    Elements are ranked by Pauling electronegativity (ties by Z); rank r is role r, with
    every element past ``n_roles - 1`` folded into the last role. For each role:
    presence flag, atom fraction, mean element properties (p), the role's AMD_k (mean
    distance rows of its sites), for every role s the mean distance from the role's
    sites to their nearest role-s neighbour and the share of role-s atoms among the first
    ``n_shell`` neighbours. Absent roles are zeros. ``k_pair`` > 1 extends the pair
    distance to the mean distances to the first ``k_pair`` role-s neighbours (a partial
    AMD per element pair; neighbours beyond the table repeat its last distance). Length
    n_roles * (2 + p + k + (k_pair + 1) n_roles).
    With ``scale_free`` distances are divided by the cube root of the volume per atom.
    """
    if scale_free:
        t = _scaled(t)
    elements = sorted(set(t.elements), key=lambda e: (float(t.props[t.elements.index(e), _X]),
                                                      float(t.props[t.elements.index(e), 0])))
    rank = {e: min(i, n_roles - 1) for i, e in enumerate(elements)}
    role = np.array([rank[e] for e in t.elements])
    n_shell = min(n_shell, t.k)
    out = []
    for r in range(n_roles):
        sites = np.flatnonzero(role == r)
        if sites.size == 0:
            out.append(np.zeros(2 + _P + k + (k_pair + 1) * n_roles))
            continue
        w = t.weights[sites]
        frac = float(w.sum())
        wn = w / frac
        parts = [np.array([1.0, frac]), wn @ t.props[sites], wn @ t.dists[sites, :k]]
        pair, share = np.zeros((n_roles, k_pair)), np.zeros(n_roles)
        for s in range(n_roles):
            mask = role == s
            if mask.any():
                pair[s] = wn @ _first_of(t, sites, mask, k_pair)
                share[s] = wn @ mask[t.nbr[sites, :n_shell]].mean(1)
        pair = pair.ravel()
        out.append(np.concatenate(parts + [pair, share]))
    return np.concatenate(out)


def _site_roles(t: SiteTable, cation_fraction: float = 0.4, n_cations: int = 2, cn: int = 6,
                k: int = 12) -> np.ndarray:
    """Geometric site roles for ABX3-like crystals (perovskites): A, B and X sites.

    Sites are sorted by electronegativity; the least electronegative share
    ``cation_fraction`` of atoms are cation sites, the rest anion (X) sites. Cation sites
    are split into ``n_cations`` roles of equal atom share in order of their mean
    distance to their ``cn`` nearest neighbours (octahedral B first, then A). Per cation
    role: element properties (p), distances to the first k neighbours, mean and std of
    the first ``cn`` distances, and the mean distance to the nearest X site and to the
    nearest site of each cation role. X sites are pooled (weighted mean/std/min/max of
    their properties, of their distances to the first k neighbours and of their distances
    to the nearest site of each cation role). Length
    n_cations (p + k + 3 + n_cations) + 4 (p + k + n_cations).
    """
    m = len(t.weights)
    cn = min(cn, t.k)
    x = t.props[:, _X]
    shell = t.dists[:, :cn].mean(1)
    # sites with equal (electronegativity, shell) form one group, assigned as a whole, so
    # that symmetry-equivalent sites (and the copies in a supercell) share their role
    xr, sr = np.round(x, 6), np.round(shell, 6)
    start = _group_start(t.weights, (sr, xr))
    is_cat = start < cation_fraction - 1e-9
    cats = np.flatnonzero(is_cat)
    cstart = _group_start(t.weights[cats], (xr[cats], sr[cats]))
    cat_role = np.full(m, -1)
    cat_role[cats] = np.minimum((cstart * n_cations + 1e-9).astype(int), n_cations - 1)
    anions = np.flatnonzero(~is_cat)
    kk = min(k, t.k)
    out = []
    sites = cats
    for r in range(n_cations):
        if (cat_role == r).any():
            sites = np.flatnonzero(cat_role == r)
        # else: fewer cation groups than roles -- repeat the previous role
        wn = t.weights[sites] / t.weights[sites].sum()
        near = [wn @ _nearest_of(t, sites, ~is_cat)]
        near += [wn @ _nearest_of(t, sites, cat_role == s) for s in range(n_cations)]
        out += [wn @ t.props[sites], wn @ t.dists[sites, :kk],
                np.array([wn @ shell[sites], wn @ t.dists[sites, :cn].std(1)]), np.array(near)]
    if anions.size == 0:
        anions = cats
    near = np.stack([_nearest_of(t, anions, cat_role == s) for s in range(n_cations)], 1)
    vals = np.concatenate([t.props[anions], t.dists[anions, :kk], near], 1)
    out.append(_wstats(vals, t.weights[anions]))
    return np.concatenate(out)


@dataclass(frozen=True)
class Feature:
    """A registered feature part: ``func(site_table, **params) -> (d,)`` or, for a part
    with ``takes_structure``, ``func(structure, **params) -> (d,)``.

    Attributes:
        name: registry name.
        func: the function of a :class:`SiteTable` (or of a pymatgen ``Structure``).
        defaults: default parameters (JSON-able).
        needs_k: function of the parameters giving how many neighbours per site it reads.
        doc: one-line description.
        takes_structure: ``func`` reads the pymatgen ``Structure``, not a :class:`SiteTable`.
        check: ``check(params) -> params``: validates (raises ``ValueError``) and
            normalises the full parameters of the part; ``None``: no check beyond the names.
    """

    name: str
    func: Callable[..., np.ndarray]
    defaults: dict
    needs_k: Callable[[dict], int]
    doc: str
    takes_structure: bool = False
    check: Callable[[dict], dict] | None = None


#: Every feature part, by name (join names with ``+`` for a composite).
FEATURES: dict[str, Feature] = {}


def register_feature(name: str, func: Callable[..., np.ndarray], needs_k: Callable[[dict], int], *,
                     takes_structure: bool = False, check: Callable[[dict], dict] | None = None) -> Feature:
    """Add a feature part to :data:`FEATURES` (defaults read from ``func``'s signature).

    Args:
        name: the part's name (no ``+``).
        func: ``func(site_table, **params)``, or ``func(structure, **params)`` with
            ``takes_structure`` (a pymatgen ``Structure``); returns a 1-D array whose length
            depends on the parameters only.
        needs_k: neighbours per site the part reads (ignored with ``takes_structure``).
        check: validates and normalises the part's full parameters (see :class:`Feature`).
    """
    if "+" in name:
        raise ValueError(f"feature names may not contain '+': {name!r}")
    if name in _RENAMED:
        raise ValueError(f"{name!r} is not available as a feature name: {_RENAMED[name]}")
    defaults = _signature_defaults(func)
    doc = (func.__doc__ or "").strip().splitlines()[0] if func.__doc__ else ""
    feature = Feature(name, func, defaults, needs_k, doc, takes_structure, check)
    FEATURES[name] = feature
    return feature


#: Names that are not features, with the reason (a name means one thing in the package).
_RENAMED = {
    "composition": "the features part of element-property statistics is called 'element_stats' "
    "(e.g. 'amd+element_stats'); 'composition' alone is the composition invariant "
    "(aiida_crystinv.invariants.composition: other statistics of other properties)",
}

register_feature("amd", _amd, lambda p: p["k"])
register_feature("pdd_stats", _pdd_stats, lambda p: p["k"])
register_feature("element_stats", _element_stats, lambda p: 1)
register_feature("density", _density, lambda p: 1)
register_feature("element_roles", _element_roles, lambda p: max(p["k"], p["n_shell"], 4 * p["k_pair"]))
register_feature("site_roles", _site_roles, lambda p: max(p["k"], p["cn"]))
register_feature("embedding", _embedding, lambda p: 0, takes_structure=True, check=_check_embedding)
register_feature("sine_matrix", _sine_matrix, lambda p: 0, takes_structure=True, check=_check_matrix)
register_feature("ewald_sum_matrix", _ewald_sum_matrix, lambda p: 0, takes_structure=True, check=_check_matrix)
register_feature("soap", _soap, lambda p: 0, takes_structure=True, check=_species_check("soap", _soap))
register_feature("mbtr", _mbtr, lambda p: 0, takes_structure=True, check=_species_check("mbtr", _mbtr))
register_feature("acsf", _acsf, lambda p: 0, takes_structure=True, check=_species_check("acsf", _acsf))


def feature_names() -> list[str]:
    """Names of the registered feature parts (join with '+' for a composite)."""
    return sorted(FEATURES)


def feature_defaults(name: str) -> dict:
    """Default parameters of a feature part; for a composite name, a dict per part."""
    parts = _parts(name)
    if len(parts) == 1:
        return dict(FEATURES[parts[0]].defaults)
    return {p: dict(FEATURES[p].defaults) for p in parts}


def _parts(name: str) -> list[str]:
    if not isinstance(name, str) or not name:
        raise ValueError(f"features name must be a non-empty string, got {name!r}")
    parts = [p.strip() for p in name.split("+")]
    for p in parts:
        if p in _RENAMED:
            raise ValueError(f"{name!r}: {p!r} is not a features part; {_RENAMED[p]}")
        if p not in FEATURES:
            raise ValueError(f"unknown features part {p!r}; known: {', '.join(feature_names())}")
    if len(set(parts)) != len(parts):
        raise ValueError(f"features {name!r} repeat a part")
    return parts


def _resolve(name: str, params: dict) -> list[tuple[str, dict]]:
    """Full parameters of each part of ``name``, validated."""
    parts = _parts(name)
    given = {p: {} for p in parts}
    for key, value in params.items():
        if key in given and isinstance(value, dict):
            given[key].update(value)
            continue
        owners = [p for p in parts if key in FEATURES[p].defaults]
        if len(owners) == 1:
            given[owners[0]][key] = value
        elif not owners:
            raise ValueError(f"features {name!r} have no parameter {key!r}; defaults: "
                             f"{feature_defaults(name)}")
        else:
            raise ValueError(f"parameter {key!r} is ambiguous in {name!r} (parts {owners}); "
                             f"pass it as {owners[0]}={{{key!r}: ...}}")
    out = []
    for p in parts:
        full = dict(FEATURES[p].defaults)
        for key, value in given[p].items():
            if key not in full:
                raise ValueError(f"features part {p!r} has no parameter {key!r}; defaults: {full}")
            full[key] = value
        for key in ("k", "n_roles", "n_cations", "cn", "n_shell"):
            if key in full and (isinstance(full[key], bool) or not isinstance(full[key], (int, np.integer))
                                or full[key] < 1):
                raise ValueError(f"features part {p!r}: {key} must be a positive integer, got {full[key]!r}")
        check = FEATURES[p].check
        if check is not None:
            try:
                full = check(full)
            except ValueError as exc:
                raise ValueError(f"features part {p!r}: {exc}") from None
        out.append((p, full))
    return out


def describe_spec(name: str, **params: Any) -> dict:
    """The normalised, JSON-able spec ``{'name': ..., 'params': ...}`` of features.

    For a single part ``params`` is flat; for a composite it is a dict per part.
    """
    resolved = _resolve(name, params)
    if len(resolved) == 1:
        return {"name": resolved[0][0], "params": resolved[0][1]}
    return {"name": "+".join(p for p, _ in resolved), "params": {p: prm for p, prm in resolved}}


def describe(name: str, structures: Sequence[Any], **params: Any) -> np.ndarray:
    """Feature matrix of ``structures`` for the features ``name``.

    Args:
        name: a name from :data:`FEATURES` or several joined with ``+``.
        structures: pymatgen ``Structure`` objects (or anything ``as_crystal`` accepts, or
            precomputed :class:`SiteTable` objects with enough neighbours; the
            representation parts such as ``soap`` need the structure, not a site table).
        **params: the parameters (see :func:`feature_defaults`).

    Returns:
        (n, d) float array; the same name, parameters and structures always give the same
        array, and each row depends on its own structure only. Distances in Angstrom.

    Raises:
        ValueError: unknown name or parameter; InvalidStructureError (a ValueError) for a
            structure no invariant can be computed for; a ValueError naming the structure
            for one a representation part refuses (more atoms than ``n_atoms_max``, an
            element outside ``species``, partial occupancies for dscribe, an element
            without a vector in the embedding).
    """
    resolved = [(FEATURES[p], prm) for p, prm in _resolve(name, params)]
    on_sites = [f.needs_k(prm) for f, prm in resolved if not f.takes_structure]
    k = max(on_sites, default=0)
    rows = []
    for i, s in enumerate(structures):
        label = s.label if isinstance(s, SiteTable) else getattr(s, "label", None) or f"structure {i}"
        t = site_table(s, k, label=None if isinstance(s, SiteTable) else label) if on_sites else None
        structure = _structure_of(s, label) if len(on_sites) < len(resolved) else None
        parts = []
        for f, prm in resolved:
            try:
                value = f.func(structure if f.takes_structure else t, **prm)
            except ValueError as exc:
                if not f.takes_structure:
                    raise
                raise ValueError(f"{label}: features part {f.name!r}: {exc}") from None
            parts.append(np.asarray(value, dtype=float).ravel())
        rows.append(np.concatenate(parts))
    if not rows:
        raise ValueError("describe: no structures given")
    return np.vstack(rows)


def _structure_of(obj: Any, label: str) -> Any:
    """The pymatgen ``Structure`` a representation part reads: ``obj`` itself (validated
    by ``as_crystal``) or one built from a ``Crystal`` / ``(cell, frac, species)`` (a
    disordered site becomes a site with the same species and occupancies)."""
    from ..invariants import as_crystal

    if isinstance(obj, SiteTable):
        raise ValueError(f"{label}: the representation parts (e.g. soap, embedding) need the structure, not a "
                         "site table")
    crystal = as_crystal(obj, label=label)
    if hasattr(obj, "lattice") and hasattr(obj, "is_ordered"):
        return obj
    from pymatgen.core import Lattice, Structure

    species = [s[0][0] if len(s) == 1 and s[0][1] == 1.0 else dict(s) for s in crystal.species]
    return Structure(Lattice(crystal.cell), species, crystal.frac, coords_are_cartesian=False)
