"""The representations (composition embeddings, dscribe descriptors) as features parts:
the values are the adapters' own, checked again against elementembeddings and dscribe
called directly; fixed lengths that depend on the parameters only; refusals; composites."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from aiida_crystinv.invariants import as_crystal
from aiida_crystinv.learning.descriptors import (
    FEATURES,
    describe,
    describe_spec,
    feature_defaults,
    site_table,
)
from aiida_crystinv.representations import get_descriptor
from aiida_crystinv.sources.synthetic import ewald_landscape
from aiida_crystinv.specs import SpecError, parse_descriptor

from ..conftest import read_csv_structures, require_module

require_module("dscribe")
require_module("elementembeddings")

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore:An ill-conditioned matrix")

#: every element of the synthetic generator
SPECIES = ["Al", "Ba", "Br", "Ca", "Cl", "F", "K", "La", "Li", "Mg", "Na", "Nb", "O", "S", "Sr", "Ti", "Zn", "Zr"]
S = len(SPECIES)


@pytest.fixture(scope="module")
def landscape() -> list[Structure]:
    """Six synthetic ionic structures of different sizes and elements."""
    _, structures, _, _ = ewald_landscape(n=6, seed=3, duplicate_fraction=0.0)
    return structures


def rocksalt() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


# (part, features parameters, registry name and parameters of the same representation, length)
CASES = [
    ("embedding", {"embedding": "magpie", "pooling": "mean"}, ("embedding:magpie:mean", {}), None),
    ("embedding", {"embedding": "mat2vec", "pooling": "std"}, ("embedding:mat2vec:std", {}), None),
    ("sine_matrix", {"n_atoms_max": 24}, ("sine_matrix", {"n_atoms_max": 24}), 24 * 24),
    ("sine_matrix", {"n_atoms_max": 24, "permutation": "eigenspectrum"},
     ("sine_matrix", {"n_atoms_max": 24, "permutation": "eigenspectrum"}), 24),
    ("ewald_sum_matrix", {"n_atoms_max": 24}, ("ewald_sum_matrix", {"n_atoms_max": 24}), 24 * 24),
    ("soap", {"species": SPECIES, "n_max": 2, "l_max": 2},
     ("soap", {"species": SPECIES, "n_max": 2, "l_max": 2}), (S * 2) * (S * 2 + 1) // 2 * 3),
    ("mbtr", {"species": SPECIES, "n": 10}, ("mbtr", {"species": SPECIES, "n": 10}), S * (S + 1) // 2 * 10),
    ("acsf", {"species": SPECIES}, ("acsf", {"species": SPECIES}), S + 3 * S + 3 * S * (S + 1) // 2),
]


@pytest.mark.parametrize("part, params, registry, length", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_values_are_the_adapters_and_have_a_fixed_length(landscape, part, params, registry, length):
    X = describe(part, landscape, **params)
    adapter = get_descriptor(registry[0], **registry[1])
    for row, structure in zip(X, landscape):
        np.testing.assert_array_equal(row, adapter(structure))
    if length is None:  # the embedding's dimension
        from aiida_crystinv.representations.embeddings import embedding_table

        length = len(next(iter(embedding_table(params["embedding"]).values())))
    assert X.shape == (len(landscape), length)  # the lengths in docs/representations.md
    assert {len(s) for s in landscape} != {len(landscape[0])}  # structures of different sizes
    assert np.isfinite(X).all()


def test_rows_depend_on_their_own_structure_only(landscape):
    """A dataset-independent vector: the same structure alone, first or last in a dataset."""
    name = "sine_matrix+soap+embedding"
    params = {"n_atoms_max": 24, "soap": {"species": SPECIES, "n_max": 2, "l_max": 1}, "embedding": "magpie"}
    alone = describe(name, landscape[:1], **params)
    first = describe(name, landscape, **params)
    last = describe(name, landscape[::-1], **params)
    np.testing.assert_array_equal(first[:1], alone)
    np.testing.assert_array_equal(last[-1:], alone)


def test_crystals_give_the_values_of_their_structures(landscape):
    """A dataset node hands ``Crystal`` objects to ``describe``; they are converted back."""
    name = "soap+ewald_sum_matrix+embedding+amd"
    params = {"species": SPECIES, "n_max": 2, "l_max": 2, "n_atoms_max": 24, "k": 20}
    X = describe(name, landscape, **params)
    Xc = describe(name, [as_crystal(s, label=f"r{i}") for i, s in enumerate(landscape)], **params)
    np.testing.assert_allclose(Xc, X, rtol=1e-9, atol=1e-9)


def _independent_ase(structure):
    from pymatgen.io.ase import AseAtomsAdaptor

    from aiida_crystinv.representations.structural import _dscribe

    _dscribe()  # dscribe 2.1 + ase >= 3.28: the adapter's repair of dscribe's System constructor
    return AseAtomsAdaptor.get_atoms(structure)


def test_against_elementembeddings_and_dscribe_on_real_records():
    """Embedding: the atom-fraction-weighted mean of the vectors of elementembeddings'
    table, by hand; sine matrix and SOAP: dscribe called directly on pymatgen's ase atoms."""
    import dscribe.descriptors as dd
    from elementembeddings.core import Embedding

    _, perov = read_csv_structures("perov5.csv.gz", 3)
    _, carbon = read_csv_structures("carbon24.csv.gz", 3)
    structures = perov + carbon
    table = Embedding.load_data("magpie").embeddings
    X = describe("embedding", structures, embedding="magpie", pooling="mean")
    for row, s in zip(X, structures):
        amounts = s.composition.get_el_amt_dict()
        total = sum(amounts.values())
        expected = sum(a / total * np.asarray(table[el], float) for el, a in amounts.items())
        np.testing.assert_allclose(row, expected, rtol=1e-12)

    n_max = max(len(s) for s in structures)
    X = describe("sine_matrix", structures, n_atoms_max=n_max)
    sine = dd.SineMatrix(n_atoms_max=n_max, permutation="sorted_l2", sparse=False)
    for row, s in zip(X, structures):
        np.testing.assert_allclose(row, np.ravel(sine.create(_independent_ase(s))), rtol=1e-10, atol=1e-10)
        # dscribe's sine matrix has 0.5 Z^2.4 on its diagonal: the padded rows are zeros
        diag = np.diag(row.reshape(n_max, n_max))
        z = sorted((site.specie.Z for site in s), reverse=True)
        np.testing.assert_allclose(sorted(diag[: len(s)], reverse=True), sorted(0.5 * np.array(z) ** 2.4, reverse=True))
        assert np.all(diag[len(s):] == 0)

    species = sorted({el.symbol for s in structures for el in s.composition.elements})
    X = describe("soap", structures, species=species, r_cut=4.0, n_max=2, l_max=2, sigma=0.5)
    soap = dd.SOAP(species=species, r_cut=4.0, n_max=2, l_max=2, sigma=0.5, periodic=True, average="inner", sparse=False)
    for row, s in zip(X, structures):
        np.testing.assert_allclose(row, np.ravel(soap.create(_independent_ase(s))), rtol=1e-10, atol=1e-12)


