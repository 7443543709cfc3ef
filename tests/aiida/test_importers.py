"""Importers on slices of the real datasets and on bad files."""

from __future__ import annotations

import gzip
import json
import sys
import types

import numpy as np
import pytest

from aiida_crystinv.data import CrystalDatasetData
from aiida_crystinv.sources import (
    RecordError,
    SourceError,
    read_bytes,
    read_cif,
    read_materials_project,
    read_path,
)

from .conftest import dataset_path

GOOD_BLOCK = """data_{name}
_cell_length_a 4.0
_cell_length_b 4.0
_cell_length_c 4.0
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Na1 Na 0.0 0.0 0.0 1
Cl1 Cl 0.5 0.5 0.5 {occ}
"""

BAD_BLOCK = """data_broken
_cell_length_a 4.0
_cell_length_b oops
loop_
_atom_site_label
_atom_site_fract_x
Na1 0.0
"""


def three_blocks(middle: str = BAD_BLOCK) -> str:
    return GOOD_BLOCK.format(name="first", occ=1) + middle + GOOD_BLOCK.format(name="third", occ=1)


def test_multiblock_cif_real(tmp_path):
    path = dataset_path("T2_experimental.cif")
    dataset = CrystalDatasetData.from_file(path)
    assert len(dataset) == 9 and not dataset.skipped
    assert dataset.ids[0] == "T2-gamma_240K" and dataset.ids[-1] == "ttbi_sub"
    assert dataset.source["uri"] == "T2_experimental.cif"
    assert len(dataset.source["source_md5"]) == 32
    structure = dataset.get_structure(0)
    assert structure.composition["C"] > 0 and structure.composition["N"] > 0


def test_malformed_block_in_the_middle(tmp_path):
    path = tmp_path / "three.cif"
    path.write_text(three_blocks())
    with pytest.raises(RecordError) as info:
        CrystalDatasetData.from_file(path)
    message = str(info.value)
    assert "'broken'" in message and "block 2" in message and "malformed CIF block" in message
    dataset = CrystalDatasetData.from_file(path, on_error="skip")
    assert dataset.ids == ["first", "third"]
    assert dataset.skipped[0]["id"] == "broken" and "block 2" in dataset.skipped[0]["position"]


def test_partial_occupancy_in_cif(tmp_path):
    path = tmp_path / "disordered.cif"
    path.write_text(GOOD_BLOCK.format(name="half", occ=0.5))
    dataset = CrystalDatasetData.from_file(path)
    assert not dataset.is_ordered
    assert dataset.get_crystal(0).occupancy.tolist() == pytest.approx([1.0, 0.5])


def test_folder_of_cifs(tmp_path):
    (tmp_path / "a.cif").write_text(GOOD_BLOCK.format(name="x", occ=1))
    (tmp_path / "b.cif.gz").write_bytes(gzip.compress(three_blocks(GOOD_BLOCK.format(name="mid", occ=1)).encode()))
    (tmp_path / "notes.txt").write_text("not a cif")
    dataset = CrystalDatasetData.from_file(tmp_path)
    assert dataset.ids == ["a", "b/first", "b/mid", "b/third"]


def test_empty_and_wrong_files(tmp_path):
    empty = tmp_path / "empty.cif"
    empty.write_text("")
    with pytest.raises(SourceError, match="empty"):
        read_path(empty)
    with pytest.raises(SourceError, match="no 'data_' block"):
        read_bytes(b'{"not": "a cif"}', "x.cif")
    with pytest.raises(SourceError, match="not valid JSON"):
        read_bytes(b"data_x\n_cell_length_a 1\n", "x.json")
    with pytest.raises(SourceError, match="no column 'cif'"):
        read_bytes(b"a,b\n1,2\n", "x.csv")
    with pytest.raises(SourceError, match="cannot tell the format"):
        read_bytes(b"hello", "x.txt")
    with pytest.raises(SourceError, match="unknown format"):
        read_bytes(b"hello", "x.txt", format="xyz")
    with pytest.raises(SourceError, match="corrupt gzip"):
        read_bytes(b"\x1f\x8b\x08garbage", "x.cif.gz")
    with pytest.raises(SourceError, match="no such file"):
        read_path(tmp_path / "missing.cif")


