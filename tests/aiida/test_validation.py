"""Inputs accepted that should not be, or refused that should not be (issue 11).

* target columns of CSV/JSON imports are decided over ALL records: text or nothing in a
  numeric target, in the first record as in any other, is a bad record named by the
  import (or skipped with its reason), never a silently dropped target;
* NaN / infinite thresholds and parameters are refused everywhere (command line, Python
  API, process ports, specs);
* a parameter, a target or a study key given twice is refused, never silently overridden;
* relative paths work (a folder or a file for ``crystinv import``; study files resolve
  their paths relative to the study file's folder);
* left-handed cells of real crystals are accepted on import and by the calcfunctions, with
  the invariants of the right-handed description;
* a file of the wrong format gives a short message (the importer used to store 6.5 MB).

After every refused input the number of nodes in the profile is unchanged.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math

import numpy as np
import pytest
from aiida import orm
from click.testing import CliRunner

from aiida_crystinv.cli import cmd_crystinv
from aiida_crystinv.data import CrystalDatasetData

from .conftest import dataset_path


def node_count() -> int:
    return orm.QueryBuilder().append(orm.Node).count()


def latest_dataset() -> CrystalDatasetData:
    builder = orm.QueryBuilder().append(CrystalDatasetData, project="*")
    return builder.order_by({CrystalDatasetData: {"id": "desc"}}).first()[0]


def invoke(*args: str):
    return CliRunner().invoke(cmd_crystinv, [str(a) for a in args])


def assert_refused(result, *words: str) -> None:
    """Non-zero exit, no traceback, one short error line containing ``words``."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.startswith(("Critical:", "Error:"))]
    assert lines, result.output
    assert len(result.output) < 2000, f"{len(result.output)} characters of output"
    for word in words:
        assert word.lower() in result.output.lower(), f"{word!r} not in {result.output!r}"


def perov_rows(n: int = 8) -> tuple[list[str], list[dict[str, str]]]:
    path = dataset_path("perov5.csv.gz")
    csv.field_size_limit(1 << 30)
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = [row for _, row in zip(range(n), reader)]
        return list(reader.fieldnames or []), rows