def test_composites_join_the_parts(landscape):
    X = describe("amd+embedding", landscape, k=30, embedding="megnet16")
    np.testing.assert_array_equal(X, np.hstack([describe("amd", landscape, k=30),
                                                describe("embedding", landscape, embedding="megnet16")]))
    per_part = describe("soap+amd", landscape, soap={"species": SPECIES, "n_max": 1, "l_max": 1}, amd={"k": 10})
    np.testing.assert_array_equal(per_part, np.hstack([describe("soap", landscape, species=SPECIES, n_max=1, l_max=1),
                                                       describe("amd", landscape, k=10)]))
    spec = describe_spec("soap+amd", species=["O", "Na", "O"], r_cut=4, amd={"k": 10})
    assert spec == {"name": "soap+amd", "params": {
        "soap": {"species": ["Na", "O"], "r_cut": 4.0, "n_max": 4, "l_max": 3, "sigma": 0.5}, "amd": {"k": 10}}}
    assert parse_descriptor({"name": "embedding+density", "embedding": "magpie"}).normalised() == {
        "kind": "features", "name": "embedding+density",
        "params": {"embedding": {"embedding": "magpie", "pooling": "mean"}, "density": {}}}


def test_registry_defaults():
    assert feature_defaults("embedding") == {"embedding": "mat2vec", "pooling": "mean"}
    assert feature_defaults("sine_matrix") == {"n_atoms_max": None, "permutation": "sorted_l2"}
    assert feature_defaults("soap") == {"species": None, "r_cut": 5.0, "n_max": 4, "l_max": 3, "sigma": 0.5}
    assert all(FEATURES[p].takes_structure for p in ("embedding", "sine_matrix", "ewald_sum_matrix", "soap", "mbtr", "acsf"))
    assert not FEATURES["amd"].takes_structure


