"""The ``verdi data crystinv`` / ``crystinv`` commands, run with click's CliRunner on the test profile."""

from __future__ import annotations

import json
import pathlib
import re

import numpy as np
import pytest
from aiida import orm
from click.testing import CliRunner

from aiida_crystinv.cli import cmd_crystinv
from aiida_crystinv.cli.cmd_compute import DESCRIPTOR_NAMES, METRIC_NAMES
from aiida_crystinv.cli.cmd_demo import run_demo
from aiida_crystinv.workflows.demo_launch import DEMO_STEPS, DemoResult, register_demo_step
from aiida_crystinv.data import CrystalDatasetData, DistancesData, InvariantsData
from aiida_crystinv.specs import INVARIANTS, METRICS
from aiida_crystinv.sources.synthetic import ewald_landscape

from .test_importers import GOOD_BLOCK, three_blocks


def run(*args: str, ok: bool = True):
    """Invoke ``crystinv ARGS``; check the exit code and that no traceback escaped."""
    result = CliRunner().invoke(cmd_crystinv, [str(a) for a in args], catch_exceptions=False)
    text = result.output
    assert "Traceback" not in text, text
    if ok:
        assert result.exit_code == 0, text
    else:
        assert result.exit_code != 0, text
    return result


def count(cls) -> int:
    return orm.QueryBuilder().append(cls).count()


@pytest.fixture(scope="module")
def landscape_file(tmp_path_factory) -> pathlib.Path:
    """A JSON dataset file with 16 synthetic structures (one planted near-duplicate)."""
    ids, structures, targets, _ = ewald_landscape(n=16, seed=5, duplicate_fraction=0.1)
    path = tmp_path_factory.mktemp("data") / "landscape.json"
    records = [
        {"id": i, "structure": s.as_dict(), "ewald_energy_per_atom": float(e)}
        for i, s, e in zip(ids, structures, targets["ewald_energy_per_atom"])
    ]
    path.write_text(json.dumps(records))
    return path


@pytest.fixture(scope="module")
def dataset(landscape_file) -> CrystalDatasetData:
    result = run("import", landscape_file, "--id-column", "id", "--target", "ewald_energy_per_atom:eV/atom", "-L", "land")
    pk = int(result.output.split("as dataset ")[1].split()[0])
    return orm.load_node(pk)


@pytest.fixture(scope="module")
def pdd_invariants(dataset) -> InvariantsData:
    result = run("invariants", dataset.pk, "--descriptor", "pdd", "-p", "k=20", "--chunk-size", "5")
    pk = int(result.output.split("structures: node ")[1].split()[0])
    return orm.load_node(pk)


# ----------------------------------------------------------------------------- help
@pytest.mark.parametrize(
    "command", ["import", "list", "show", "export", "invariants", "distances", "neighbours", "duplicates", "demo", "setup-worker"]
)
def test_every_command_has_help_with_an_example(command):
    result = run(command, "--help")
    assert "Example" in result.output
    assert "crystinv " + command in result.output


def test_group_help_and_verdi_entry_point():
    from aiida.plugins.entry_point import load_entry_point

    assert load_entry_point("aiida.cmdline.data", "crystinv") is cmd_crystinv
    assert "crystinv demo" in run("--help").output


def test_choices_match_the_data_layer():
    assert tuple(DESCRIPTOR_NAMES) == tuple(INVARIANTS)
    assert set(METRIC_NAMES) == set(METRICS)


# ----------------------------------------------------------------------------- workflow
@pytest.mark.postgres
def test_import_list_show(dataset):
    assert len(dataset) == 16
    assert dataset.label == "land"
    assert dataset.units["ewald_energy_per_atom"] == "eV/atom"
    assert dataset.creator.process_label == "import_dataset"
    listing = run("list").output
    assert "land" in listing and "ewald_energy_per_atom" in listing
    shown = run("show", dataset.pk).output
    assert "Structures" in shown and "16" in shown and "eV/atom" in shown and "import_dataset" in shown


def test_import_with_group(landscape_file):
    run("import", landscape_file, "--id-column", "id", "--group", "cli-test-group")
    group = orm.load_group("cli-test-group")
    assert group.count() == 1
    first = next(iter(group.nodes))
    again = run("import", landscape_file, "--id-column", "id").output
    earlier = again.split("imported before: dataset ")[1].split(". Both are kept")[0]
    assert str(first.pk) in [part.split()[0] for part in earlier.split(", ")]
    assert "ewald_energy_per_atom" in run("list", "--group", "cli-test-group").output


