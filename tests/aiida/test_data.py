"""The data types: validation on construction, round trips, partial reads, no pickle."""

from __future__ import annotations

import io

import numpy as np
import pytest
from aiida import orm
from aiida.plugins import DataFactory
from pymatgen.core import Lattice, Structure

from aiida_crystinv.data import CrystalDatasetData, DistancesData, InvariantsData
from aiida_crystinv.data import _arrays
from aiida_crystinv.invariants import amd, pdd
from aiida_crystinv.sources import RecordError


_FCC = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]


def nacl(a: float = 5.64) -> Structure:
    """Rock salt, conventional cell (8 sites)."""
    cl = [[x + 0.5 if i == 0 else x for i, x in enumerate(p)] for p in _FCC]
    return Structure(Lattice.cubic(a), ["Na"] * 4 + ["Cl"] * 4, _FCC + cl)


def disordered() -> Structure:
    return Structure(Lattice.cubic(2.9), ["Fe", {"Fe": 0.5, "Ni": 0.25}], [[0, 0, 0], [0.5, 0.5, 0.5]])


def structures() -> list[Structure]:
    return [
        nacl(),
        Structure(Lattice.cubic(3.0), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        disordered(),
        Structure(Lattice.hexagonal(2.46, 6.7), ["C"] * 4, [[0, 0, 0.25], [0, 0, 0.75], [1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]]),
    ]


def make_dataset(**kwargs) -> CrystalDatasetData:
    return CrystalDatasetData.from_structures(
        structures(),
        ids=["nacl", "cscl", "feni", "graphite"],
        targets={"energy": [-1.0, -2.0, -3.0, -4.0], "modulus": [10.0, 20.0, 30.0, 40.0]},
        units={"energy": "eV/atom", "modulus": "GPa"},
        source={"description": "test", "api_key": "SECRET-KEY", "extras": {"token": "SECRET"}},
        **kwargs,
    )


def test_entry_points():
    assert DataFactory("crystinv.dataset") is CrystalDatasetData
    assert DataFactory("crystinv.invariants") is InvariantsData
    assert DataFactory("crystinv.distances") is DistancesData


@pytest.mark.postgres
def test_dataset_round_trip_pymatgen():
    node = make_dataset().store()
    loaded = orm.load_node(node.pk)
    assert len(loaded) == 4
    assert loaded.ids == ["nacl", "cscl", "feni", "graphite"]
    assert loaded.formulas[0] == "NaCl"
    assert loaded.target_names == ["energy", "modulus"]
    assert loaded.units == {"energy": "eV/atom", "modulus": "GPa"}
    np.testing.assert_array_equal(loaded.get_target("modulus"), [10, 20, 30, 40])
    assert len(loaded.content_hash) == 64 and len(set(loaded.hashes)) == 4
    for original, rid in zip(structures(), loaded.ids):
        back = loaded.get_structure(rid)
        assert back.composition.almost_equals(original.composition)
        np.testing.assert_allclose(back.lattice.matrix, original.lattice.matrix)
        np.testing.assert_allclose(back.frac_coords % 1.0, original.frac_coords % 1.0, atol=1e-12)
        # invariants of the stored record equal those of the original
        np.testing.assert_allclose(amd(back, 20), amd(original, 20), atol=1e-10)
    with pytest.raises(KeyError, match="no target 'nope'"):
        loaded.get_target("nope")
    with pytest.raises(KeyError, match="no record"):
        loaded.get_structure("missing")


def test_credentials_never_stored():
    node = make_dataset()
    text = repr(node.source)
    assert "SECRET" not in text and "api_key" not in text and "token" not in text
    assert node.source["description"] == "test"


@pytest.mark.postgres
def test_partial_occupancy_is_stored():
    node = make_dataset().store()
    loaded = orm.load_node(node.pk)
    assert not loaded.is_ordered
    back = loaded.get_structure("feni")
    assert not back.is_ordered
    site = back[1].species
    assert site.get_el_amt_dict() == pytest.approx({"Fe": 0.5, "Ni": 0.25})
    crystal = loaded.get_crystal("feni")
    assert crystal.occupancy.tolist() == pytest.approx([1.0, 0.75])
    np.testing.assert_allclose(pdd(crystal, 8), pdd(disordered(), 8))


@pytest.mark.postgres
def test_read_one_record_without_loading_the_dataset(monkeypatch):
    """get_structure reads only slices: no whole-array load, few bytes read."""
    many = [nacl(5.0 + 0.01 * i) for i in range(300)]
    node = CrystalDatasetData.from_structures(many, ids=[f"r{i}" for i in range(300)]).store()
    loaded = orm.load_node(node.pk)  # a fresh instance: no cached arrays
    total = sum(loaded.base.repository.get_object_size(name) for name in loaded.base.repository.list_object_names())

    whole_loads: list[str] = []
    original_get = _arrays.ArrayRepositoryMixin._get_array
    read = {"bytes": 0}
    original_rows = _arrays.read_rows

    def spy_get(self, name, cache=True):
        whole_loads.append(name)
        return original_get(self, name, cache)

    def spy_rows(handle, start, stop):
        out = original_rows(handle, start, stop)
        read["bytes"] += out.nbytes
        return out

    monkeypatch.setattr(_arrays.ArrayRepositoryMixin, "_get_array", spy_get)
    monkeypatch.setattr(_arrays, "read_rows", spy_rows)
    structure = loaded.get_structure(123)
    assert structure.lattice.a == pytest.approx(5.0 + 0.01 * 123)
    assert whole_loads == [], f"whole arrays loaded: {whole_loads}"
    assert 0 < read["bytes"] < total / 50
    # a contiguous chunk is read the same way
    crystals = loaded.get_crystals(range(10, 20))
    assert [c.label for c in crystals] == [f"r{i}" for i in range(10, 20)]
    assert whole_loads == []


def test_read_rows_on_bytes():
    array = np.arange(60, dtype=float).reshape(20, 3)
    buffer = io.BytesIO(_arrays._to_npy_bytes(array))
    np.testing.assert_array_equal(_arrays.read_rows(buffer, 5, 8), array[5:8])


@pytest.mark.postgres
def test_no_pickle_in_repository():
    node = make_dataset().store()
    inv = InvariantsData.compute(node.get_crystals(), {"name": "pdd", "k": 6}, ids=node.ids).store()
    for n in (node, inv):
        for name in n.base.repository.list_object_names():
            content = n.base.repository.get_object_content(name, mode="rb")
            assert name.endswith(".npy")
            assert not content.startswith(b"\x80"), f"{name} looks like a pickle"
            array = np.load(io.BytesIO(content), allow_pickle=False)
            assert array.dtype != object
    with pytest.raises(TypeError, match="pickle"):
        _arrays._to_npy_bytes(np.array([{"a": 1}], dtype=object))


def test_validation_on_construction():
    bad = Structure(Lattice.cubic(3.0), ["Na", "Na"], [[0, 0, 0], [0.001, 0, 0]])
    with pytest.raises(RecordError, match=r"record 'two'.*overlap"):
        CrystalDatasetData.from_structures([nacl(), bad], ids=["one", "two"])
    with pytest.raises(RecordError, match="target 'e' is nan"):
        CrystalDatasetData.from_structures([nacl(), nacl(6.0)], targets={"e": [1.0, float("nan")]})
    with pytest.raises(RecordError, match="duplicate identifier"):
        CrystalDatasetData.from_structures([nacl(), nacl(6.0)], ids=["a", "a"])
    with pytest.raises(ValueError, match="at least one valid structure"):
        CrystalDatasetData.from_structures([])
    skipping = CrystalDatasetData.from_structures(
        [nacl(), bad, nacl(6.0)], ids=["a", "b", "c"], targets={"e": [1.0, 2.0, float("inf")]}, on_error="skip"
    )
    assert skipping.ids == ["a"]
    assert {s["id"] for s in skipping.skipped} == {"b", "c"}
    assert any("overlap" in s["reason"] for s in skipping.skipped)


def test_empty_node_cannot_be_stored():
    from aiida.common.exceptions import ValidationError

    from aiida_crystinv.data.model import ModelData

    for cls in (CrystalDatasetData, InvariantsData, DistancesData, ModelData):
        with pytest.raises(ValidationError, match="empty"):
            cls().store()


def test_invariants_without_dataset_or_chunk():
    """Invariants built directly (no dataset, no chunk) say so with None, and join."""
    parts = [InvariantsData.from_arrays("amd", {"k": 3}, [name], [np.full(3, i + 1.0)]) for i, name in enumerate("ab")]
    assert parts[0].dataset_uuid is None and parts[0].row_range is None
    stored = orm.load_node(parts[0].store().pk)
    assert stored.dataset_uuid is None and stored.row_range is None
    joined = InvariantsData.concatenate(parts)
    assert joined.ids == ["a", "b"] and joined.row_range is None


@pytest.mark.postgres
def test_structuredata_and_group_round_trip():
    dataset = make_dataset()
    nodes = dataset.to_structuredata()
    assert [n.label for n in nodes] == dataset.ids
    for n in nodes:
        n.store()
    group = orm.Group(label="crystinv-test-group").store()
    group.add_nodes(nodes)
    group.add_nodes(orm.Int(3).store())  # not a structure: a bad record
    with pytest.raises(RecordError, match="not a StructureData"):
        CrystalDatasetData.from_group(group)
    back = CrystalDatasetData.from_group("crystinv-test-group", on_error="skip")
    assert sorted(back.ids) == sorted(dataset.ids)
    assert back.get_node_uuids() == [n.uuid for n in nodes]
    assert back.source["extras"]["group_uuid"] == group.uuid
    assert back.skipped and "not a StructureData" in back.skipped[0]["reason"]
    for rid in dataset.ids:
        assert back.hashes[back.index_of(rid)] == dataset.hashes[dataset.index_of(rid)]
    # unlabelled nodes are identified by their UUID
    plain = orm.StructureData(pymatgen=nacl())
    from_nodes = CrystalDatasetData.from_structuredata([plain, orm.StructureData(pymatgen=nacl(6.0))])
    assert from_nodes.ids[0] == plain.uuid


def test_subset():
    dataset = make_dataset()
    sub = dataset.subset(["graphite", 0])
    assert sub.ids == ["graphite", "nacl"]
    np.testing.assert_array_equal(sub.get_target("energy"), [-4.0, -1.0])
    assert sub.hashes == [dataset.hashes[3], dataset.hashes[0]]
    assert sub.units == dataset.units
    with pytest.raises(ValueError, match="repeat"):
        dataset.subset([0, 0])


def test_hash_ignores_atom_order_and_wrapping():
    a = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    b = Structure(Lattice.cubic(4.0), ["Cl", "Na"], [[0.5, 0.5, 1.5], [1.0, 0, 0]])
    c = Structure(Lattice.cubic(4.01), ["Cl", "Na"], [[0.5, 0.5, 0.5], [0, 0, 0]])
    node = CrystalDatasetData.from_structures([a, b, c])
    assert node.hashes[0] == node.hashes[1] != node.hashes[2]


@pytest.mark.postgres
def test_invariants_data():
    dataset = make_dataset()
    inv = InvariantsData.compute(dataset.get_crystals(), {"name": "pdd", "k": 10}, ids=dataset.ids).store()
    loaded = orm.load_node(inv.pk)
    assert loaded.descriptor == "pdd"
    assert loaded.parameters == {"k": 10, "collapse": True, "collapse_tol": 1e-4}
    assert loaded.ids == dataset.ids
    for got, s in zip(loaded.get_pdds(), structures()):
        np.testing.assert_allclose(got, pdd(s, 10))
    np.testing.assert_allclose(loaded.get_amd(), np.stack([amd(s, 10) for s in structures()]), atol=1e-12)
    amds = InvariantsData.compute(dataset.get_crystals(), "amd", ids=dataset.ids)
    assert amds.parameters == {"k": 100} and amds.get_stack().shape == (4, 100)
    assert not loaded.compatible_with(amds)
    assert "different descriptors" in loaded.incompatibility(amds)
    other = InvariantsData.compute(dataset.get_crystals(), {"name": "pdd", "k": 12}, ids=dataset.ids)
    assert "k=10 vs 12" in loaded.incompatibility(other)
    assert loaded.compatible_with(InvariantsData.compute(structures()[:2], {"name": "pdd", "k": 10}))
    with pytest.raises(TypeError, match="ragged"):
        loaded.get_stack()


@pytest.mark.postgres
def test_grid_and_rdf_stacks_float32():
    """GRID is stored windowed (only non-zero stretches) and comes back exactly as float32."""
    from aiida_crystinv.invariants import grid, rdf

    dataset = make_dataset()
    node = InvariantsData.compute(dataset.get_crystals(), {"name": "grid", "cutoff": 6.0}, ids=dataset.ids).store()
    loaded = orm.load_node(node.pk)
    assert "window_values" in loaded.get_array_names() and "stack" not in loaded.get_array_names()
    expected = np.stack([grid(c, cutoff=6.0) for c in dataset.get_crystals()]).astype(np.float32)
    np.testing.assert_array_equal(loaded.get_stack(), expected)
    stored = loaded.base.repository.get_object_size("window_values.npy")
    assert stored < expected.nbytes / 2
    rdfs = InvariantsData.compute(dataset.get_crystals(), {"name": "rdf"}, ids=dataset.ids).store()
    assert orm.load_node(rdfs.pk).get_stack().dtype == np.float32
    np.testing.assert_allclose(orm.load_node(rdfs.pk).get_stack()[0], rdf(structures()[0]), rtol=1e-6, atol=1e-6)


def test_grid_windows_record_by_record_equal_the_stacked_path():
    """Records given one by one are windowed without building the stack; the stored
    arrays equal those of the stacked path, including values that are non-zero in
    float64 but zero in float32 (the window is that of the float32 value)."""
    rng = np.random.default_rng(3)
    records = []
    for _ in range(6):
        r = np.zeros((5, 40))
        for row in r:
            lo = int(rng.integers(0, 30))
            row[lo : lo + int(rng.integers(0, 10))] = rng.random(1)[0] + 0.5
        r[1, 39] = 1e-60  # zero once cast to float32
        r[2, :] = 0.0
        records.append(r)
    ids = [f"r{i}" for i in range(6)]
    params = {"bin_width": 0.1, "cutoff": 4.0, "n_shells": 5}
    by_record = InvariantsData.from_arrays("grid", params, ids, records)
    stacked = InvariantsData.from_arrays("grid", params, ids, np.stack(records))
    for name in ("window_starts", "window_lengths", "window_values"):
        np.testing.assert_array_equal(by_record._get_array(name), stacked._get_array(name))
    assert by_record.feature_shape == stacked.feature_shape == (5, 40)
    loaded = orm.load_node(by_record.store().pk)
    np.testing.assert_array_equal(loaded.get_stack(), np.stack(records).astype(np.float32))
    with pytest.raises(ValueError, match="'r1': shape"):
        InvariantsData.from_arrays("grid", params, ids[:2], [records[0], records[1][:4]])


@pytest.mark.postgres
def test_node_hash_equals_aiidas_own():
    """The hash our data types store (computed from the repository keys) is the value
    aiida's own NodeCaching computes (which asks the object store for each file)."""
    from aiida.common.hashing import make_hash
    from aiida.orm.nodes.caching import NodeCaching

    dataset = make_dataset()
    assert isinstance(dataset.base.caching, _arrays.ArrayNodeCaching)
    # unstored: the sandbox path (aiida's own repository hash)
    before = dataset.base.caching._compute_hash()
    dataset.store()
    nodes = [dataset, InvariantsData.compute(dataset.get_crystals(), "grid", ids=dataset.ids).store()]
    for node in nodes:
        reference = make_hash(NodeCaching(node).get_objects_to_hash())
        assert node.base.caching.get_hash() == reference == node.base.caching.compute_hash()
        assert _arrays.repository_hash(node) == node.base.repository.hash()
    assert before == dataset.base.caching.get_hash()
    # a node whose content differs hashes differently
    other = make_dataset(on_error="fail")
    other.base.attributes.set("content_hash", "x")
    assert other.store().base.caching.get_hash() != dataset.base.caching.get_hash()


def test_crystal_ranges_equal_with_and_without_the_cache():
    """A range of records is the same whether the node built its Crystals already (sliced
    from the cache) or reads them (partial read of a freshly loaded node)."""
    built = make_dataset().store()
    fresh = orm.QueryBuilder().append(CrystalDatasetData, filters={"id": built.pk}).one()[0]
    assert getattr(fresh, "_crystinv_crystals", None) is None
    for rng in (range(1, 3), range(0, 4), range(3, 4)):
        a, b = built.get_crystals(rng), fresh.get_crystals(rng)
        assert [c.label for c in a] == [c.label for c in b] == built.ids[rng.start : rng.stop]
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x.cell, y.cell)
            np.testing.assert_array_equal(x.frac, y.frac)
            assert x.species == y.species