BAD = [
    ("soap", {}, "give species"),
    ("mbtr", {"n": 5}, "give species"),
    ("acsf", {"species": "Na"}, "non-empty list of element symbols"),
    ("soap", {"species": ["Na", "Xx"]}, "species ['Xx'] are not element symbols"),
    ("soap", {"species": ["Na"], "r_cut": 0.5}, "dscribe refuses these settings"),
    ("soap", {"species": ["Na"], "l_max": 21}, "dscribe refuses these settings"),
    ("soap", {"species": ["Na"], "n_max": True}, "n_max must be a positive integer"),
    ("soap", {"species": ["Na"], "sigma": -1}, "sigma must be a positive number"),
    ("soap", {"species": ["Na"], "rcut": 5}, "no parameter 'rcut'"),
    ("mbtr", {"species": ["Na"], "n": 0}, "n must be a positive integer"),
    ("sine_matrix", {}, "give n_atoms_max"),
    ("ewald_sum_matrix", {"n_atoms_max": 0}, "n_atoms_max must be a positive integer"),
    ("sine_matrix", {"n_atoms_max": 8.0}, "n_atoms_max must be a positive integer"),
    ("sine_matrix", {"n_atoms_max": 8, "permutation": "random"}, "permutation must be one of"),
    ("embedding", {"embedding": "word2vec"}, "unknown element embedding 'word2vec'"),
    ("embedding", {"pooling": "median"}, "pooling must be one of"),
    ("embedding", {"embedding": 3}, "embedding must be a name"),
    ("amd+soap", {"k": 5}, "give species"),
]


@pytest.mark.parametrize("name, params, words", BAD)
def test_bad_parameters_are_refused_with_one_message(name, params, words):
    with pytest.raises(ValueError) as info:
        describe_spec(name, **params)
    assert words in str(info.value)
    assert name.split("+")[-1] in str(info.value)  # the part is named
    with pytest.raises(SpecError) as spec_info:  # what a study file and the ports see
        parse_descriptor({"name": name, **params}, where="descriptors[0]")
    assert words in str(spec_info.value) and "descriptors[0]" in str(spec_info.value)
    assert "Traceback" not in str(spec_info.value)


def test_structures_that_do_not_fit_are_refused_naming_them(landscape):
    big = max(landscape, key=len)
    big_index = landscape.index(big)
    with pytest.raises(ValueError, match=rf"structure {big_index}: features part 'sine_matrix': .*{len(big)} atoms "
                                         r"exceed n_atoms_max=4"):
        describe("sine_matrix", landscape, n_atoms_max=4)
    with pytest.raises(ValueError, match=r"structure 0: features part 'soap': .*not in the soap species list \['Na'\]"):
        describe("soap", [rocksalt()], species=["Na"])
    disordered = Structure(Lattice.cubic(4.0), [{"Na": 0.5, "K": 0.5}, "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(ValueError, match="need an ordered structure"):
        describe("acsf", [disordered], species=["Cl", "K", "Na"])
    # the embedding reads the (occupancy-weighted) composition, so disorder is fine there
    X = describe("embedding", [disordered], embedding="magpie")
    np.testing.assert_allclose(X[0], get_descriptor("embedding:magpie:mean")(disordered))
    with pytest.raises(ValueError, match="need the structure, not a site table"):
        describe("embedding", [site_table(rocksalt(), 4)])
    # site-table parts still take precomputed site tables
    assert describe("amd", [site_table(rocksalt(), 4)], k=4).shape == (1, 4)
