"""Crystals <-> the packed record arrays that datasets store and workers read.

The layout (``n`` records, ``N`` sites, ``P`` species entries): ``cells`` (n, 3, 3)
float64, ``site_offsets`` (n + 1,) int64, ``frac`` (N, 3) float64, ``species_offsets``
(N + 1,) int64, ``species`` (P,) int16 (index into the sorted ``elements`` list),
``occupancies`` (P,) float64. One implementation for ``CrystalDatasetData`` (AiiDA) and the
worker program (no AiiDA).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ._crystal import Crystal

__all__ = ["pack_crystals", "crystals_from_arrays", "pack_pdds", "stack_records"]


def pack_crystals(crystals: Sequence[Crystal]) -> tuple[dict[str, np.ndarray], list[str]]:
    """The record arrays of validated ``crystals`` (see the module docstring) and their
    ``elements`` (sorted symbols)."""
    crystals = list(crystals)
    if not crystals:
        raise ValueError("no records to pack")
    n = len(crystals)
    elements = sorted({el for c in crystals for site in c.species for el, _ in site})
    el_index = {el: i for i, el in enumerate(elements)}
    cells = np.empty((n, 3, 3))
    site_offsets = np.zeros(n + 1, dtype=np.int64)
    for i, c in enumerate(crystals):
        cells[i] = c.cell
        site_offsets[i + 1] = site_offsets[i] + c.n_sites
    frac = np.concatenate([np.asarray(c.frac, dtype=float) for c in crystals], axis=0)
    flat_sites = [site for c in crystals for site in c.species]
    counts = np.fromiter((len(s) for s in flat_sites), dtype=np.int64, count=len(flat_sites))
    species_offsets = np.zeros(len(flat_sites) + 1, dtype=np.int64)
    np.cumsum(counts, out=species_offsets[1:])
    total = int(counts.sum())
    species = np.fromiter((el_index[el] for s in flat_sites for el, _ in s), dtype=np.int16, count=total)
    occupancies = np.fromiter((occ for s in flat_sites for _, occ in s), dtype=float, count=total)
    arrays = {
        "cells": cells,
        "site_offsets": site_offsets,
        "frac": frac,
        "species_offsets": species_offsets,
        "species": species,
        "occupancies": occupancies,
    }
    return arrays, elements


def crystals_from_arrays(block: Mapping[str, np.ndarray], elements: Sequence[str]) -> list[Crystal]:
    """``Crystal`` objects from record arrays whose offsets start at 0, labelled with
    ``block['ids']`` (no validation: the arrays come from validated crystals)."""
    so, po = block["site_offsets"], block["species_offsets"]
    sp, occ = block["species"], block["occupancies"]
    ordered_site: dict[int, tuple] = {}
    site_species = []
    for j in range(len(po) - 1):
        lo, hi = int(po[j]), int(po[j + 1])
        if hi - lo == 1 and occ[lo] == 1.0:
            e = int(sp[lo])
            s = ordered_site.get(e)
            if s is None:
                s = ordered_site[e] = ((elements[e], 1.0),)
            site_species.append(s)
        else:
            site_species.append(tuple((elements[int(sp[t])], float(occ[t])) for t in range(lo, hi)))
    out = []
    frac = block["frac"]
    for i in range(len(so) - 1):
        lo, hi = int(so[i]), int(so[i + 1])
        out.append(
            Crystal(
                cell=np.array(block["cells"][i]),
                frac=np.array(frac[lo:hi]),
                species=tuple(site_species[lo:hi]),
                label=str(block["ids"][i]),
            )
        )
    return out


def pack_pdds(pdds: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """PDDs of many records as one array: ``(rows (R, k+1) float64, offsets (n+1,) int64)``,
    record ``i`` being ``rows[offsets[i]:offsets[i+1]]``.

    Raises:
        ValueError: PDDs of different widths (other ``k``).
    """
    rows = [np.asarray(a, dtype=float) for a in pdds]
    widths = {r.shape[1] for r in rows}
    if len(widths) != 1:
        raise ValueError(f"PDDs of different widths {sorted(widths)}")
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    return np.concatenate(rows, axis=0), offsets


def stack_records(arrays: Sequence[np.ndarray], ids: Sequence[str], dtype: str) -> np.ndarray:
    """One record's invariant per row, as an (n, ...) array of ``dtype``.

    Raises:
        ValueError: a record whose shape differs from the first's (named by its id).
    """
    first = np.asarray(arrays[0])
    stack = np.empty((len(arrays),) + first.shape, dtype=dtype)
    for i, a in enumerate(arrays):
        a = np.asarray(a)
        if a.shape != first.shape:
            raise ValueError(f"record {ids[i]!r}: shape {a.shape} differs from {first.shape}")
        stack[i] = a
    return stack
