"""Structural descriptors from ``dscribe`` (Himanen et al., *Comput. Phys. Commun.* 247,
106949 (2020); Laakso et al., *J. Chem. Phys.* 158, 234802 (2023); Apache-2.0) behind one
adapter, so that each is a :class:`~aiida_crystinv.representations.Descriptor`:

* :func:`sine_matrix` -- sine Coulomb matrix (Faber et al. 2015), rows sorted by norm,
  flattened, shape (n*n,) with n the number of atoms (or the padded size);
* :func:`ewald_sum_matrix` -- Ewald sum matrix (Faber et al. 2015), same layout;
* :func:`soap` -- smooth overlap of atomic positions (Bartok et al. 2013), averaged over
  the sites (``average="inner"``), periodic;
* :func:`mbtr` -- many-body tensor representation (Huo & Rupp 2022), k=2 inverse
  distances, exponential weighting, L2-normalised, periodic;
* :func:`acsf` -- atom-centred symmetry functions (Behler 2011), mean over the sites.

Every function returns a descriptor whose ``compute`` takes an ordered pymatgen
``Structure`` (partial occupancies are refused with a message). SOAP, MBTR and ACSF need a
species list: give it, or :meth:`Descriptor.bind` the descriptor to a dataset (the union of
its elements); unbound, the structure's own elements are used. The two matrices have one
row per atom of the *given cell*: unbound (``n_atoms_max=None``), a supercell gives a
longer value, which is the point the audit makes; bound with ``fixed_shape=True`` they are
zero-padded to the largest structure, as dscribe recommends for learning.

The ``dscribe`` 2.1 releases build their internal ``System`` by passing arguments to
``ase.Atoms`` by position, which ase 3.28+ no longer accepts; :func:`_dscribe` repairs
that one constructor (keyword arguments, same values) when, and only when, it is broken.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np

from ._base import Descriptor, DescriptorError

__all__ = ["sine_matrix", "ewald_sum_matrix", "soap", "mbtr", "acsf", "to_ase", "dscribe_object"]


@functools.lru_cache(maxsize=1)
def _dscribe():
    """Import dscribe (and repair its ``System`` constructor on ase >= 3.28)."""
    try:
        import dscribe.descriptors as dd
        from ase import Atoms
        from dscribe.core import system as dsys
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DescriptorError("dscribe descriptors need the 'dscribe' package: pip install 'aiida-crystinv[repr]'") from exc
    try:
        dsys.System.from_atoms(Atoms("H", cell=[2.0, 2.0, 2.0], pbc=True))
    except TypeError:
        def __init__(self, symbols=None, positions=None, numbers=None, tags=None, momenta=None, masses=None,
                     magmoms=None, charges=None, scaled_positions=None, cell=None, pbc=None, celldisp=None,
                     constraint=None, calculator=None, info=None, wyckoff_positions=None, equivalent_atoms=None):
            Atoms.__init__(self, symbols=symbols, positions=positions, numbers=numbers, tags=tags, momenta=momenta,
                           masses=masses, magmoms=magmoms, charges=charges, scaled_positions=scaled_positions,
                           cell=cell, pbc=pbc, celldisp=celldisp, constraint=constraint, calculator=calculator,
                           info=info)
            self.wyckoff_positions = wyckoff_positions
            self.equivalent_atoms = equivalent_atoms
            self._cell_inverse = None
            self._displacement_tensor = None
            self._distance_matrix = None
            self._inverse_distance_matrix = None

        dsys.System.__init__ = __init__
    return dd


def to_ase(structure):
    """An ``ase.Atoms`` (periodic) of an ordered pymatgen ``Structure``."""
    from ase import Atoms

    if not hasattr(structure, "lattice") or not hasattr(structure, "is_ordered"):
        raise DescriptorError(f"expected a pymatgen Structure, got {type(structure).__name__}")
    if not structure.is_ordered:
        raise DescriptorError(f"{structure.composition.reduced_formula}: dscribe descriptors need an ordered "
                              "structure (this one has partial occupancies)")
    return Atoms(symbols=[site.specie.symbol for site in structure], positions=structure.cart_coords,
                 cell=structure.lattice.matrix, pbc=True)


def _elements(structure) -> tuple[str, ...]:
    return tuple(sorted({el.symbol for el in structure.composition.elements}))


def _union(structures: Sequence[Any]) -> tuple[str, ...]:
    return tuple(sorted({el.symbol for s in structures for el in s.composition.elements}))


# ---------------------------------------------------------------------------- matrices
@functools.lru_cache(maxsize=64)
def _matrix_obj(kind: str, n: int, permutation: str):
    dd = _dscribe()
    cls = dd.SineMatrix if kind == "sine" else dd.EwaldSumMatrix
    return cls(n_atoms_max=n, permutation=permutation, sparse=False)


def _matrix(structure, kind: str, n_atoms_max: int | None, permutation: str) -> np.ndarray:
    n = len(structure) if n_atoms_max is None else int(n_atoms_max)
    if len(structure) > n:
        raise DescriptorError(f"{structure.composition.reduced_formula}: {len(structure)} atoms exceed "
                              f"n_atoms_max={n} of the {kind} matrix")
    return np.asarray(_matrix_obj(kind, n, permutation).create(to_ase(structure)), float).ravel()


def _matrix_descriptor(kind: str, name: str, n_atoms_max: int | None, permutation: str) -> Descriptor:
    if permutation not in ("sorted_l2", "eigenspectrum", "none"):
        raise DescriptorError(f"permutation must be 'sorted_l2', 'eigenspectrum' or 'none', got {permutation!r}")
    if n_atoms_max is not None and (isinstance(n_atoms_max, bool) or int(n_atoms_max) < 1):
        raise DescriptorError(f"n_atoms_max must be a positive integer or None, got {n_atoms_max!r}")

    def binder(structures, fixed_shape):
        n = max(len(s) for s in structures) if fixed_shape else n_atoms_max
        return _matrix_descriptor(kind, name, n, permutation)

    return Descriptor(
        name=name,
        compute=functools.partial(_matrix, kind=kind, n_atoms_max=n_atoms_max, permutation=permutation),
        metric="chebyshev",
        params={"n_atoms_max": n_atoms_max, "permutation": permutation},
        unit="eV" if kind == "ewald" else "a.u. (Z^2/Angstrom)",
        binder=binder,
    )


def sine_matrix(n_atoms_max: int | None = None, permutation: str = "sorted_l2") -> Descriptor:
    """Sine Coulomb matrix, flattened, shape (n*n,); ``n_atoms_max=None``: n = atoms in the cell."""
    return _matrix_descriptor("sine", "sine_matrix", n_atoms_max, permutation)


def ewald_sum_matrix(n_atoms_max: int | None = None, permutation: str = "sorted_l2") -> Descriptor:
    """Ewald sum matrix (nuclear charges, dscribe's defaults), flattened, shape (n*n,)."""
    return _matrix_descriptor("ewald", "ewald_sum_matrix", n_atoms_max, permutation)


# ---------------------------------------------------------------------------- local environments
@functools.lru_cache(maxsize=64)
def _local_obj(kind: str, species: tuple[str, ...], params: tuple):
    dd = _dscribe()
    p = dict(params)
    if kind == "soap":
        return dd.SOAP(species=list(species), r_cut=p["r_cut"], n_max=p["n_max"], l_max=p["l_max"],
                       sigma=p["sigma"], periodic=True, average="inner", sparse=False)
    if kind == "mbtr":
        return dd.MBTR(species=list(species), geometry={"function": "inverse_distance"},
                       grid={"min": 0.0, "max": 1.0, "n": p["n"], "sigma": p["sigma"]},
                       weighting={"function": "exp", "scale": p["scale"], "threshold": 1e-3},
                       periodic=True, normalization="l2", sparse=False)
    return dd.ACSF(species=list(species), r_cut=p["r_cut"], g2_params=[[1.0, 1.0], [1.0, 2.0], [1.0, 3.0]],
                   g4_params=[[1.0, 1.0, 1.0], [1.0, 2.0, 1.0], [1.0, 1.0, -1.0]], periodic=True, sparse=False)


def _local(structure, kind: str, species: tuple[str, ...] | None, params: tuple) -> np.ndarray:
    own = _elements(structure)
    sp = own if species is None else species
    extra = sorted(set(own) - set(sp))
    if extra:
        raise DescriptorError(f"{structure.composition.reduced_formula}: element(s) {extra} are not in the "
                              f"{kind} species list {list(sp)}")
    out = np.asarray(_local_obj(kind, tuple(sp), params).create(to_ase(structure)), float)
    if kind == "acsf":
        out = out.mean(axis=0)
    return out.ravel()


def _local_descriptor(kind: str, species: Sequence[str] | None, params: dict, unit: str) -> Descriptor:
    sp = None if species is None else tuple(sorted(set(species)))
    frozen = tuple(sorted(params.items()))

    def binder(structures, fixed_shape):
        return _local_descriptor(kind, _union(structures), params, unit)

    return Descriptor(
        name=kind,
        compute=functools.partial(_local, kind=kind, species=sp, params=frozen),
        metric="chebyshev",
        params={"species": None if sp is None else list(sp), **params},
        unit=unit,
        binder=binder,
    )


def dscribe_object(descriptor: Descriptor):
    """The dscribe object behind a ``soap`` / ``mbtr`` / ``acsf`` descriptor of this module
    that has a species list (built, and cached, here: dscribe checks its settings then).

    Raises:
        DescriptorError: not such a descriptor, or no species list.
        ValueError: settings dscribe refuses (its message).
    """
    params = dict(descriptor.params)
    species = params.pop("species", None)
    if descriptor.name not in ("soap", "mbtr", "acsf") or species is None:
        raise DescriptorError(f"{descriptor.name!r}: only a soap, mbtr or acsf descriptor with a species list "
                              "has one dscribe object")
    return _local_obj(descriptor.name, tuple(species), tuple(sorted(params.items())))


def soap(species: Sequence[str] | None = None, r_cut: float = 5.0, n_max: int = 4, l_max: int = 3,
         sigma: float = 0.5) -> Descriptor:
    """Site-averaged SOAP power spectrum (r_cut, sigma in Angstrom)."""
    return _local_descriptor("soap", species, {"r_cut": float(r_cut), "n_max": int(n_max), "l_max": int(l_max),
                                               "sigma": float(sigma)}, "a.u.")


def mbtr(species: Sequence[str] | None = None, n: int = 100, sigma: float = 0.02, scale: float = 1.0) -> Descriptor:
    """k=2 MBTR of inverse distances on [0, 1] 1/Angstrom with ``n`` grid points, Gaussian
    width ``sigma`` (1/Angstrom), weights exp(-scale * r), L2-normalised."""
    return _local_descriptor("mbtr", species, {"n": int(n), "sigma": float(sigma), "scale": float(scale)}, "a.u.")


def acsf(species: Sequence[str] | None = None, r_cut: float = 6.0) -> Descriptor:
    """ACSF (G1, three G2 and three G4 functions per species / pair), averaged over sites."""
    return _local_descriptor("acsf", species, {"r_cut": float(r_cut)}, "a.u.")