@pytest.mark.postgres
def test_invariants_chunked_and_neighbours(dataset, pdd_invariants):
    assert pdd_invariants.descriptor == "pdd"
    assert pdd_invariants.parameters["k"] == 20
    assert pdd_invariants.ids == dataset.ids
    workflow = pdd_invariants.creator.caller
    assert workflow.process_label == "InvariantsWorkChain"
    assert len(workflow.called) >= 4  # 4 chunks of 5 (16 records) and the merge
    listing = run("list", "--what", "invariants").output
    assert str(pdd_invariants.pk) in listing
    chunk_pks = [c.outputs.invariants.pk for c in workflow.called if c.process_label == "InvariantsChunkWorkChain"]
    assert all(f"\n{pk:>4} " not in listing for pk in chunk_pks)  # chunks hidden without --all

    before = count(DistancesData)
    result = run("neighbours", pdd_invariants.pk, "-k", "2", "--limit", "3")
    assert count(DistancesData) == before + 1
    assert "Neighbour 1" in result.output and "more rows" in result.output


def test_progress_bar_while_the_chunks_run(dataset, monkeypatch):
    """With CRYSTINV_PROGRESS=always the WorkChain is driven step by step under a progress bar."""
    monkeypatch.setenv("CRYSTINV_PROGRESS", "always")
    result = CliRunner().invoke(
        cmd_crystinv, ["invariants", str(dataset.pk), "-d", "amd", "-p", "k=6", "-c", "4"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "amd invariants" in result.output and "4/4" in result.output  # the bar reached the 4 chunks
    pk = int(result.output.split("structures: node ")[1].split()[0])
    invariants = orm.load_node(pk)
    assert invariants.get_amd().shape == (16, 6) and invariants.creator.caller.is_finished_ok


@pytest.mark.postgres
def test_duplicates_finds_the_planted_pair(pdd_invariants):
    result = run("duplicates", pdd_invariants.pk, "--threshold", "0.05")
    planted = [i for i in pdd_invariants.ids if i.endswith("-dup")]
    assert planted
    for dup in planted:
        line = next(line for line in result.output.splitlines() if dup in line)
        assert dup[: -len("-dup")] in line
    assert f"{len(planted)} group(s) of near-duplicates" in result.output
    pairs = run("duplicates", pdd_invariants.pk, "--threshold", "0.05", "--pairs").output
    assert f"{len(planted)} pair(s) within 0.05" in pairs and "Near-duplicate" in pairs


def test_no_duplicates_under_a_tiny_threshold(pdd_invariants):
    assert "no pairs within" in run("duplicates", pdd_invariants.pk, "--threshold", "1e-9").output


def test_amd_distances_and_cross(dataset):
    result = run("invariants", dataset.pk, "-d", "amd", "-p", "k=10")
    amd = orm.load_node(int(result.output.split("structures: node ")[1].split()[0]))
    assert amd.get_amd().shape == (16, 10)
    result = run("distances", amd.pk)
    assert "16x16" in result.output
    result = run("distances", amd.pk, "--other", amd.pk, "--metric", "amd_l1")
    assert "amd_l1" in result.output
    distances = orm.QueryBuilder().append(DistancesData).order_by({DistancesData: {"id": "desc"}}).first()[0]
    assert distances.metric == "amd_l1"
    assert distances.get_matrix().shape == (16, 16)


@pytest.mark.postgres
def test_export_and_reimport(dataset, tmp_path):
    out = tmp_path / "two.json"
    wanted = dataset.ids[:2]
    run("export", dataset.pk, "--ids", ",".join(wanted), "-o", out)
    records = json.loads(out.read_text())["records"]
    assert [r["id"] for r in records] == wanted
    result = run("import", out, "--id-column", "id")
    again = orm.load_node(int(result.output.split("as dataset ")[1].split()[0]))
    assert again.ids == wanted
    assert again.hashes == [dataset.hashes[dataset.index_of(i)] for i in wanted]

    cif = tmp_path / "all.cif"
    run("export", dataset.pk, "-o", cif)
    assert cif.read_text().count("data_") == 16
    run("export", dataset.pk, "-o", cif, ok=False)  # exists: needs --force
    run("export", dataset.pk, "-o", cif, "--force")
    result = run("import", cif)
    assert "imported 16 structures" in result.output


def test_import_csv_of_the_shared_carbon24(csv_slice):
    path = csv_slice("carbon24.csv.gz", n=8, gz=True)
    result = run("import", path, "--id-column", "material_id", "--target", "energy_per_atom", "-L", "c24")
    assert "imported 8 structures" in result.output and "energy_per_atom [eV/atom]" in result.output
    dataset = orm.load_node(int(result.output.split("as dataset ")[1].split()[0]))
    assert dataset.target_names == ["energy_per_atom"] and dataset.elements == ["C"]
    result = run("import", path, "--cif-column", "nope", ok=False)
    assert "--cif-column" in result.output and "nothing was stored" in result.output


def test_import_folder_of_cifs(tmp_path):
    folder = tmp_path / "cifs"
    folder.mkdir()
    for name in ("a", "b", "c"):
        (folder / f"{name}.cif").write_text(GOOD_BLOCK.format(name=name, occ=1))
    assert "imported 3 structures" in run("import", folder).output
    single = tmp_path / "one.cif"
    single.write_text(GOOD_BLOCK.format(name="one", occ=1))
    assert "imported 1 structure from one.cif" in run("import", single).output


# ----------------------------------------------------------------------------- bad input
def test_empty_file(tmp_path):
    path = tmp_path / "empty.cif"
    path.write_text("")
    before = count(CrystalDatasetData)
    result = run("import", path, ok=False)
    assert "is empty" in result.output
    assert count(CrystalDatasetData) == before


def test_unknown_extension(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    result = run("import", path, ok=False)
    assert "--format" in result.output


def test_wrong_file_format(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("a,b\n1,2\n")
    result = run("import", path, "--format", "cif", ok=False)
    assert "data_" in result.output
    result = run("import", path, ok=False)
    assert "cif" in result.output.lower() and "column" in result.output


@pytest.mark.postgres
def test_malformed_cif_block_in_the_middle(tmp_path):
    path = tmp_path / "mixed.cif"
    path.write_text(three_blocks())
    before = count(CrystalDatasetData)
    result = run("import", path, ok=False)
    assert "broken" in result.output  # the message names the record
    assert count(CrystalDatasetData) == before  # nothing half-stored
    result = run("import", path, "--on-error", "skip")
    assert "imported 2 structures" in result.output and "1 record(s) skipped" in result.output
    pk = int(result.output.split("as dataset ")[1].split()[0])
    shown = run("show", pk).output
    assert "Skipped records (1)" in shown and "broken" in shown


def test_missing_file():
    result = run("import", "/nonexistent/file.cif", ok=False)
    assert "does not exist" in result.output


def test_unknown_descriptor(dataset):
    result = run("invariants", dataset.pk, "--descriptor", "sine_matrix", ok=False)
    assert "is not one of" in result.output and "pdd" in result.output


def test_unknown_and_invalid_parameters(dataset):
    assert "unknown key(s) 'kk' (did you mean 'k'?)" in run("invariants", dataset.pk, "-d", "amd", "-p", "kk=3", ok=False).output
    assert "-p.k: Input should be greater than or equal to 1" in run("invariants", dataset.pk, "-d", "amd", "-p", "k=-1", ok=False).output
    assert "key=value" in run("invariants", dataset.pk, "-d", "amd", "-p", "k", ok=False).output


def test_wrong_node_type(dataset, pdd_invariants):
    result = run("invariants", pdd_invariants.pk, "-d", "amd", ok=False)
    assert "is an InvariantsData" in result.output and "not a crystal dataset" in result.output
    result = run("neighbours", dataset.pk, ok=False)
    assert "is a CrystalDatasetData" in result.output and "not an invariants node" in result.output
    integer = orm.Int(5).store()
    assert "is an Int" in run("show", integer.pk, ok=False).output
    assert "no Data found" in run("show", 10**9, ok=False).output


def test_a_process_given_for_a_data_node_names_its_outputs(dataset, pdd_invariants):
    """The pk of the process that made a node, where the node is wanted: the message says
    it is a process and names its outputs of the wanted kind (not AiiDA's "no Data found")."""
    maker = dataset.creator
    said = run("show", maker.pk, ok=False).output
    assert f"node {maker.pk} is the process {maker.process_label} <{maker.pk}>" in said, said
    assert f"give its output instead: dataset <{dataset.pk}>" in said, said
    said = run("neighbours", maker.pk, ok=False).output  # made no invariants
    assert "not an invariants node; it has no output of that kind" in said, said
    said = run("neighbours", pdd_invariants.creator.pk, ok=False).output
    assert f"<{pdd_invariants.pk}>" in said and "give its output instead" in said, said


def test_docs_wrong_node_examples_run_as_written(dataset, pdd_invariants):
    """The two refusals shown in docs/cli.md (a node of the wrong type; a process where its
    output is wanted) are what the commands print, with this module's pks."""
    docs = (pathlib.Path(__file__).parents[2] / "docs" / "cli.md").read_text()
    maker = dataset.creator
    examples = [
        ("crystinv invariants 197 -d amd", {"197": pdd_invariants.pk}),
        ("crystinv show 3", {"3": maker.pk, "4": dataset.pk}),
    ]
    for command, pks in examples:
        block = docs.split(f"$ {command}\n", 1)[1].split("```", 1)[0]
        expected = re.sub(r"(?<![\w.])(\d+)(?![\w.])", lambda m, pks=pks: str(pks.get(m.group(1), m.group(1))), block.strip())
        args = [str(pks.get(word, word)) for word in command.split()[1:]]
        said = run(*args, ok=False).output.strip().splitlines()[-1]
        assert said == expected.replace("import_dataset", maker.process_label), (said, expected)


def test_metric_not_applicable_and_k_too_large(pdd_invariants):
    assert "does not apply" in run("neighbours", pdd_invariants.pk, "-m", "grid_emd", ok=False).output
    assert "too large" in run("neighbours", pdd_invariants.pk, "-k", "100", ok=False).output


def test_export_unknown_id(dataset, tmp_path):
    result = run("export", dataset.pk, "--ids", "nope", "-o", tmp_path / "x.json", ok=False)
    assert "no record(s) nope" in result.output
    first = dataset.ids[0]
    for ids in ([f"{first},{first}"], [first, first]):
        out = tmp_path / "twice.json"
        result = run("export", dataset.pk, *[a for i in ids for a in ("--ids", i)], "-o", out, ok=False)
        assert f"{first!r} more than once" in result.output and "Traceback" not in result.output, result.output
        assert not out.exists()


def test_daemon_not_running(dataset, aiida_profile, stopped_daemon_client):
    """--daemon without a running daemon: with no broker a clear message; with one, the
    daemon is started (for ZeroMQ that starts the broker too) and the process submitted."""
    args = ("invariants", dataset.pk, "-d", "amd", "-p", "k=5", "--daemon")
    if aiida_profile.process_control_backend is None:
        assert "has no broker" in run(*args, ok=False).output
        return
    try:
        result = run(*args)
        assert "starting the daemon" in result.output and "submitted InvariantsWorkChain" in result.output
        assert stopped_daemon_client.is_daemon_running
    finally:
        stopped_daemon_client.stop_daemon(wait=True)


@pytest.mark.daemon
def test_invariants_on_the_daemon(dataset, daemon_ready, submit_and_await):
    result = run("invariants", dataset.pk, "-d", "amd", "-p", "k=7", "--chunk-size", "8", "--daemon")
    assert "submitted InvariantsWorkChain" in result.output
    pk = int(result.output.split("<")[1].split(">")[0])
    node = submit_and_await(orm.load_node(pk), timeout=240)
    assert node.is_finished_ok, node.exit_message
    invariants = node.outputs.invariants
    assert invariants.get_amd().shape == (16, 7)
    assert invariants.ids == dataset.ids
    assert "k=7" in run("list", "--what", "invariants").output


# ----------------------------------------------------------------------------- demo
@pytest.mark.postgres
def test_run_demo_returns_the_nodes(tmp_path):
    calls = []

    def extra(result: DemoResult) -> str:
        calls.append(result)
        result.nodes["extra"] = orm.Int(len(result.nodes)).store()
        return "extra step ran"

    register_demo_step("an extra step")(extra)
    try:
        lines: list[str] = []
        result = run_demo(n=20, seed=2, output=tmp_path / "demo", report=lines.append)
    finally:
        DEMO_STEPS.remove(("an extra step", extra))
    assert calls == [result]
    assert isinstance(result.nodes["dataset"], CrystalDatasetData) and len(result.nodes["dataset"]) == 20
    assert isinstance(result.nodes["amd"], InvariantsData) and result.nodes["amd"].descriptor == "amd"
    assert isinstance(result.nodes["pdd"], InvariantsData) and result.nodes["pdd"].descriptor == "pdd"
    assert isinstance(result.nodes["knn"], DistancesData) and result.nodes["knn"].is_knn
    assert result.found_planted == len(result.planted) == 2
    assert len(lines) == 6 and lines[-1].startswith("[6/6] extra step ran")
    summary = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert summary["nodes"]["dataset"]["pk"] == result.nodes["dataset"].pk
    assert (tmp_path / "demo" / "ewald_landscape_n20_seed2.json").exists()
    dot = (tmp_path / "demo" / "provenance.dot").read_text()
    assert dot.startswith("digraph") and "InvariantsWorkChain" in dot and "DistancesData" in dot
    # the provenance: file -> import_dataset -> dataset -> workflows -> invariants -> knn
    assert result.nodes["dataset"].creator.inputs.file.uuid == result.nodes["file"].uuid
    assert result.nodes["knn"].creator.inputs.invariants.uuid == result.nodes["pdd"].uuid


def test_demo_command():
    from aiida.common.log import configure_logging

    # A real command configures the CLI logging first and the database log handler when it
    # loads the storage; in this test session the storage is loaded already, so restore the
    # database handler after the CLI logging has been set up once.
    run("list")
    configure_logging(with_orm=True)
    result = run("demo", "--n", "20", "--seed", "3", "--chunk-size", "5")
    text = result.output
    for needle in ("[1/5] generated 20", "[5/5] PDD-EMD", "Provenance:", "CrystalDatasetData", "node graph generate"):
        assert needle in text, text
    assert "demo finished" in text
    assert "submitted 4 chunks" not in text  # process reports: off the terminal ...
    workflow = orm.QueryBuilder().append(orm.WorkChainNode, filters={"attributes.process_label": "InvariantsWorkChain"})
    workflow = workflow.order_by({orm.WorkChainNode: {"id": "desc"}}).first()[0]
    logs = orm.Log.collection.get_logs_for(workflow)
    assert any("submitted 4 chunks" in entry.message for entry in logs)  # ... but in the database


# ----------------------------------------------------------------------------- export, byte for byte
def test_export_writes_what_pymatgen_writes(tmp_path):
    """`export` files equal what pymatgen's CifWriter and Structure.as_dict write for the
    imported structures (the expected text is made here, without the code under test)."""
    import gzip
    import re

    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifWriter

    structures = [
        Structure(Lattice.from_parameters(4.0, 4.1, 4.2, 90, 95, 90), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        Structure(Lattice.cubic(4.0), ["Na", {"Cl": 0.5, "Br": 0.4}], [[0, 0, 0], [0.5, 0.5, 0.5]]),  # disordered
    ]
    ids, block_names, energies = ["ord-1", "NaCl rocksalt", "dis/2"], ["ord-1", "NaCl_rocksalt", "dis_2"], [-1.5, -2.25, -3.0]
    dataset = CrystalDatasetData.from_structures(structures, ids=ids, targets={"e": energies}, units={"e": "eV/atom"})
    dataset.store()

    def cif_block(structure, name):
        return re.sub(r"^data_.*$", f"data_{name}", str(CifWriter(structure)), count=1, flags=re.MULTILINE)

    def json_text(order):
        return json.dumps({"units": {"e": "eV/atom"}, "records": [
            {"id": ids[i], "formula": structures[i].composition.reduced_formula, "structure": structures[i].as_dict(), "e": energies[i]}
            for i in order
        ]})

    run("export", dataset.pk, "-o", tmp_path / "all.cif")
    assert (tmp_path / "all.cif").read_text() == "".join(cif_block(s, n) for s, n in zip(structures, block_names))
    run("export", dataset.pk, "--ids", "dis/2,ord-1", "-o", tmp_path / "two.cif")
    assert (tmp_path / "two.cif").read_text() == cif_block(structures[2], "dis_2") + cif_block(structures[0], "ord-1")
    run("export", dataset.pk, "-o", tmp_path / "all.json")
    assert (tmp_path / "all.json").read_text() == json_text([0, 1, 2])
    run("export", dataset.pk, "-i", "dis/2", "-i", "NaCl rocksalt", "-o", tmp_path / "two.json.gz")
    with gzip.open(tmp_path / "two.json.gz", "rt") as handle:
        assert handle.read() == json_text([2, 1])
    assert dataset.to_json_text(["ord-1"]) == json_text([0])
    # the JSON export reads back with its values and units
    back = CrystalDatasetData.from_file(tmp_path / "all.json")
    assert back.ids == ids and back.units == {"e": "eV/atom"}
    np.testing.assert_array_equal(back.get_target("e"), energies)
    with pytest.raises(KeyError, match="no record"):
        dataset.to_cif_text(["ord-1", "nope", "neither"])


def test_repeated_parameter_is_refused(dataset):
    output = run("invariants", dataset.pk, "-d", "amd", "-p", "k=10", "-p", "k=5", ok=False).output
    assert "-p: parameter(s) k given more than once" in output and "Traceback" not in output
