"""Models from the command line (`crystinv predict`, `crystinv show MODEL`), the progress of
`crystinv study run`, and the pictures (`crystinv plot ...`, the study report's, and the pure
functions of :mod:`aiida_crystinv.learning.maps` behind them)."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import yaml
from aiida import orm
from click.testing import CliRunner
from scipy.spatial.distance import pdist, squareform

from aiida_crystinv.calculations.functions import compute_distances, compute_invariants
from aiida_crystinv.calculations.learning import predict, train_model
from aiida_crystinv.cli import cmd_crystinv
from aiida_crystinv.data import CrystalDatasetData, DistancesData
from aiida_crystinv.learning import maps
from aiida_crystinv.sources.synthetic import ewald_landscape

TARGET = "ewald_energy_per_atom"


def run(*args, ok: bool = True):
    """``crystinv ARGS``; the exit status as expected and no traceback."""
    result = CliRunner().invoke(cmd_crystinv, [str(a) for a in args], catch_exceptions=False)
    assert "Traceback" not in result.output, result.output
    assert (result.exit_code == 0) == ok, result.output
    return result


def refused(*args) -> str:
    """Run a command that must fail: exit status non-zero and exactly one error line."""
    result = run(*args, ok=False)
    errors = [line for line in result.output.splitlines() if line.startswith(("Critical:", "Error:"))]
    assert len(errors) == 1, result.output
    return errors[0]


def n_nodes() -> int:
    return orm.QueryBuilder().append(orm.Node).count()


def assert_picture(path: pathlib.Path, min_kb: float = 10.0) -> None:
    """A real PNG: larger than ``min_kb`` and not blank (its pixels vary)."""
    import matplotlib.image

    assert path.exists(), path
    assert path.stat().st_size > min_kb * 1024, path.stat().st_size
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and min(pixels.shape[:2]) > 200
    assert float(pixels[..., :3].std()) > 0.05, "the picture is (nearly) blank"


def landscape_file(path: pathlib.Path, n: int, seed: int) -> pathlib.Path:
    ids, structures, targets, _ = ewald_landscape(n=n, seed=seed, duplicate_fraction=0.0)
    path.write_text(json.dumps([{"id": i, "structure": s.as_dict(), TARGET: float(e)}
                                for i, s, e in zip(ids, structures, targets[TARGET])]))
    return path


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def dataset() -> CrystalDatasetData:
    from aiida_crystinv.calculations.sources import synthetic_dataset

    node = synthetic_dataset(parameters=orm.Dict({"n": 24, "seed": 3, "duplicate_fraction": 0.0}))["dataset"]
    node.label = "model-cli-train"
    return node


@pytest.fixture(scope="module")
def amd(dataset):
    return compute_invariants(dataset=dataset, descriptor=orm.Dict({"name": "amd", "k": 8}))["invariants"]


@pytest.fixture(scope="module")
def distances(amd) -> DistancesData:
    return compute_distances(invariants=amd, metric=orm.Dict({"name": "amd_linf"}))["distances"]


@pytest.fixture(scope="module")
def krr_model(dataset):
    results = train_model(dataset=dataset, target=orm.Str(TARGET), descriptor=orm.Dict({"name": "amd", "k": 8}),
                          model=orm.Dict({"name": "krr", "alphas": [0.01], "gamma_factors": [1.0], "cv": 3}))
    return results["model"]


@pytest.fixture(scope="module")
def knn_model(dataset, amd):
    results = train_model(dataset=dataset, target=orm.Str(TARGET), invariants=amd,
                          model=orm.Dict({"name": "knn", "k": [1, 3], "cv": 3, "metric": "amd_linf"}))
    return results["model"]


@pytest.fixture(scope="module")
def queries(tmp_path_factory) -> pathlib.Path:
    return landscape_file(tmp_path_factory.mktemp("queries") / "queries.json", n=6, seed=11)


# ----------------------------------------------------------------------------- predict
def _predicted(output: str) -> dict:
    document = json.loads(output)
    return {r["id"]: r for r in document["records"]}, document["units"]


def test_predict_from_a_file_equals_predict_in_python(krr_model, queries, tmp_path):
    out = tmp_path / "pred.json"
    result = run("predict", krr_model.pk, queries, "-o", out)
    records, units = _predicted(out.read_text())
    assert units == {"predicted": "eV/atom", "true": "eV/atom"}
    pk = int(result.output.split("predictions node ")[1].split()[0])
    stored = orm.load_node(pk)
    creator = stored.creator
    assert creator.process_label == "predict" and creator.is_finished_ok
    assert creator.inputs.model.pk == krr_model.pk
    queried = creator.inputs.dataset
    # the same model and structures through the calcfunction in Python, and without provenance
    python = predict(model=krr_model, dataset=queried)["predictions"]
    direct = krr_model.predict_from(queried)
    ids = python.get_array("ids").tolist()
    assert sorted(ids) == sorted(records) and len(ids) == 6
    cli = np.array([records[i]["predicted"] for i in ids])
    np.testing.assert_allclose(cli, python.get_array("y_pred"), rtol=0, atol=1e-12)
    np.testing.assert_allclose(cli, direct, rtol=0, atol=1e-12)
    np.testing.assert_array_equal([records[i]["true"] for i in ids], queried.get_target(TARGET))


def test_predict_knn_from_a_dataset_and_a_group(knn_model, amd, queries, tmp_path):
    queried = CrystalDatasetData.from_file(queries, format="json", id_column="id").store()
    queried.label = "model-cli-queries"
    out = tmp_path / "by_label.csv"
    run("predict", knn_model.pk, "model-cli-queries", "--format", "csv", "-o", out)
    lines = out.read_text().splitlines()
    assert lines[0] == "id,predicted [eV/atom],true [eV/atom]"
    cli = {line.split(",")[0]: float(line.split(",")[1]) for line in lines[1:]}
    python = predict(model=knn_model, dataset=queried, reference=amd)["predictions"]
    for rid, value in zip(python.get_array("ids").tolist(), python.get_array("y_pred")):
        assert abs(cli[rid] - value) <= 1e-12
    # the stored predict links the training invariants (the kNN reference)
    node = orm.QueryBuilder().append(orm.CalcFunctionNode, filters={"attributes.process_label": "predict"},
                                     project="*").order_by({orm.CalcFunctionNode: {"id": "desc"}}).first()[0]
    assert node.inputs.reference.pk == amd.pk and node.inputs.dataset.pk == queried.pk

    group = orm.Group(label="model-cli-structures").store()
    group.add_nodes([s.store() for s in queried.to_structuredata()])
    result = run("predict", knn_model.pk, "model-cli-structures", "--format", "json")
    records, _ = _predicted(result.stdout)
    from_group = orm.load_node(int(result.stderr.split("predictions node ")[1].split()[0])).creator.inputs.dataset
    assert from_group.creator.process_label == "import_group" and sorted(from_group.ids) == sorted(records)
    python = predict(model=knn_model, dataset=from_group, reference=amd)["predictions"]
    for rid, value in zip(python.get_array("ids").tolist(), python.get_array("y_pred")):
        assert abs(records[rid]["predicted"] - value) <= 1e-12
    text = run("predict", knn_model.pk, "model-cli-queries", "--limit", "2").output
    assert "predicted [eV/atom]" in text and "... 4 more rows" in text


def test_predict_bad_inputs_store_nothing(krr_model, dataset, tmp_path):
    before = n_nodes()
    line = refused("predict", dataset.pk, dataset.pk)
    assert "not a trained model" in line
    # the command the message recommends lists the models
    from aiida.cmdline.commands.cmd_node import node_list

    hint = line.split("`")[1].split()
    assert hint[:3] == ["verdi", "node", "list"]
    listed = CliRunner().invoke(node_list, hint[3:])
    assert listed.exit_code == 0 and f"{krr_model.uuid}" in listed.output, listed.output
    garbage = tmp_path / "garbage.cif"
    garbage.write_text("this is not a CIF file\n" * 5)
    assert "garbage.cif" in refused("predict", krr_model.pk, garbage)
    assert "no such file, dataset or group" in refused("predict", krr_model.pk, "no-such-thing-anywhere")
    empty = tmp_path / "empty.json"
    empty.write_text("")
    assert "empty" in refused("predict", krr_model.pk, empty)
    assert n_nodes() == before


def test_predict_failure_after_import_keeps_nothing(krr_model, tmp_path, monkeypatch):
    """A prediction that fails after its structures were imported leaves no node behind."""
    from aiida_crystinv.data import model as model_module

    queries = landscape_file(tmp_path / "q.json", n=3, seed=12)

    def broken(self, values, reference=None):
        raise ValueError("the model cannot use these values")

    monkeypatch.setattr(model_module.ModelData, "predict_values", broken)
    before = n_nodes()
    line = refused("predict", krr_model.pk, queries)
    assert "the model cannot use these values" in line and "nothing was stored" in line
    assert n_nodes() == before


# ----------------------------------------------------------------------------- show
def test_show_model_lists_training_and_metrics(knn_model, dataset, amd):
    text = run("show", knn_model.pk).output
    assert f"dataset {dataset.pk} 'model-cli-train', 24 records" in text
    assert f"InvariantsData {amd.pk}" in text
    assert "ewald_energy_per_atom [eV/atom]" in text
    assert "amd_linf" in text and "train_model<" in text
    assert "fit (training records)" in text
    fit = knn_model.metrics
    assert f"{fit['train_mae']:.4g}" in text
    out = run("show", knn_model.pk, "--format", "json").stdout
    rows = {(r["section"], r["key"]): r["value"] for r in json.loads(out)["records"]}
    assert rows[("model", "Model")] == "knn"
    assert rows[("metrics", "fit (training records): MAE")] == fit["train_mae"]


# ----------------------------------------------------------------------------- plots
def test_plot_heatmap_map_landscape(distances, dataset, tmp_path):
    heat = tmp_path / "heat.png"
    run("plot", "heatmap", distances.pk, "-o", heat)
    assert_picture(heat)
    picture = tmp_path / "map.png"
    text = run("plot", "map", distances.pk, "--target", TARGET, "-o", picture).output
    assert f"dataset {dataset.pk}" in text  # found through provenance
    assert_picture(picture)
    run("plot", "map", distances.pk, "-t", TARGET, "--dataset", dataset.pk, "-o", picture, "--force")
    assert_picture(picture)
    land = tmp_path / "land.png"
    text = run("plot", "landscape", dataset.pk, "--target", TARGET, "-o", land, "--lowest", "3").output
    assert_picture(land)
    y = dataset.get_target(TARGET)
    lowest = [dataset.ids[i] for i in np.argsort(y)[:3]]
    listed = [line.split()[1] for line in text.splitlines() if line.strip()[:1] in "123" and len(line.split()) == 4]
    assert listed == lowest


def test_plot_bad_inputs(distances, dataset, knn_model, amd, tmp_path):
    before = n_nodes()
    out = tmp_path / "x.png"
    assert f"no target 'nope'; its targets: {TARGET}" in refused("plot", "map", distances.pk, "-t", "nope", "-o", out)
    assert "no target 'nope'" in refused("plot", "landscape", dataset.pk, "-t", "nope", "-o", out)
    assert "not a distances node" in refused("plot", "heatmap", knn_model.pk, "-o", out)
    assert ".png" in refused("plot", "heatmap", distances.pk, "-o", tmp_path / "x.jpg")
    knn = DistancesData.from_knn(np.ones((3, 1)), np.zeros((3, 1)), ["a", "b", "c"], ["a", "b", "c"], "amd_linf").store()
    assert "kNN graph" in refused("plot", "heatmap", knn.pk, "-o", out)
    assert not out.exists()
    run("plot", "heatmap", distances.pk, "-o", out)
    assert "exists" in refused("plot", "heatmap", distances.pk, "-o", out)
    assert n_nodes() == before + 1  # the kNN node made here, nothing else


def test_plot_large_matrix_is_sampled_or_refused(tmp_path, monkeypatch):
    """Above the limit: refused without --sample; with it, the sampled entries are the stored
    ones (read whole, and row segment by row segment)."""
    from aiida_crystinv.cli import cmd_plot

    n = 2100
    rng = np.random.default_rng(0)
    points = rng.normal(size=(n, 3))
    condensed = pdist(points)
    ids = [f"r{i}" for i in range(n)]
    node = DistancesData.from_condensed(condensed, ids, "amd_linf").store()
    assert "--sample" in refused("plot", "heatmap", node.pk, "-o", tmp_path / "h.png")
    assert "give it with --dataset" in refused("plot", "map", node.pk, "-t", TARGET, "-o", tmp_path / "m.png")
    out = tmp_path / "h.png"
    run("plot", "heatmap", node.pk, "--sample", "60", "--seed", "4", "-o", out)
    assert_picture(out)
    rows = maps.sample_indices(n, 60, seed=4)
    full = squareform(condensed)[np.ix_(rows, rows)]
    D, got_ids = cmd_plot.distance_matrix_of(node, 60, 4)
    np.testing.assert_array_equal(D, full)
    assert got_ids == [ids[i] for i in rows]
    monkeypatch.setattr(cmd_plot, "_READ_WHOLE", 0)
    D, _ = cmd_plot.distance_matrix_of(node, 60, 4)
    np.testing.assert_array_equal(D, full)


@pytest.mark.parametrize("command", [["predict"], ["plot", "heatmap"], ["plot", "map"], ["plot", "landscape"]])
def test_new_commands_have_help_with_an_example(command):
    text = run(*command, "--help").output
    assert "Example" in text and "crystinv " + " ".join(command) in text


def test_pure_layer_constants_match_the_cli():
    from aiida_crystinv.cli import cmd_plot

    assert cmd_plot.LINKAGE_NAMES == maps.LINKAGE_METHODS
    assert cmd_plot.MAX_RECORDS == maps.MAX_HEATMAP == maps.MAX_MAP


# ----------------------------------------------------------------------------- pure maps
def test_mass_density_matches_pymatgen():
    from pymatgen.core import Lattice, Structure

    _, structures, _, _ = ewald_landscape(n=8, seed=1, duplicate_fraction=0.0)
    for s in structures:
        assert maps.mass_density(s) == pytest.approx(float(s.density), rel=1e-6)
    disordered = Structure(Lattice.cubic(4.2), [{"Fe": 0.5, "Ni": 0.25}, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert maps.mass_density(disordered) == pytest.approx(float(disordered.density), rel=1e-6)


def test_cluster_order_keeps_clusters_together():
    rng = np.random.default_rng(1)
    points = np.vstack([rng.normal(0, 0.1, (7, 2)), rng.normal(5, 0.1, (5, 2)), rng.normal((0, 9), 0.1, (6, 2))])
    members = np.repeat([0, 1, 2], [7, 5, 6])
    shuffle = rng.permutation(len(points))
    order, Z = maps.cluster_order(squareform(pdist(points[shuffle])))
    assert sorted(order.tolist()) == list(range(18)) and Z.shape == (17, 4)
    labels = members[shuffle][order]
    assert (np.diff(labels) != 0).sum() == 2  # three contiguous blocks


def test_mds_recovers_planar_distances():
    rng = np.random.default_rng(2)
    points = rng.uniform(0, 10, (40, 2))
    D = squareform(pdist(points))
    X, stress = maps.mds_embedding(D, random_state=0)
    assert stress < 1e-3
    np.testing.assert_allclose(pdist(X), pdist(points), atol=1e-2 * D.max())
    X2, _ = maps.mds_embedding(D, random_state=0)
    np.testing.assert_array_equal(X, X2)


def test_condensed_submatrix_and_checks():
    rng = np.random.default_rng(3)
    condensed = pdist(rng.normal(size=(30, 4)))
    rows = [0, 3, 4, 17, 29]
    got = maps.condensed_submatrix(lambda a, b: condensed[a:b], 30, rows)
    np.testing.assert_array_equal(got, squareform(condensed)[np.ix_(rows, rows)])
    assert maps.lowest_indices([3.0, np.nan, -1.0, 2.0], 2).tolist() == [2, 3]
    with pytest.raises(ValueError, match="not symmetric"):
        maps.check_distance_matrix([[0, 1], [2, 0]])
    with pytest.raises(ValueError, match="square"):
        maps.check_distance_matrix(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="sample at most 5"):
        maps.check_distance_matrix(np.zeros((6, 6)), max_size=5)
    with pytest.raises(ValueError, match="NaN"):
        maps.heatmap_png([[0, np.nan], [np.nan, 0]])


# ----------------------------------------------------------------------------- study
def test_study_run_reports_steps_in_order_and_draws_pictures(tmp_path):
    study = {
        "name": "progress",
        "source": {"synthetic": {"n": 30, "seed": 2}},
        "target": TARGET,
        "descriptors": [{"name": "amd", "k": 8}],
        "models": [{"name": "knn", "k": [1, 3], "cv": 3}],
        "split": {"kind": "kfold", "n_splits": 3, "seed": 0},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    report = tmp_path / "report"
    output = run("study", "run", path, "--report", report).output
    lines = [line for line in output.splitlines() if "] step " in line]
    expected = [(k, name, event) for k, name in enumerate(["import", "descriptors", "training", "summary"], start=1)
                for event in ("started", "done in")]
    assert len(lines) == len(expected), output
    for line, (k, name, event) in zip(lines, expected):
        assert f"step {k}/4 {name}: {event}" in line, line
        assert line.startswith("[") and " s] step " in line
    elapsed = [float(line[1:].split(" s]")[0]) for line in lines]
    assert elapsed == sorted(elapsed)
    assert "(train <" in lines[1] and "best knn_on_amd" in lines[-1]
    # the same lines are in the process report
    pk = int(output.split("study <")[-1].split(">")[0])
    from aiida.orm import Log

    logged = [log.message for log in Log.collection.get_logs_for(orm.load_node(pk)) if "]: [step " in log.message]
    assert len(logged) == 8
    # the report's pictures of the training set
    text = (report / "report.md").read_text()
    for name in ("landscape.png", "heatmap_amd_linf.png", "map_amd_linf.png"):
        assert f"]({name})" in text
        assert_picture(report / name)
    # the model of the study, from the command line
    node = orm.load_node(pk)
    model = node.outputs.training.knn_on_amd.model
    shown = run("show", model.pk).output
    assert "3-fold CV (seed 0)" in shown and "TrainingWorkChain<" in shown
    cv = node.outputs.training.knn_on_amd.metrics.get_dict()
    assert f"{cv['mae']:.4g}" in shown
    quiet = tmp_path / "quiet"
    run("study", "report", pk, "--report", quiet, "--no-plots")
    assert not (quiet / "landscape.png").exists() and (quiet / "report.md").exists()


def test_landscape_of_real_carbon24_records(csv_slice, tmp_path):
    """Carbon-24 (real CSP data): the densities of the landscape are pymatgen's, and the
    listed lowest structures are the lowest energies of the file."""
    from pymatgen.core import Structure

    path = csv_slice("carbon24.csv.gz", n=40)
    text = run("import", path, "--id-column", "material_id", "--target", "energy_per_atom:eV/atom").output
    carbon = orm.load_node(int(text.split("as dataset ")[1].split()[0]))
    densities = [maps.mass_density(c) for c in carbon.get_crystals()]
    reference = [float(Structure.from_dict(s.as_dict()).density) for s in carbon.get_structures()]
    np.testing.assert_allclose(densities, reference, rtol=1e-6)
    out = tmp_path / "carbon.png"
    listed = run("plot", "landscape", carbon.pk, "-t", "energy_per_atom", "--relative", "-o", out).output
    assert_picture(out)
    y = carbon.get_target("energy_per_atom")
    rows = [line.split() for line in listed.splitlines() if line.strip()[:1].isdigit() and len(line.split()) == 4]
    assert [r[1] for r in rows] == [carbon.ids[i] for i in np.argsort(y, kind="stable")[:5]]
    assert float(rows[0][3]) == 0.0
    assert [float(r[2]) for r in rows] == pytest.approx([reference[carbon.ids.index(r[1])] for r in rows], rel=1e-4)


def test_the_picture_module_imports_no_aiida():
    """The pictures are pure layer: importing and drawing them loads no aiida module."""
    import subprocess
    import sys

    code = ("import sys, numpy as np; from aiida_crystinv.learning import maps; "
            "maps.heatmap_png(np.array([[0., 1.], [1., 0.]])); "
            "assert not [m for m in sys.modules if m == 'aiida' or m.startswith('aiida.')]")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