def test_find_same_content():
    import uuid

    ids = [f"{name}-{uuid.uuid4().hex[:8]}" for name in ("nacl", "cscl", "feni", "graphite")]  # unique to this test

    def build(energies=(-1.0, -2.0, -3.0, -4.0)):
        return CrystalDatasetData.from_structures(structures(), ids=ids, targets={"energy": list(energies)})

    first = build().store()
    assert first.find_same_content() == []
    unstored = build()
    assert [n.pk for n in unstored.find_same_content()] == [first.pk]
    second = unstored.store()
    assert [n.pk for n in second.find_same_content()] == [first.pk]
    assert [n.pk for n in first.find_same_content()] == [second.pk]
    assert build((-1.0, -2.0, -3.0, -4.5)).store().find_same_content() == []


def test_distances_data():
    ids = ["a", "b", "c"]
    condensed = np.array([1.0, 2.0, 3.0])
    node = DistancesData.from_condensed(condensed, ids, "amd_linf").store()
    loaded = orm.load_node(node.pk)
    np.testing.assert_array_equal(loaded.get_matrix(), [[0, 1, 2], [1, 0, 3], [2, 3, 0]])
    assert loaded.row_ids == loaded.col_ids == ids and loaded.shape == (3, 3)
    knn = DistancesData.from_knn(np.array([[1.0], [1.0], [2.0]]), np.array([[1], [0], [0]]), ids, ids, "pdd_emd")
    d, i = knn.get_knn()
    assert knn.is_knn and i[2, 0] == 0
    assert knn.get_sparse().toarray()[2, 0] == 2.0
    dense = DistancesData.from_matrix(np.ones((2, 3)), ["x", "y"], ids, "pdd_emd")
    assert dense.col_ids == ids and dense.row_ids == ["x", "y"]
    with pytest.raises(TypeError, match="kNN"):
        knn.get_matrix()
