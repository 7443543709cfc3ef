"""Tables out: ``--format csv|json`` / ``-o FILE`` of the table commands, the CSV dataset
export and its re-import with units, and ``to_dataframe`` of every node type.

Every value written is compared with the node's own arrays (read here, not through the
code that wrote the table) or with an independent computation (scipy's ``squareform``, a
brute-force sort of the full distance matrix, connected components of scipy's csgraph,
scikit-learn's metrics); floats must come back bit-exact.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import pathlib
import re

import numpy as np
import pytest
from aiida import orm
from click.testing import CliRunner

from aiida_crystinv.cli import cmd_crystinv
from aiida_crystinv.data import CrystalDatasetData, DistancesData, InvariantsData, to_dataframe
from aiida_crystinv.sources.synthetic import ewald_landscape

from .conftest import dataset_path
from .test_importers import GOOD_BLOCK


def run(*args, ok: bool = True, code: int | None = None):
    """``crystinv ARGS``; stdout and stderr apart (click 8.2). No traceback may escape."""
    result = CliRunner().invoke(cmd_crystinv, [str(a) for a in args], catch_exceptions=False)
    assert "Traceback" not in result.output, result.output
    if code is not None:
        assert result.exit_code == code, result.output
    elif ok:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code != 0, result.output
    return result


def node_in(text: str, pattern: str = r"node (\d+)"):
    return orm.load_node(int(re.search(pattern, text).group(1)))


def bits(values) -> np.ndarray:
    """float64 values as their bit patterns, to compare floats bit for bit."""
    return np.ascontiguousarray(np.asarray(values, dtype=np.float64)).view(np.int64)


def read_csv_text(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def count(cls) -> int:
    return orm.QueryBuilder().append(cls).count()


#: Target values that a float formatted with fewer digits would not bring back.
AWKWARD = [0.1 + 0.2, 1.0 / 3.0, -2.5e-300, 5e-324, 123456789.12345679, -0.0, 1e308, 2.0**-1074 * 3]


@pytest.fixture(scope="module")
def landscape() -> CrystalDatasetData:
    """16 synthetic structures (one planted near-duplicate) with awkward target values and
    three kinds of unit: a plain one, one with a space and slash, and a declared-empty unit
    on a name whose unit is otherwise known (``band_gap``)."""
    ids, structures, targets, _ = ewald_landscape(n=16, seed=5, duplicate_fraction=0.1)
    rng = np.random.default_rng(3)
    awkward = np.array(AWKWARD + list(rng.normal(size=16 - len(AWKWARD)) * 1e-3))
    node = CrystalDatasetData.from_structures(
        structures,
        ids=ids,
        targets={"ewald_energy_per_atom": targets["ewald_energy_per_atom"], "awkward": awkward,
                 "band_gap": rng.uniform(0, 3, size=16)},
        units={"ewald_energy_per_atom": "eV/atom", "awkward": "kJ / mol", "band_gap": ""},
    )
    node.label = "tables-landscape"
    return node.store()


@pytest.fixture(scope="module")
def pdd(landscape) -> InvariantsData:
    return node_in(run("invariants", landscape.pk, "-d", "pdd", "-p", "k=8").output, r"structures: node (\d+)")


@pytest.fixture(scope="module")
def amd(landscape) -> InvariantsData:
    return node_in(run("invariants", landscape.pk, "-d", "amd", "-p", "k=8").output, r"structures: node (\d+)")


@pytest.fixture(scope="module")
def pdd_matrix(pdd) -> DistancesData:
    """All pairwise PDD-EMD distances (condensed node), the reference of the other tables."""
    return node_in(run("distances", pdd.pk).output)


# ------------------------------------------------------------------------ dataset export -> import
def _imported(path: pathlib.Path) -> CrystalDatasetData:
    result = run("import", path)
    return node_in(result.output, r"as dataset (\d+)")


@pytest.mark.parametrize("suffix", ["csv", "csv.gz", "json"])
def test_export_import_round_trip_keeps_every_value_and_unit(landscape, tmp_path, suffix):
    out = tmp_path / f"all.{suffix}"
    run("export", landscape.pk, "-o", out)
    again = _imported(out)
    assert again.pk != landscape.pk
    assert again.ids == landscape.ids
    assert again.formulas == landscape.formulas
    assert again.target_names == landscape.target_names
    assert again.units == landscape.units == {"ewald_energy_per_atom": "eV/atom", "awkward": "kJ / mol", "band_gap": ""}
    for name in landscape.target_names:  # bit for bit (the node's arrays, not the file)
        np.testing.assert_array_equal(bits(again.get_target(name)), bits(landscape.get_target(name)))
    for i in range(len(landscape)):  # the structures: CIF has 6+ decimals and no orientation
        a, b = landscape.get_structure(i), again.get_structure(i)
        np.testing.assert_allclose(b.lattice.abc + b.lattice.angles, a.lattice.abc + a.lattice.angles, atol=1e-5)
        sites_a = sorted((str(site.species), *np.round(site.frac_coords % 1.0, 5)) for site in a)
        sites_b = sorted((str(site.species), *np.round(site.frac_coords % 1.0, 5)) for site in b)
        assert sites_b == sites_a  # the same sites (CIF groups them by species)


def test_csv_export_header_and_cells(landscape, tmp_path):
    out = tmp_path / "some.csv"
    wanted = landscape.ids[3:6]
    run("export", landscape.pk, "--ids", ",".join(wanted), "-o", out)
    header, rows = read_csv_text(out.read_text())
    assert header == ["id", "formula", "cif", "ewald_energy_per_atom [eV/atom]", "awkward [kJ / mol]", "band_gap []"]
    assert [r["id"] for r in rows] == wanted
    assert all(sum(line.startswith("data_") for line in r["cif"].splitlines()) == 1 for r in rows)
    awkward = landscape.get_target("awkward")
    for r, i in zip(rows, range(3, 6)):
        assert float(r["awkward [kJ / mol]"]) == awkward[i]


def test_export_of_the_shared_mp_file_round_trips_through_csv(tmp_path):
    """40 real Materials Project records (JSON) -> dataset -> CSV -> dataset: moduli bit-exact, GPa kept."""
    with gzip.open(dataset_path("mp_elasticity_binaries.json.gz"), "rt") as handle:
        records = json.load(handle)[:40]
    source = tmp_path / "mp40.json"
    source.write_text(json.dumps(records))
    result = run("import", source, "--target", "bulk_modulus_vrh:GPa", "--target", "shear_modulus_vrh:GPa")
    mp = node_in(result.output, r"as dataset (\d+)")
    run("export", mp.pk, "-o", tmp_path / "mp40.csv")
    header, rows = read_csv_text((tmp_path / "mp40.csv").read_text())
    assert header[3:] == ["bulk_modulus_vrh [GPa]", "shear_modulus_vrh [GPa]"]
    # the file against the source records, read here with the json module
    for row, record in zip(rows, records):
        assert row["id"] == record["mp_id"]
        assert float(row["bulk_modulus_vrh [GPa]"]) == float(record["bulk_modulus_vrh"])
    again = _imported(tmp_path / "mp40.csv")
    assert again.units == {"bulk_modulus_vrh": "GPa", "shear_modulus_vrh": "GPa"}
    for name in ("bulk_modulus_vrh", "shear_modulus_vrh"):
        np.testing.assert_array_equal(bits(again.get_target(name)), bits([r[name] for r in records]))


def test_csv_reader_takes_units_from_headers():
    from aiida_crystinv.sources import read_csv
    from aiida_crystinv.sources.tabular import split_header_unit

    assert split_header_unit("bulk_modulus [GPa]") == ("bulk_modulus", "GPa")
    assert split_header_unit("band_gap []") == ("band_gap", "")
    assert split_header_unit("cif") == ("cif", None)
    cif = GOOD_BLOCK.format(name="x", occ=1)
    text = 'id,cif,e [eV],band_gap [],plain\nx,"' + cif + '",1.5,0.25,2\n'
    result = read_csv(text, "t.csv")
    assert result.units == {"e": "eV", "band_gap": "", "plain": ""}
    assert result.records[0].targets == {"e": 1.5, "band_gap": 0.25, "plain": 2.0}
    # units given by the caller win; target columns are named without the unit
    result = read_csv(text, "t.csv", target_columns=["e"], units={"e": "meV"})
    assert result.units == {"e": "meV"}
    from aiida_crystinv.sources import SourceError

    with pytest.raises(SourceError, match="more than once"):
        read_csv('id,cif,e [eV],e\nx,"' + cif + '",1,2\n', "t.csv")


# ------------------------------------------------------------------------ neighbours
def test_neighbours_csv_on_stdout_equals_the_node_and_brute_force(pdd, pdd_matrix):
    result = run("neighbours", pdd.pk, "-k", "3", "--format", "csv")
    header, rows = read_csv_text(result.stdout)  # stdout holds the table only
    assert header == ["query", "neighbour", "rank", "distance [Angstrom]"]
    knn = node_in(result.stderr)
    distances, indices = knn.get_knn()
    ids = knn.row_ids
    assert len(rows) == distances.size == 16 * 3  # every row, no --limit cut
    for n, row in enumerate(rows):
        i, j = divmod(n, 3)
        assert row["query"] == ids[i] and int(row["rank"]) == j + 1
        assert row["neighbour"] == knn.col_ids[indices[i, j]]
        assert float(row["distance [Angstrom]"]) == distances[i, j]  # bit-exact
    # independently: the k smallest off-diagonal entries of the full PDD-EMD matrix
    matrix = pdd_matrix.get_matrix().copy()
    np.fill_diagonal(matrix, np.inf)
    brute = np.sort(matrix, axis=1)[:, :3]
    got = np.array([float(r["distance [Angstrom]"]) for r in rows]).reshape(16, 3)
    np.testing.assert_allclose(got, brute, rtol=1e-9, atol=1e-12)


def test_neighbours_json_to_file_and_overwrite_refused(pdd, tmp_path):
    out = tmp_path / "nn.json"
    result = run("neighbours", pdd.pk, "-k", "2", "-o", out)  # format from the suffix
    assert result.stdout.strip() == "" or "Success" in result.stdout  # the table went to the file
    document = json.loads(out.read_text())
    assert document["units"] == {"distance": "Angstrom"}
    assert document["columns"] == ["query", "neighbour", "rank", "distance"]
    knn = node_in(result.output)
    distances, _ = knn.get_knn()
    np.testing.assert_array_equal(bits([r["distance"] for r in document["records"]]), bits(distances.ravel()))

    before, text = count(DistancesData), out.read_text()
    refused = run("neighbours", pdd.pk, "-k", "2", "-o", out, code=2)
    assert "exists" in refused.output and "--force" in refused.output
    assert count(DistancesData) == before, "refused before any work"
    assert out.read_text() == text
    run("neighbours", pdd.pk, "-k", "3", "-o", out, "--force")
    assert len(json.loads(out.read_text())["records"]) == 16 * 3


def test_neighbours_text_table_is_cut_at_limit(pdd):
    result = run("neighbours", pdd.pk, "-k", "2", "--limit", "4")
    assert "... 12 more rows" in result.stdout
    assert len([line for line in result.stdout.splitlines() if "(" in line and "Neighbour" not in line]) >= 4


# ------------------------------------------------------------------------ distances
def test_distances_long_and_square_match_the_node_matrix(pdd, tmp_path):
    from scipy.spatial.distance import squareform

    long_run = run("distances", pdd.pk, "--format", "csv")
    node = node_in(long_run.stderr)
    header, rows = read_csv_text(long_run.stdout)
    assert header == ["row", "column", "distance [Angstrom]"]
    condensed = node.get_condensed()
    assert len(rows) == condensed.size == 16 * 15 // 2
    np.testing.assert_array_equal(bits([r["distance [Angstrom]"] for r in rows]), bits(condensed))
    ids = node.row_ids
    position = {rid: i for i, rid in enumerate(ids)}
    rebuilt = np.zeros((16, 16))
    for r in rows:
        i, j = position[r["row"]], position[r["column"]]
        assert i < j
        rebuilt[i, j] = rebuilt[j, i] = float(r["distance [Angstrom]"])
    np.testing.assert_array_equal(rebuilt, squareform(condensed))  # scipy's expansion

    out = tmp_path / "square.json"
    run("distances", pdd.pk, "--form", "square", "-o", out)
    document = json.loads(out.read_text())
    assert document["columns"] == ["id"] + ids and document["units"] == {"distance": "Angstrom"}
    square = np.array([[rec[c] for c in ids] for rec in document["records"]])
    assert [rec["id"] for rec in document["records"]] == ids
    np.testing.assert_array_equal(square, rebuilt)  # long <-> square


def test_distances_cross_with_capital_o(amd):
    result = run("distances", amd.pk, "-O", amd.pk, "-m", "amd_l1", "--format", "json")
    document = json.loads(result.stdout)
    node = node_in(result.stderr)
    assert node.layout == "dense" and node.metric == "amd_l1"
    matrix = node.get_matrix()
    assert len(document["records"]) == matrix.size
    np.testing.assert_array_equal([r["distance"] for r in document["records"]], matrix.ravel())
    # independently: the L1 distances of the node's AMD vectors
    vectors = amd.get_amd()
    np.testing.assert_allclose(matrix, np.abs(vectors[:, None, :] - vectors[None, :, :]).sum(-1), rtol=1e-12)


def test_distances_without_table_options_prints_the_summary_only(amd):
    result = run("distances", amd.pk)
    assert "median" in result.stdout and "row,column" not in result.stdout


# ------------------------------------------------------------------------ duplicates
THRESHOLD = 0.05


def _reference_pairs(matrix_node: DistancesData, threshold: float) -> list[tuple[str, str, float]]:
    matrix, ids = matrix_node.get_matrix(), matrix_node.row_ids
    i, j = np.nonzero(np.triu(matrix <= threshold, k=1))
    return sorted((min(ids[a], ids[b]), max(ids[a], ids[b]), matrix[a, b]) for a, b in zip(i, j))


def test_duplicate_pairs_csv_equal_the_full_matrix(pdd, pdd_matrix):
    expected = _reference_pairs(pdd_matrix, THRESHOLD)
    assert expected, "the landscape has a planted near-duplicate"
    result = run("duplicates", pdd.pk, "-t", THRESHOLD, "--pairs", "--format", "csv")
    header, rows = read_csv_text(result.stdout)
    assert header == ["structure", "near_duplicate", "distance [Angstrom]"]
    got = sorted((r["structure"], r["near_duplicate"], float(r["distance [Angstrom]"])) for r in rows)
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    np.testing.assert_allclose([g[2] for g in got], [e[2] for e in expected], rtol=1e-12, atol=1e-15)


def test_duplicate_groups_json_are_the_connected_components(pdd, pdd_matrix):
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    result = run("duplicates", pdd.pk, "-t", THRESHOLD, "--format", "json")
    document = json.loads(result.stdout)
    assert document["columns"] == ["group", "size", "representative", "member"]
    groups: dict[int, list[str]] = {}
    for record in document["records"]:
        groups.setdefault(record["group"], []).append(record["member"])
        assert record["size"] == sum(1 for r in document["records"] if r["group"] == record["group"])
    ids = pdd_matrix.row_ids
    matrix = pdd_matrix.get_matrix()
    adjacency = csr_matrix(np.triu(matrix <= THRESHOLD, k=1))
    _, labels = connected_components(adjacency, directed=False)
    expected = sorted(sorted(ids[i] for i in np.flatnonzero(labels == label))
                      for label in np.unique(labels) if np.sum(labels == label) > 1)
    assert sorted(sorted(m) for m in groups.values()) == expected
    for record in document["records"]:
        assert record["representative"] == min(groups[record["group"]])


def test_duplicates_node_to_dataframe(pdd, pdd_matrix):
    from aiida_crystinv.workflows.neighbours import find_duplicates

    _, process = find_duplicates(pdd, THRESHOLD)
    node = process.outputs.duplicates
    pairs = to_dataframe(node)
    expected = _reference_pairs(pdd_matrix, THRESHOLD)  # the full matrix, independently
    got = sorted(zip(pairs["structure"], pairs["near_duplicate"], pairs["distance"]))
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    np.testing.assert_allclose([g[2] for g in got], [e[2] for e in expected], rtol=1e-12, atol=1e-15)
    assert pairs.attrs["units"] == {"distance": "Angstrom"}
    assert list(pairs["distance"]) == sorted(pairs["distance"])
    groups = to_dataframe(node, what="groups")
    document = json.loads(run("duplicates", pdd.pk, "-t", THRESHOLD, "--format", "json").stdout)
    assert groups.to_dict("records") == document["records"]


def test_no_duplicates_is_an_empty_valid_table(pdd):
    result = run("duplicates", pdd.pk, "-t", 0, "--pairs", "--format", "json")
    assert json.loads(result.stdout)["records"] == []
    assert "no pairs" in result.stderr


# ------------------------------------------------------------------------ list, show, search
def test_list_csv_and_json_parse(landscape, pdd, amd):
    header, rows = read_csv_text(run("list", "--format", "csv").stdout)
    assert header[:2] == ["PK", "Label"]
    assert str(landscape.pk) in {r["PK"] for r in rows}
    document = json.loads(run("list", "--what", "invariants", "--format", "json").stdout)
    by_pk = {r["PK"]: r for r in document["records"]}
    assert by_pk[pdd.pk]["Descriptor"] == "pdd" and by_pk[pdd.pk]["Rows"] == len(pdd)
    assert by_pk[amd.pk]["Descriptor"] == "amd"


def test_show_writes_the_node_as_a_table(landscape, pdd, amd, pdd_matrix, tmp_path):
    header, rows = read_csv_text(run("show", landscape.pk, "--format", "csv").stdout)
    assert header == ["id", "formula", "ewald_energy_per_atom [eV/atom]", "awkward [kJ / mol]", "band_gap"]
    assert [r["id"] for r in rows] == landscape.ids
    np.testing.assert_array_equal(bits([r["awkward [kJ / mol]"] for r in rows]), bits(landscape.get_target("awkward")))

    document = json.loads(run("show", amd.pk, "--format", "json").stdout)
    assert document["columns"] == ["id"] + [f"amd_{i}" for i in range(1, 9)]
    np.testing.assert_array_equal(
        np.array([[r[f"amd_{i}"] for i in range(1, 9)] for r in document["records"]]), amd.get_amd()
    )
    out = tmp_path / "pdd.csv"
    run("show", pdd.pk, "-o", out)
    header, rows = read_csv_text(out.read_text())
    assert header[:3] == ["id", "row", "weight"] and header[3] == "d_1 [Angstrom]"
    stacked = np.concatenate(pdd.get_pdds())
    np.testing.assert_array_equal(np.array([[float(r[h]) for h in header[2:]] for r in rows]), stacked)
    header, rows = read_csv_text(run("show", pdd_matrix.pk, "--format", "csv").stdout)  # one row per pair
    assert header == ["row", "column", "distance [Angstrom]"]
    np.testing.assert_array_equal(bits([r["distance [Angstrom]"] for r in rows]), bits(pdd_matrix.get_condensed()))
    # the summary still prints without table options
    assert "Targets" in run("show", landscape.pk).stdout


def test_search_query_format_and_table(landscape, tmp_path):
    queries = tmp_path / "q.json"
    run("export", landscape.pk, "--ids", ",".join(landscape.ids[:3]), "-o", queries)
    result = run("search", queries, "--query-format", "json", "-r", landscape.pk, "-d", "amd", "-p", "k=8", "-k", "2",
                 "--format", "csv")
    header, rows = read_csv_text(result.stdout)
    assert header == ["query", "neighbour", "rank", "distance [Angstrom]"]
    knn = node_in(result.stderr, r": node (\d+) \(reference")
    distances, _ = knn.get_knn()
    assert len(rows) == 6
    np.testing.assert_array_equal(bits([r["distance [Angstrom]"] for r in rows]), bits(distances.ravel()))
    assert [r["query"] for r in rows[::2]] == landscape.ids[:3]
    assert all(float(r["distance [Angstrom]"]) == 0.0 for r in rows[::2])  # each query is in the reference
    assert "no such option: --format" not in run("search", "--help").output


# ------------------------------------------------------------------------ to_dataframe
def test_dataset_to_dataframe(landscape):
    df = landscape.to_dataframe()
    assert list(df.columns) == ["id", "formula", "ewald_energy_per_atom", "awkward", "band_gap"]
    assert df.shape == (16, 5)
    assert df.attrs["units"] == {"ewald_energy_per_atom": "eV/atom", "awkward": "kJ / mol"}
    assert df["id"].tolist() == landscape.ids
    np.testing.assert_array_equal(bits(df["awkward"]), bits(landscape.get_target("awkward")))
    with_cif = to_dataframe(landscape, cif=True)
    assert with_cif["cif"].str.contains("\ndata_|^data_", regex=True).all()


def test_invariants_to_dataframe(pdd, amd):
    df = amd.to_dataframe()
    assert df.shape == (16, 9) and df.attrs["units"]["amd_3"] == "Angstrom"
    np.testing.assert_array_equal(df.iloc[:, 1:].to_numpy(), amd.get_amd())
    rows = pdd.to_dataframe()
    pdds = pdd.get_pdds()
    assert len(rows) == sum(len(p) for p in pdds)
    np.testing.assert_array_equal(rows.iloc[:, 2:].to_numpy(), np.concatenate(pdds))
    # each record's weights sum to 1, and the weighted mean of its rows is its AMD
    weights = rows.groupby("id", sort=False)["weight"].sum()
    np.testing.assert_allclose(weights.to_numpy(), 1.0, rtol=1e-12)
    d = rows[[f"d_{i}" for i in range(1, 9)]].to_numpy() * rows[["weight"]].to_numpy()
    amd_from_rows = np.vstack([d[(rows["id"] == rid).to_numpy()].sum(0) for rid in pdd.ids])
    np.testing.assert_allclose(amd_from_rows, amd.get_amd(), rtol=1e-10)
    np.testing.assert_allclose(pdd.to_dataframe(pdd="amd").iloc[:, 1:].to_numpy(), amd.get_amd(), rtol=1e-10)
    with pytest.raises(ValueError, match="pdd="):
        pdd.to_dataframe(pdd="wide")


def test_distances_to_dataframe_long_square_knn(pdd, pdd_matrix):
    from scipy.spatial.distance import squareform

    square = pdd_matrix.to_dataframe()
    assert square.shape == (16, 16) and list(square.index) == pdd_matrix.row_ids
    np.testing.assert_array_equal(square.to_numpy(), squareform(pdd_matrix.get_condensed()))
    long = to_dataframe(pdd_matrix, form="long")
    assert long.shape == (120, 3) and long.attrs["units"] == {"distance": "Angstrom"}
    pivot = long.pivot(index="row", columns="column", values="distance")
    for (a, b), value in pivot.stack().items():
        assert square.loc[a, b] == value == square.loc[b, a]

    knn = node_in(run("neighbours", pdd.pk, "-k", "4", "--limit", "0").output)
    frame = knn.to_dataframe()
    distances, indices = knn.get_knn()
    assert list(frame.columns) == ["query", "neighbour", "rank", "distance"]
    np.testing.assert_array_equal(frame["distance"].to_numpy().reshape(16, 4), distances)
    assert frame["rank"].tolist() == [1, 2, 3, 4] * 16
    assert frame["neighbour"].tolist() == [knn.col_ids[j] for j in indices.ravel()]
    with pytest.raises(ValueError, match="no square form"):
        knn.to_dataframe(form="square")


def test_predictions_and_metrics_to_dataframe(landscape):
    from sklearn.metrics import mean_absolute_error, r2_score

    from aiida_crystinv.calculations.learning import cross_validate

    outputs = cross_validate(
        dataset=landscape,
        target=orm.Str("ewald_energy_per_atom"),
        model=orm.Dict({"name": "krr", "kernel": "laplacian"}),
        split=orm.Dict({"kind": "kfold", "n_splits": 4, "seed": 0}),
        descriptor=orm.Dict({"name": "amd", "k": 8}),
    )
    predictions, metrics = outputs["predictions"], outputs["metrics"]
    df = to_dataframe(predictions)
    assert list(df.columns) == ["id", "y_true", "y_pred", "fold"]
    assert df.attrs["units"] == {"y_true": "eV/atom", "y_pred": "eV/atom"}
    np.testing.assert_array_equal(df["y_pred"].to_numpy(), predictions.get_array("y_pred"))
    assert df["id"].tolist() == predictions.get_array("ids").tolist()
    row = to_dataframe(metrics)
    assert len(row) == 1 and row.attrs["units"]["mae"] == "eV/atom"
    assert row["mae"].iloc[0] == pytest.approx(mean_absolute_error(df["y_true"], df["y_pred"]), rel=1e-12)
    assert row["r2"].iloc[0] == pytest.approx(r2_score(df["y_true"], df["y_pred"]), rel=1e-9)
    with pytest.raises(TypeError, match="not a dataset"):
        to_dataframe(orm.Int(3))


# ------------------------------------------------------------------------ output.py directly
def test_emit_table_formats(tmp_path, capsys):
    from aiida_crystinv.cli.output import emit_table, format_table, resolve_format

    rows = [["a", 0.1 + 0.2, 3], ["b", float("nan"), np.int64(4)], ["c", np.float32(0.1), None]]
    text = format_table(["id", "x", "n"], rows, table_format="csv", units={"x": "eV"})
    header, parsed = read_csv_text(text)
    assert header == ["id", "x [eV]", "n"]
    assert float(parsed[0]["x [eV]"]) == 0.1 + 0.2 and np.isnan(float(parsed[1]["x [eV]"]))
    assert np.float32(float(parsed[2]["x [eV]"])) == np.float32(0.1) and parsed[2]["n"] == ""
    document = json.loads(format_table(["id", "x", "n"], rows, table_format="json", units={"x": "eV"}))
    assert document["records"][1] == {"id": "b", "x": None, "n": 4}  # NaN is null: strict JSON
    assert document["records"][0]["x"] == 0.1 + 0.2
    assert "... 2 more rows" in format_table(["id", "x", "n"], rows, table_format="table", limit=1)
    assert resolve_format(None, pathlib.Path("x.JSON")) == "json"
    assert resolve_format(None, pathlib.Path("x.txt")) == "table"
    assert resolve_format("csv", pathlib.Path("x.json")) == "csv"
    out = tmp_path / "t.csv"
    emit_table(["id"], [["a"]], table_format="csv", output=out)
    assert out.read_text() == "id\na\n"
    import click

    with pytest.raises(click.BadParameter, match="exists"):
        emit_table(["id"], [["b"]], table_format="csv", output=out)
    with pytest.raises(click.BadParameter, match="does not exist"):
        emit_table(["id"], [["b"]], table_format="csv", output=tmp_path / "no" / "t.csv")
    with pytest.raises(ValueError, match="written whole"):
        emit_table(["id"], [["b"]], table_format="json", output=None, total_rows=3)
    with pytest.raises(ValueError, match="2 values for 1 columns"):
        format_table(["id"], [["a", 1]], table_format="csv")


# ------------------------------------------------------------------------ the examples of docs/cli.md
DOCS = pathlib.Path(__file__).parents[2] / "docs" / "cli.md"

#: ``(command as in the docs, first line of its stdout as in the docs)``; the docs' PKs:
#: 11 the dataset, 16 AMD invariants, 21 PDD invariants (mapped to this module's nodes).
DOC_COMMANDS = [
    ("crystinv neighbours 21 -k 2 --format csv", "query,neighbour,rank,distance [Angstrom]"),
    ("crystinv distances 16 --format csv", "row,column,distance [Angstrom]"),
    ("crystinv duplicates 21 --format csv", "group,size,representative,member"),
    ("crystinv list --format csv", "PK,Label,Structures,Targets,Skipped,Created"),
    ("crystinv duplicates 21 --pairs --format json",
     '{"units": {"distance": "Angstrom"}, "columns": ["structure", "near_duplicate", "distance"], "records": ['),
    ("crystinv show 16 --format csv", "id,amd_1 [Angstrom]"),
]


@pytest.mark.parametrize("command, first_line", DOC_COMMANDS)
def test_docs_cli_examples_run_as_written(command, first_line, landscape, amd, pdd):
    text = DOCS.read_text()
    assert f"$ {command}" in text and first_line in text
    pks = {"11": landscape.pk, "16": amd.pk, "21": pdd.pk}
    args = [str(pks.get(word, word)) for word in command.split()[1:]]
    result = run(*args)
    assert result.stdout.splitlines()[0].startswith(first_line)


def test_docs_cli_file_examples(landscape, amd, pdd, tmp_path, monkeypatch):
    """The examples that write files: export -> import of CSV, -o with the refusal, --form square."""
    text = DOCS.read_text()
    for command in ("crystinv export 11 -o all.csv", "crystinv import all.csv", "crystinv neighbours 21 -k 2 -o nn.json",
                    "crystinv distances 16 --form square -o d.csv"):
        assert f"$ {command}" in text
    monkeypatch.chdir(tmp_path)
    run("export", landscape.pk, "-o", "all.csv")
    assert (tmp_path / "all.csv").read_text().splitlines()[0].startswith("id,formula,cif,ewald_energy_per_atom [eV/atom]")
    assert "imported 16 structures from all.csv" in run("import", "all.csv").output
    assert "wrote 32 rows to nn.json" in run("neighbours", pdd.pk, "-k", "2", "-o", "nn.json").stderr
    refused = run("neighbours", pdd.pk, "-k", "2", "-o", "nn.json", code=2)
    assert "Error: Invalid value for '-o' / '--output': nn.json exists; give --force to overwrite it" in refused.output
    assert "give --force to overwrite it, or another file name" in text
    run("distances", amd.pk, "--form", "square", "-o", "d.csv")
    assert (tmp_path / "d.csv").read_text().splitlines()[0] == ",".join(["id"] + amd.ids)


def test_docs_to_dataframe_python_example(pdd, pdd_matrix):
    """The Python block of the to_dataframe section, with its PKs mapped to this module's nodes."""
    text = DOCS.read_text().split("## to_dataframe", 1)[1]
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    pks = {"21": pdd.pk, "36": pdd_matrix.pk}
    code = re.sub(r"load_node\((\d+)\)", lambda m: f"load_node({pks[m.group(1)]})", code).replace("load_profile()", "")
    namespace: dict = {}
    exec(compile(code, str(DOCS), "exec"), namespace)  # noqa: S102 - the documented example itself
    assert list(namespace["df"].columns[:3]) == ["id", "row", "weight"]
    assert namespace["amd"].shape == (16, 9)
    assert list(namespace["pairs"].columns) == ["row", "column", "distance"]
    assert namespace["df"].attrs["units"]["d_1"] == "Angstrom"


def test_csv_text_keeps_bracketed_names_and_declared_empty_units():
    """A target named like a header with a unit, and a known name declared unitless, read
    back with their own names and units (what the brackets in the header are for)."""
    from aiida_crystinv.sources import read_csv

    ids, structures, _, _ = ewald_landscape(n=3, seed=2, duplicate_fraction=0.0)
    values = {"gap [calc]": [0.5, 1.0 / 3.0, 2.0], "band_gap": [1e-310, 2.0, 3.0], "e": [-1.5, 0.1 + 0.2, 7.0]}
    units = {"gap [calc]": "", "band_gap": "", "e": "eV"}
    node = CrystalDatasetData.from_structures(structures, ids=ids, targets=values, units=units)
    text = node.to_csv_text()
    assert text.splitlines()[0] == "id,formula,cif,gap [calc] [],band_gap [],e [eV]"
    result = read_csv(text, "x.csv")
    assert result.units == units
    for name, column in values.items():
        np.testing.assert_array_equal(bits([r.targets[name] for r in result.records]), bits(column))
