"""Feature parts computed from the structure by :mod:`aiida_crystinv.representations`
(element embeddings, dscribe's matrices, SOAP, MBTR, ACSF), with the checks of their
parameters; registered in :data:`aiida_crystinv.learning.descriptors.FEATURES`."""

from __future__ import annotations

import contextlib
import inspect
import warnings
from typing import Any, Callable, Iterator

import numpy as np


#: permutations of the sine / Ewald sum matrix parts (dscribe's, without ``random``)
MATRIX_PERMUTATIONS = ("sorted_l2", "eigenspectrum", "none")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hide the FutureWarning that dscribe triggers in ase and SOAP's LinAlgWarning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module="dscribe")
        warnings.filterwarnings("ignore", message="An ill-conditioned matrix")
        yield


def _with_adapter(name: str, structure: Any, **params: Any) -> np.ndarray:
    """The value of the representation ``name`` for one pymatgen ``Structure``
    (:func:`aiida_crystinv.representations.get_descriptor`)."""
    from ..representations import get_descriptor

    with _quiet():
        return get_descriptor(name, **params)(structure)


def _embedding(structure: Any, embedding: str = "mat2vec", pooling: str = "mean") -> np.ndarray:
    """Element embedding pooled over the composition (``elementembeddings``), (dim,)."""
    return _with_adapter(f"embedding:{embedding}:{pooling}", structure)


def _sine_matrix(structure: Any, n_atoms_max: int | None = None, permutation: str = "sorted_l2") -> np.ndarray:
    """dscribe sine matrix zero-padded to n_atoms_max atoms, flattened; NOT cell-invariant."""
    return _with_adapter("sine_matrix", structure, n_atoms_max=n_atoms_max, permutation=permutation)


def _ewald_sum_matrix(structure: Any, n_atoms_max: int | None = None, permutation: str = "sorted_l2") -> np.ndarray:
    """dscribe Ewald sum matrix zero-padded to n_atoms_max atoms, flattened; NOT cell-invariant."""
    return _with_adapter("ewald_sum_matrix", structure, n_atoms_max=n_atoms_max, permutation=permutation)


def _soap(structure: Any, species: list | None = None, r_cut: float = 5.0, n_max: int = 4, l_max: int = 3,
          sigma: float = 0.5) -> np.ndarray:
    """dscribe SOAP power spectrum averaged over the sites, over a fixed species list."""
    return _with_adapter("soap", structure, species=species, r_cut=r_cut, n_max=n_max, l_max=l_max, sigma=sigma)


def _mbtr(structure: Any, species: list | None = None, n: int = 100, sigma: float = 0.02,
          scale: float = 1.0) -> np.ndarray:
    """dscribe k=2 MBTR of inverse distances (L2-normalised), over a fixed species list."""
    return _with_adapter("mbtr", structure, species=species, n=n, sigma=sigma, scale=scale)


def _acsf(structure: Any, species: list | None = None, r_cut: float = 6.0) -> np.ndarray:
    """dscribe ACSF averaged over the sites, over a fixed species list."""
    return _with_adapter("acsf", structure, species=species, r_cut=r_cut)


#: integer parameters of the representation parts that may be 0 (the others must be >= 1)
_ZERO_OK = ("l_max",)


def _typed(params: dict, defaults: dict) -> dict:
    """Numbers of the type of their default: a positive int where the default is an int
    (>= 0 for :data:`_ZERO_OK`), a positive float (ints accepted) where it is a float;
    booleans are refused."""
    out = dict(params)
    for key, default in defaults.items():
        value = out[key]
        if isinstance(default, bool) or not isinstance(default, (int, float)):
            continue
        if isinstance(default, int):
            low = 0 if key in _ZERO_OK else 1
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                kind = "a non-negative" if low == 0 else "a positive"
                raise ValueError(f"{key} must be {kind} integer, got {value!r}")
            out[key] = int(value)
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not np.isfinite(value) or value <= 0:
                raise ValueError(f"{key} must be a positive number, got {value!r}")
            out[key] = float(value)
    return out


def _check_embedding(params: dict) -> dict:
    from ..representations.embeddings import composition_embedding

    for key in ("embedding", "pooling"):
        if not isinstance(params[key], str):
            raise ValueError(f"{key} must be a name, got {params[key]!r}")
    composition_embedding(params["embedding"], params["pooling"])  # DescriptorError (a ValueError)
    return dict(params)


def _check_matrix(params: dict) -> dict:
    n = params["n_atoms_max"]
    if n is None:
        raise ValueError("give n_atoms_max, the largest number of atoms per cell of any structure it will "
                         "describe: the matrix is zero-padded to that size, so that every structure gets a vector "
                         "of the same length (a structure with more atoms is refused)")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n_atoms_max must be a positive integer, got {n!r}")
    if params["permutation"] not in MATRIX_PERMUTATIONS:
        raise ValueError(f"permutation must be one of {', '.join(MATRIX_PERMUTATIONS)}, got {params['permutation']!r}")
    return {**params, "n_atoms_max": int(n)}


def _signature_defaults(func: Callable[..., np.ndarray]) -> dict:
    """Defaults of every parameter of ``func`` but the first (the site table / structure)."""
    return {p.name: p.default for p in list(inspect.signature(func).parameters.values())[1:]}


def _species_check(kind: str, func: Callable[..., np.ndarray]) -> Callable[[dict], dict]:
    """The check of a dscribe part over a species list (``soap``, ``mbtr``, ``acsf``)."""
    defaults = _signature_defaults(func)

    def check(params: dict) -> dict:
        from pymatgen.core import Element

        from ..representations import get_descriptor
        from ..representations.structural import dscribe_object

        species = params["species"]
        if species is None:
            raise ValueError("give species, the fixed list of elements it describes (e.g. species: [Na, Cl]): "
                             "the vector has channels per element, so its length must not depend on the "
                             "structures of a dataset (a structure with another element is refused)")
        if isinstance(species, str) or not isinstance(species, (list, tuple)) or not species \
                or not all(isinstance(e, str) for e in species):
            raise ValueError(f"species must be a non-empty list of element symbols, got {species!r}")
        bad = [e for e in species if not Element.is_valid_symbol(e)]
        if bad:
            raise ValueError(f"species {bad} are not element symbols")
        out = _typed({**params, "species": sorted(set(species))}, defaults)
        with _quiet():
            try:  # dscribe checks its own settings (SOAP: r_cut > 1 Angstrom, l_max <= 20, ...)
                dscribe_object(get_descriptor(kind, **out))
            except ValueError as exc:
                raise ValueError(f"dscribe refuses these settings: {exc}") from None
        return out

    return check