def test_carbon24_csv(csv_slice):
    path = csv_slice("carbon24.csv.gz", 12, gz=True)
    dataset = CrystalDatasetData.from_file(path)
    assert len(dataset) == 12
    assert dataset.target_names == ["energy_per_atom"]
    assert dataset.units == {"energy_per_atom": "eV/atom"}
    assert dataset.ids[0].startswith("C-")
    assert set(dataset.formulas) == {"C"}
    assert np.all(dataset.get_target("energy_per_atom") < -150)


def test_perov5_csv(csv_slice):
    path = csv_slice("perov5.csv.gz", 10)
    dataset = CrystalDatasetData.from_file(path, target_columns=["heat_ref", "dir_gap"], units={"dir_gap": "eV"})
    assert len(dataset) == 10
    assert dataset.target_names == ["heat_ref", "dir_gap"]
    assert dataset.units == {"heat_ref": "eV", "dir_gap": "eV"}
    assert all(len(dataset.get_crystal(i).frac) == 5 for i in range(10))
    # default target columns: the numeric ones
    auto = CrystalDatasetData.from_file(path)
    assert set(auto.target_names) == {"heat_all", "heat_ref", "dir_gap", "ind_gap"}


def test_csv_nan_target_and_bad_cif(tmp_path):
    good = GOOD_BLOCK.format(name="g", occ=1).replace('"', "")
    text = "material_id,cif,energy\n" + f'ok,"{good}",1.5\n' + f'nan_row,"{good}",\n' + 'bad_cif,"data_x\n_cell_length_a 1",2.0\n'
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(RecordError, match=r"record 'nan_row' \(t.csv, row 2\): target 'energy' is nan"):
        CrystalDatasetData.from_file(path)
    dataset = CrystalDatasetData.from_file(path, on_error="skip")
    assert dataset.ids == ["ok"]
    reasons = {s["id"]: s["reason"] for s in dataset.skipped}
    assert "malformed CIF block" in reasons["bad_cif"] and "nan" in reasons["nan_row"]


def test_mp_json(tmp_path, mp_records):
    path = tmp_path / "mp.json.gz"
    path.write_bytes(gzip.compress(json.dumps(mp_records).encode()))
    dataset = CrystalDatasetData.from_file(path)
    assert len(dataset) == 30
    assert dataset.ids[0] == mp_records[0]["mp_id"]
    assert dataset.target_names == ["bulk_modulus_vrh", "shear_modulus_vrh"]
    assert dataset.units["bulk_modulus_vrh"] == "GPa"
    np.testing.assert_allclose(dataset.get_target("bulk_modulus_vrh"), [r["bulk_modulus_vrh"] for r in mp_records])
    from pymatgen.core import Structure

    expected = Structure.from_dict(mp_records[3]["structure"])
    got = dataset.get_structure(mp_records[3]["mp_id"])
    np.testing.assert_allclose(got.lattice.matrix, expected.lattice.matrix)
    assert got.composition == expected.composition
    # bare structure dicts, no targets
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps([r["structure"] for r in mp_records[:3]]))
    assert CrystalDatasetData.from_file(bare).ids == ["1", "2", "3"]


def test_json_bad_record(tmp_path, mp_records):
    records = [dict(r) for r in mp_records[:4]]
    records[2]["structure"] = {"lattice": {"matrix": [[0, 0, 0], [0, 0, 0], [0, 0, 0]]}, "sites": []}
    records[1]["bulk_modulus_vrh"] = None
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(records))
    with pytest.raises(RecordError, match=f"record '{records[1]['mp_id']}'.*bulk_modulus_vrh"):
        CrystalDatasetData.from_file(path)
    dataset = CrystalDatasetData.from_file(path, on_error="skip")
    assert dataset.ids == [records[0]["mp_id"], records[3]["mp_id"]]
    assert len(dataset.skipped) == 2


def test_materials_project_without_package_or_key(monkeypatch):
    monkeypatch.setitem(sys.modules, "mp_api", None)
    monkeypatch.setitem(sys.modules, "mp_api.client", None)
    with pytest.raises(SourceError, match="needs the 'mp-api' package"):
        read_materials_project({"material_ids": ["mp-149"]})


class _FakeDoc:
    def __init__(self, material_id, structure, band_gap):
        self.material_id, self.structure, self.band_gap = material_id, structure, band_gap