def write_csv(path, header, rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def mp_records(n: int = 6) -> list[dict]:
    with gzip.open(dataset_path("mp_elasticity_binaries.json.gz"), "rt", encoding="utf-8") as handle:
        return json.load(handle)[:n]


@pytest.fixture(scope="module")
def small_dataset():
    from aiida_crystinv.sources.synthetic import ewald_landscape

    ids, structures, targets, units = ewald_landscape(n=8, seed=3, duplicate_fraction=0.25)
    return CrystalDatasetData.from_structures(structures, ids=ids, targets=targets, units=units).store()


@pytest.fixture(scope="module")
def amd_invariants(small_dataset):
    from aiida_crystinv.calculations.functions import compute_invariants

    results, node = compute_invariants.run_get_node(dataset=small_dataset, descriptor=orm.Dict({"name": "amd", "k": 5}))
    assert node.is_finished_ok, node.exit_message
    return results["invariants"]


# ============================================================================ 1. target columns
@pytest.mark.parametrize("row", [0, 2])
@pytest.mark.parametrize("bad", ["oops", ""])
def test_csv_target_decided_over_all_records(tmp_path, row, bad):
    """Text or an empty cell in ``heat_ref`` of row 1 or row 3 of real Perov-5 records: the
    import fails naming that record (nothing stored); with --on-error skip it keeps the
    target and skips that record with its reason."""
    header, rows = perov_rows()
    rows[row]["heat_ref"] = bad
    path = tmp_path / f"perov_{row}_{bad or 'empty'}.csv"
    write_csv(path, header, rows)
    bad_id = rows[row]["material_id"]

    before = node_count()
    result = invoke("import", path)
    assert_refused(result, bad_id, "heat_ref", f"row {row + 1}")
    assert node_count() == before + 3, "only the file, the options and the failed process (its provenance)"

    result = invoke("import", path, "--on-error", "skip")
    assert result.exit_code == 0, result.output
    dataset = latest_dataset()
    assert "heat_ref" in dataset.target_names, "the target was dropped"
    assert bad_id not in dataset.ids and len(dataset) == len(rows) - 1
    (skipped,) = dataset.skipped
    assert skipped["id"] == bad_id and "heat_ref" in skipped["reason"]
    expected = [float(r["heat_ref"]) for r in rows if r["material_id"] != bad_id]
    assert np.allclose(dataset.get_target("heat_ref"), expected)


@pytest.mark.parametrize("record", [0, 3])
@pytest.mark.parametrize("bad", ["n/a", None, "missing"])
def test_json_target_decided_over_all_records(tmp_path, record, bad):
    """The same for JSON (real MP elasticity records): text, null or a missing key in
    ``bulk_modulus_vrh`` of the first or the fourth record."""
    from aiida_crystinv.calculations.functions import import_dataset

    records = mp_records()
    if bad == "missing":
        del records[record]["bulk_modulus_vrh"]
    else:
        records[record]["bulk_modulus_vrh"] = bad
    path = tmp_path / "mp.json"
    path.write_text(json.dumps(records))
    bad_id = records[record]["mp_id"]

    before = node_count()
    _, node = import_dataset.run_get_node(file=orm.SinglefileData(path), options=orm.Dict({}))
    assert node.exit_status == 210, node.exit_message
    assert bad_id in node.exit_message and "bulk_modulus_vrh" in node.exit_message
    assert node_count() == before + 3  # the file, the options and the failed process

    results, node = import_dataset.run_get_node(file=orm.SinglefileData(path), options=orm.Dict({"on_error": "skip"}))
    assert node.is_finished_ok, node.exit_message
    dataset = results["dataset"]
    assert sorted(dataset.target_names) == ["bulk_modulus_vrh", "shear_modulus_vrh"]
    assert [s["id"] for s in dataset.skipped] == [bad_id]
    assert np.allclose(dataset.get_target("bulk_modulus_vrh"),
                       [r["bulk_modulus_vrh"] for r in records if r["mp_id"] != bad_id])


def test_text_only_columns_are_not_targets(tmp_path):
    """A column of text in every record (a note) is not a target; ``formula`` never is."""
    header, rows = perov_rows(4)
    for r in rows:
        r["note"] = "relaxed"
    path = tmp_path / "notes.csv"
    write_csv(path, header + ["note"], rows)
    result = invoke("import", path)
    assert result.exit_code == 0, result.output
    dataset = latest_dataset()
    assert dataset.target_names == ["heat_all", "heat_ref", "dir_gap", "ind_gap"]


def test_wrong_format_message_is_short(tmp_path):
    """The real 5.6 MB MP JSON file read as CSV: one short line (it used to print and store
    6.5 MB), quickly, nothing stored; the calcfunction's exit message is capped too."""
    import time

    from aiida_crystinv.calculations.functions import import_dataset
    from aiida_crystinv.secrets import MAX_MESSAGE

    path = dataset_path("mp_elasticity_binaries.json.gz")
    before = node_count()
    start = time.monotonic()
    result = invoke("import", path, "--format", "csv")
    seconds = time.monotonic() - start
    assert_refused(result, "json")
    assert node_count() == before
    assert seconds < 120, f"refusing the file took {seconds:.0f} s"

    long_name = "x" * 50
    header = ",".join(f"{long_name}{i}" for i in range(20_000))
    path = tmp_path / "wide.csv"
    path.write_text(header + "\n" + ",".join("1" for _ in range(20_000)) + "\n")
    _, node = import_dataset.run_get_node(file=orm.SinglefileData(path), options=orm.Dict({"format": "csv"}))
    assert node.exit_status == 200
    assert len(node.exit_message) <= MAX_MESSAGE + 100, len(node.exit_message)

    # a message that is long by nature (a 5000-character record identifier): the exit
    # message is capped, the whole text is in the process report
    header, rows = perov_rows(2)
    rows[1]["material_id"] = "id-" + "7" * 5000
    rows[1]["heat_ref"] = "oops"
    path = tmp_path / "long_id.csv"
    write_csv(path, header, rows)
    _, node = import_dataset.run_get_node(file=orm.SinglefileData(path), options=orm.Dict({}))
    assert node.exit_status == 210
    assert len(node.exit_message) <= MAX_MESSAGE + 100 and rows[1]["material_id"] not in node.exit_message
    reports = [log.message for log in orm.Log.collection.get_logs_for(node)]
    assert any(rows[1]["material_id"] in r and "heat_ref" in r for r in reports), reports


# ============================================================================ 2. NaN / inf
@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity"])
def test_non_finite_threshold_refused(amd_invariants, value):
    before = node_count()
    assert_refused(invoke("duplicates", amd_invariants.pk, "--threshold", value), "threshold")
    assert_refused(invoke("duplicates", amd_invariants.pk, "-t", value))
    assert_refused(invoke("demo", "-t", value))
    assert node_count() == before


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-Infinity", "[1, NaN]"])
def test_non_finite_parameter_refused(small_dataset, value):
    before = node_count()
    result = invoke("invariants", small_dataset.pk, "-d", "grid", "-p", f"cutoff={value}")
    assert_refused(result, "cutoff", "finite")
    assert node_count() == before


def test_non_finite_in_python_api_and_ports(amd_invariants):
    from aiida_crystinv import distances
    from aiida_crystinv.calculations.functions import compute_duplicates, compute_invariants
    from aiida_crystinv.specs import SpecError, parse_invariant
    from aiida_crystinv.workflows.neighbours import find_duplicates

    items = amd_invariants.get_amd()
    before = node_count()
    for value in (math.nan, math.inf, -math.inf, np.float64("nan")):
        with pytest.raises(ValueError, match="finite"):
            find_duplicates(amd_invariants, value)
        with pytest.raises(ValueError, match="finite"):
            distances.pairs_within(items, value, "amd_linf")
        with pytest.raises(ValueError):
            compute_duplicates.run_get_node(invariants=amd_invariants, threshold=orm.Float(value))
        for spec in ({"name": "grid", "cutoff": value}, {"name": "rdf", "bin_width": value}):
            with pytest.raises(SpecError, match="finite"):
                parse_invariant(spec)
            with pytest.raises(ValueError):
                compute_invariants.run_get_node(dataset=orm.load_node(amd_invariants.dataset_uuid),
                                                descriptor=orm.Dict(spec))
    assert node_count() == before
    # the pure invariant functions refuse them too
    from aiida_crystinv.invariants import amd, grid, pdd, rdf

    crystal = orm.load_node(amd_invariants.dataset_uuid).get_crystal(0)
    for value in (math.nan, math.inf):
        for call in (lambda v=value: amd(crystal, v), lambda v=value: pdd(crystal, 5, collapse_tol=v),
                     lambda v=value: grid(crystal, cutoff=v), lambda v=value: rdf(crystal, bin_width=v),
                     lambda v=value: rdf(crystal, smearing=v)):
            with pytest.raises(ValueError):
                call()


def test_distances_node_pairs_within_refuses_non_finite(amd_invariants):
    from aiida_crystinv.calculations.functions import compute_distances

    results, node = compute_distances.run_get_node(invariants=amd_invariants)
    assert node.is_finished_ok, node.exit_message
    matrix = results["distances"]
    for value in (math.nan, math.inf, "0.1", True, -1.0):
        with pytest.raises(ValueError, match="finite number >= 0"):
            matrix.pairs_within(value)
    assert matrix.pairs_within(0.0) == matrix.pairs_within(0)


# ============================================================================ 3. repeated
def test_repeated_parameter_refused(small_dataset):
    before = node_count()
    result = invoke("invariants", small_dataset.pk, "-d", "amd", "-p", "k=100", "-p", "k=5")
    assert_refused(result, "-p: parameter(s) k given more than once")
    # any parameter, of any descriptor
    assert_refused(invoke("invariants", small_dataset.pk, "-d", "grid", "-p", "cutoff=4", "-p", "cutoff=5"),
                   "cutoff given more than once")
    assert node_count() == before


def test_repeated_target_or_unit_refused(tmp_path):
    header, rows = perov_rows(3)
    path = tmp_path / "p.csv"
    write_csv(path, header, rows)
    before = node_count()
    for targets in (["heat_ref:eV", "heat_ref:meV"], ["heat_ref", "heat_ref"], ["heat_ref:eV", "dir_gap", "heat_ref"]):
        args = [a for t in targets for a in ("-t", t)]
        assert_refused(invoke("import", path, *args), "heat_ref", "twice")
    assert node_count() == before
    # the process port refuses a repeated target column too
    from aiida_crystinv.calculations.functions import import_dataset

    with pytest.raises(ValueError, match="more than once"):
        import_dataset.run_get_node(file=orm.SinglefileData(path),
                                    options=orm.Dict({"target_columns": ["heat_ref", "heat_ref"]}))
    assert node_count() == before


def test_repeated_key_in_study_file_refused(tmp_path):
    from aiida_crystinv.workflows.study_file import StudyError, load_study

    path = tmp_path / "twice.yaml"
    path.write_text("name: twice\nsource: {synthetic: {n: 20}}\ntarget: energy_per_atom\ntarget: band_gap\n"
                    "descriptors: [amd]\nmodels: [{name: knn, k: 1}]\n")
    before = node_count()
    with pytest.raises(StudyError, match="'target' is given twice"):
        load_study(path)
    result = invoke("study", "run", path)
    assert_refused(result, "target", "twice")
    assert node_count() == before


# ============================================================================ 4. relative paths
def test_relative_paths_for_import(tmp_path, monkeypatch):
    """A relative folder of CIFs and a relative file (with ``..``) import like absolute ones."""
    header, rows = perov_rows(3)
    folder = tmp_path / "cifs"
    folder.mkdir()
    for r in rows:
        (folder / f"{r['material_id']}.cif").write_text(r["cif"])
    work = tmp_path / "work"
    work.mkdir()
    write_csv(tmp_path / "p.csv", header, rows)
    monkeypatch.chdir(work)
    for arg, n in (("../cifs", 3), ("../p.csv", 3)):
        result = invoke("import", arg)
        assert result.exit_code == 0, result.output
        assert f"imported {n} structures" in result.output
    monkeypatch.chdir(tmp_path)
    result = invoke("import", "cifs")
    assert result.exit_code == 0, result.output
    dataset = latest_dataset()
    result = invoke("export", dataset.pk, "-o", "work/out.json")
    assert result.exit_code == 0, result.output
    result = invoke("import", "work/out.json")
    assert result.exit_code == 0, result.output
    assert latest_dataset().ids == dataset.ids


def test_study_paths_relative_to_the_study_file(tmp_path, monkeypatch):
    """A study file's relative source path is relative to the study file's folder (as
    docs/learning.md says), wherever the command runs."""
    from aiida_crystinv.workflows.study_file import load_study

    header, rows = perov_rows(3)
    (tmp_path / "studies" / "data").mkdir(parents=True)
    write_csv(tmp_path / "studies" / "data" / "p.csv", header, rows)
    study = tmp_path / "studies" / "s.yaml"
    study.write_text("name: rel\nsource: data/p.csv\ntarget: heat_ref\ndescriptors: [amd]\nmodels: [{name: knn, k: 1}]\n")
    monkeypatch.chdir(tmp_path)
    plan = load_study("studies/s.yaml")
    assert plan["sources"]["train"]["path"] == str((tmp_path / "studies" / "data" / "p.csv").resolve())


# ============================================================================ 5. left-handed cells
def _left_handed(structure):
    """The same crystal in a left-handed cell (c -> -c, z -> -z)."""
    flip = np.diag([1.0, 1.0, -1.0])
    cell = flip @ np.array(structure.lattice.matrix)
    frac = np.array(structure.frac_coords) @ flip
    return cell, frac


@pytest.mark.parametrize("name", ["perov5.csv.gz", "carbon24.csv.gz"])
def test_left_handed_cells_imported_and_computed(tmp_path, name):
    """Real crystals written with left-handed cells into a JSON file: imported as given, and
    their AMD/PDD (compute_invariants) and structure_invariants (a left-handed
    StructureData) equal the right-handed description's."""
    from pymatgen.core import Lattice, Structure

    from aiida_crystinv.calculations.functions import compute_invariants, import_dataset, structure_invariants
    from aiida_crystinv.invariants import amd, pdd

    from ..conftest import read_csv_structures

    ids, structures = read_csv_structures(name, n=6)
    records = []
    for rid, s in zip(ids, structures):
        cell, frac = _left_handed(s)
        left = Structure(Lattice(cell), s.species, frac)
        assert np.linalg.det(left.lattice.matrix) < 0
        records.append({"id": rid, "structure": left.as_dict()})
    path = tmp_path / "left.json"
    path.write_text(json.dumps(records))
    results, node = import_dataset.run_get_node(file=orm.SinglefileData(path), options=orm.Dict({}))
    assert node.is_finished_ok, node.exit_message
    dataset = results["dataset"]
    assert all(np.linalg.det(c.cell) < 0 for c in dataset.get_crystals())
    for spec, func in (({"name": "amd", "k": 20}, lambda s: amd(s, 20)), ({"name": "pdd", "k": 20}, lambda s: pdd(s, 20))):
        out, node = compute_invariants.run_get_node(dataset=dataset, descriptor=orm.Dict(spec))
        assert node.is_finished_ok, node.exit_message
        got = out["invariants"].get_items() if spec["name"] == "pdd" else out["invariants"].get_amd()
        for i, s in enumerate(structures):
            assert np.allclose(got[i], func(s)), f"{spec['name']} of {ids[i]} differs from the right-handed one"
    left = orm.StructureData(cell=_left_handed(structures[0])[0].tolist())
    for site, frac in zip(structures[0], _left_handed(structures[0])[1]):
        left.append_atom(position=frac @ _left_handed(structures[0])[0], symbols=site.specie.symbol)
    out, node = structure_invariants.run_get_node(structure=left, descriptor=orm.Dict({"name": "amd", "k": 20}))
    assert node.is_finished_ok, node.exit_message
    assert np.allclose(out["invariants"].get_amd()[0], amd(structures[0], 20))


def test_csv_text_in_first_row_no_longer_drops_the_target_via_python_api():
    """The reader itself: targets decided over all records (pure call on real rows)."""
    from aiida_crystinv.sources import read_csv

    header, rows = perov_rows(5)
    rows[0]["dir_gap"] = "unknown"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header)
    writer.writeheader()
    writer.writerows(rows)
    result = read_csv(buffer.getvalue(), "p.csv")
    assert "dir_gap" in result.target_names
    assert result.records[0].targets["dir_gap"] == "unknown"