def _fake_mp_api(monkeypatch, fail: Exception | None = None):
    from pymatgen.core import Lattice, Structure

    calls = {}

    class Summary:
        def search(self, fields=None, **query):
            calls["query"], calls["fields"] = query, fields
            if fail:
                raise fail
            si = Structure(Lattice.cubic(5.43), ["Si", "Si"], [[0, 0, 0], [0.25, 0.25, 0.25]])
            return [_FakeDoc("mp-149", si, 0.6), _FakeDoc("mp-999", si, None)]

    class MPRester:
        def __init__(self, api_key):
            calls["key"] = api_key
            self.materials = types.SimpleNamespace(summary=Summary())

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def get_database_version(self):
            return "2025.09.25"

    client = types.ModuleType("mp_api.client")
    client.MPRester = MPRester
    monkeypatch.setitem(sys.modules, "mp_api", types.ModuleType("mp_api"))
    monkeypatch.setitem(sys.modules, "mp_api.client", client)
    return calls


def test_materials_project_with_fake_client(monkeypatch):
    calls = _fake_mp_api(monkeypatch)
    monkeypatch.delenv("MP_API_KEY", raising=False)
    with pytest.raises(SourceError, match="MP_API_KEY"):
        read_materials_project({"material_ids": ["mp-149"]})
    monkeypatch.setenv("MP_API_KEY", "SECRET-KEY-123")
    result = read_materials_project({"material_ids": ["mp-149", "mp-999"]}, properties=["band_gap"])
    assert calls["key"] == "SECRET-KEY-123"
    assert calls["query"] == {"material_ids": ["mp-149", "mp-999"]}
    dataset = CrystalDatasetData.from_read_result(result, on_error="skip")
    assert dataset.ids == ["mp-149"]
    assert dataset.units == {"band_gap": "eV"}
    assert dataset.source["version"] == "2025.09.25"
    assert dataset.source["extras"]["query"] == {"material_ids": ["mp-149", "mp-999"]}
    assert "SECRET" not in json.dumps(dataset.source) + json.dumps(dataset.skipped)
    with pytest.raises(RecordError, match="'mp-999'.*band_gap"):
        CrystalDatasetData.from_read_result(result, on_error="fail")


def test_materials_project_network_error(monkeypatch):
    _fake_mp_api(monkeypatch, fail=ConnectionError("cannot reach api.materialsproject.org with key SECRET-KEY"))
    monkeypatch.setenv("MP_API_KEY", "SECRET-KEY")
    with pytest.raises(SourceError, match="request failed") as info:
        read_materials_project({"material_ids": ["mp-149"]})
    assert "SECRET-KEY" not in str(info.value)
    with pytest.raises(SourceError, match="empty"):
        read_materials_project({})


def test_read_cif_names_repeated_blocks():
    text = GOOD_BLOCK.format(name="C", occ=1) + GOOD_BLOCK.format(name="C", occ=1)
    result = read_cif(text, "x.cif")
    assert [r.id for r in result.records] == ["C", "C#2"]


def test_readers_pause_the_garbage_collector_and_restore_it(tmp_path, mp_records, monkeypatch):
    """The readers run with the cyclic collector paused (parsing builds many objects that
    all stay alive) and give it back as they found it, also when the file is bad."""
    import gc

    from aiida_crystinv.sources import files

    seen = []
    real = files.read_json

    def spy(*args, **kwargs):
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(files, "read_json", spy)
    content = json.dumps(mp_records[:3]).encode()
    assert gc.isenabled()
    assert len(read_bytes(content, "mp.json").records) == 3
    assert seen == [False] and gc.isenabled()
    with pytest.raises(SourceError):
        read_bytes(b"{not json", "bad.json")
    assert gc.isenabled()
    gc.disable()
    try:
        read_bytes(content, "mp.json")
        assert not gc.isenabled()  # left off when it was off
    finally:
        gc.enable()
    (tmp_path / "a.cif").write_text(GOOD_BLOCK.format(name="a", occ=1))
    real_cif = files.read_cif

    def spy_cif(*args, **kwargs):
        seen.append(gc.isenabled())
        return real_cif(*args, **kwargs)

    monkeypatch.setattr(files, "read_cif", spy_cif)
    assert len(read_path(tmp_path).records) == 1 and gc.isenabled()
    assert seen[-1] is False  # the folder of CIFs was read with the collector paused
