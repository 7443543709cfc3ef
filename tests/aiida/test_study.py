"""Study files: validation (load_study), the StudyWorkChain, `crystinv study run` and its report."""

from __future__ import annotations

import json
import pathlib

import pytest
import yaml
from aiida import orm
from aiida.engine import run_get_node
from click.testing import CliRunner

from aiida_crystinv.cli import cmd_crystinv
from aiida_crystinv.sources.synthetic import ewald_landscape
from aiida_crystinv.workflows.study import StudyError, StudyWorkChain, build_study_inputs, load_study, write_report

import aiida.engine.daemon.client as _daemon_client

# `verdi` is looked up when aiida's daemon client is imported, which happens before the
# conftest puts this interpreter's bin/ on PATH: look again (daemon test only).
if _daemon_client.VERDI_BIN is None:
    import shutil

    _daemon_client.VERDI_BIN = shutil.which("verdi")

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = "ewald_energy_per_atom"

SMALL = {
    "name": "small",
    "source": {"synthetic": {"n": 30, "seed": 2}},
    "target": TARGET,
    "descriptors": [{"name": "amd", "k": 8}, {"name": "amd+element_stats", "k": 8, "label": "amd_comp"}],
    "models": [{"name": "knn", "k": [1, 3], "cv": 3}, {"name": "krr", "alphas": [0.01], "gamma_factors": [0.3, 1.0], "cv": 3}],
    "split": {"kind": "kfold", "n_splits": 3, "seed": 0},
}


def write(tmp_path: pathlib.Path, study: dict, name: str = "study.yaml") -> pathlib.Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(study))
    return path


def landscape_json(path: pathlib.Path, n: int, seed: int) -> pathlib.Path:
    ids, structures, targets, _ = ewald_landscape(n=n, seed=seed, duplicate_fraction=0.0)
    path.write_text(json.dumps([
        {"id": i, "structure": s.as_dict(), TARGET: float(e)} for i, s, e in zip(ids, structures, targets[TARGET])
    ]))
    return path


def run_cli(*args, ok: bool = True):
    result = CliRunner().invoke(cmd_crystinv, [str(a) for a in args], catch_exceptions=False)
    assert "Traceback" not in result.output, result.output
    assert (result.exit_code == 0) == ok, result.output
    return result


# ----------------------------------------------------------------------------- validation


def test_examples_are_valid():
    study = load_study(ROOT / "examples" / "study_ewald.yaml")
    assert study["sources"]["train"]["kind"] == "synthetic"
    assert {p["label"] for p in study["pairs"]} == {"knn_on_pdd", "knn_on_amd", "krr_on_amd", "krr_on_amd_comp"}
    assert study["screening"]["handoff"]["workflow"] == "crystinv.ewald_energy"
    mp = ROOT / "examples" / "study_mp_bulk.yaml"
    if (ROOT.parent / "shared" / "datasets" / "mp_elasticity_binaries.json.gz").exists():
        assert load_study(mp)["target"] == {"name": "bulk_modulus_vrh", "transform": "log10"}


@pytest.mark.parametrize(
    "change, words",
    [
        ({"modles": []}, "unknown key(s) 'modles' (did you mean 'models'?)"),
        ({"target": None}, "'target' is missing"),
        ({"descriptors": [{"name": "soap"}]}, "descriptors[0]"),
        ({"models": [{"name": "xgboost"}]}, "models[0]: unknown model 'xgboost'"),
        ({"models": [{"name": "knn", "k": 0}]}, "models[0]"),
        ({"models": [{"name": "knn", "descriptors": ["pdd"]}]}, "no descriptor labelled ['pdd']"),
        ({"source": {"file": "nowhere.csv"}}, "does not exist"),
        ({"source": {"file": "x.csv", "group": "g"}}, "exactly one of"),
        ({"split": {"kind": "test"}}, "split: 'source' is missing"),
        ({"split": {"kind": "kfold", "folds": 3}}, "unknown key(s) 'folds'"),
        ({"target": {"name": TARGET, "transform": "log"}}, "transform"),
        ({"descriptors": ["amd+element_stats"], "models": [{"name": "knn"}]}, "no model can be trained"),
        ({"screening": {"top": 3}}, "'candidates'"),
        ({"screening": {"candidates": {"synthetic": {"n": 5}}, "handoff": {"workflow": "nope.nothing"}}}, "not an installed workflow"),
        ({"screening": {"candidates": {"synthetic": {"n": 5}}, "handoff": {"workflow": "crystinv.ewald_energy", "inputs": {"code": 1}}}}, "no input 'code'"),
        ({"screening": {"candidates": {"synthetic": {"n": 5}}, "model": {"descriptor": "pdd", "model": "knn"}}}, "no trained pair 'knn_on_pdd'"),
        ({"source": {"materials_project": {"query": {"elements": ["Si"]}, "api_key": "x"}}}, "materials_project.api_key: never put an API key"),
        ({"jobs": {"code": "no-such-worker@nowhere"}}, "jobs.code: 'no-such-worker@nowhere' cannot be loaded"),
        ({"jobs": {"code": "w@c", "options": {"max_memory": 10}}}, "did you mean 'max_memory_mb'"),
    ],
)
def test_invalid_study_files(tmp_path, change, words):
    study = {**SMALL, **change}
    with pytest.raises(StudyError) as info:
        load_study(write(tmp_path, {k: v for k, v in study.items() if v is not None}))
    assert words in str(info.value)
    assert "study.yaml" in str(info.value)


def test_cli_invalid_file_is_one_line(tmp_path):
    result = run_cli("study", "run", write(tmp_path, {**SMALL, "modles": []}), ok=False)
    assert "Critical" in result.output and "did you mean 'models'" in result.output


# ----------------------------------------------------------------------------- running


def test_study_run_with_screening_and_report(tmp_path):
    """YAML -> `crystinv study run` -> one StudyWorkChain -> report.md, PNGs, node table; real Ewald hand-off."""
    study = {
        **SMALL,
        "models": [SMALL["models"][0], {**SMALL["models"][1], "descriptors": ["amd_comp"]}],
        "screening": {
            "candidates": {"synthetic": {"n": 8, "seed": 9, "duplicate_fraction": 0.0}},
            "top": 2,
            "group": "test-study-screening",
            "handoff": {"workflow": "crystinv.ewald_energy"},
        },
    }
    out = tmp_path / "report"
    result = run_cli("study", "run", write(tmp_path, study), "--report", out)
    assert "MAE" in result.output and "krr" in result.output and "Success" in result.output
    pk = int(result.output.split("study <")[1].split(">")[0])
    node = orm.load_node(pk)
    assert node.is_finished_ok and node.process_class is StudyWorkChain
    summary = node.outputs.summary.get_dict()
    labels = {r["label"] for r in summary["rows"]}
    assert labels == {"knn_on_amd", "krr_on_amd_comp"}  # knn on features is skipped (with a reason), krr restricted
    assert summary["skipped"][0]["model"] == "knn"
    assert all(row["n"] == 30 for row in summary["rows"])
    best = summary["rows"][0]
    assert best["label"] == summary["best"] and best["mae"] < best["baseline_mae"]
    report = (out / "report.md").read_text()
    assert "| krr | amd_comp |" in report and str(node.outputs.training.krr_on_amd_comp.model.pk) in report
    assert node.uuid in report
    pngs = sorted(p.name for p in out.glob("parity_*.png"))
    assert pngs == ["parity_knn_on_amd.png", "parity_krr_on_amd_comp.png"]
    # the screening used the best model and ran the real EwaldEnergyWorkChain on the 2 selected structures
    sc = node.outputs.screening
    assert len(sc.selected_ids) == 2 and set(sc.handoff) == set(sc.structures)
    for key in sc.structures:
        assert sc.handoff[key]["energy"].value < 0
    assert "## Screening" in report and "energy = " in report
    # each descriptor is computed at most once per study (AMD: at most one InvariantsWorkChain)
    called = [c.process_label for c in node.called]
    assert called.count("InvariantsWorkChain") <= 1 and called.count("TrainingWorkChain") == 2
    # `study report PK` rewrites the report from the database
    again = tmp_path / "again"
    run_cli("study", "report", pk, "--report", again)
    assert (again / "report.md").read_text() == report


def test_file_sources_with_an_explicit_test_set(tmp_path):
    """Train on one file, test on another (e.g. MP data vs one's own CSP set), in-process API."""
    train = landscape_json(tmp_path / "train.json", 16, 3)
    test = landscape_json(tmp_path / "test.json", 6, 4)
    study = {
        "source": {"file": train.name, "id_column": "id"},
        "target": {"name": TARGET},
        "descriptors": [{"name": "amd", "k": 8}],
        "models": [{"name": "knn", "k": 2}],
        "split": {"kind": "test", "source": {"file": str(test), "id_column": "id"}},
    }
    inputs = build_study_inputs(load_study(write(tmp_path, study)))
    assert set(inputs["files"]) == {"train", "test"}
    results, node = run_get_node(StudyWorkChain, **inputs)
    assert node.is_finished_ok, node.exit_message
    row = results["summary"]["rows"][0]
    assert row["n"] == 6 and results["summary"]["evaluation"] == "explicit test set"
    preds = results["training"]["knn_on_amd"]["predictions"]
    assert preds.get_array("ids").tolist() == results["datasets"]["test"].ids
    # provenance starts at the files
    assert results["datasets"]["train"].creator.inputs.file.filename == "train.json"
    path = write_report(node, tmp_path / "rep")
    assert "explicit test set" in path.read_text()

    # a rerun of the same files finds the datasets, invariants and distances by query
    again, node2 = run_get_node(StudyWorkChain, **build_study_inputs(load_study(write(tmp_path, study))))
    assert node2.is_finished_ok, node2.exit_message
    assert again["datasets"]["train"].uuid == results["datasets"]["train"].uuid
    assert again["datasets"]["test"].uuid == results["datasets"]["test"].uuid
    assert not [c for c in node2.called if c.process_label in ("import_dataset", "InvariantsWorkChain")]
    assert again["summary"]["rows"] == results["summary"]["rows"]


def test_missing_target_and_nan_targets(tmp_path):
    _, node = run_get_node(StudyWorkChain, **build_study_inputs(load_study(write(tmp_path, {**SMALL, "target": "band_gap"}))))
    assert node.exit_status == StudyWorkChain.exit_codes.ERROR_MISSING_TARGET.status
    assert "no target 'band_gap'" in node.exit_message
    assert not node.called or all(c.process_label == "synthetic_dataset" for c in node.called)

    data = json.loads(landscape_json(tmp_path / "nan.json", 6, 1).read_text())
    data[2][TARGET] = float("nan")
    (tmp_path / "nan.json").write_text(json.dumps(data))
    study = {**SMALL, "source": {"file": "nan.json", "id_column": "id"}}
    _, node = run_get_node(StudyWorkChain, **build_study_inputs(load_study(write(tmp_path, study))))
    assert node.exit_status == StudyWorkChain.exit_codes.ERROR_IMPORT_FAILED.status
    assert "NaN" in node.exit_message and "nothing was stored" in node.exit_message
    assert "summary" not in node.outputs


def test_cif_candidates(tmp_path):
    """Candidates from a CIF file (one's own CSP structures): no target columns are asked for."""
    from aiida_crystinv.calculations.functions import import_dataset

    _, structures, _, _ = ewald_landscape(n=3, seed=8, duplicate_fraction=0.0)
    (tmp_path / "mine.cif").write_text("".join(s.to(fmt="cif").replace("data_", f"data_c{i}_", 1) for i, s in enumerate(structures)))
    study = {**SMALL, "screening": {"candidates": {"file": "mine.cif"}, "top": 1}}
    source = load_study(write(tmp_path, study))["sources"]["candidates"]
    assert source["kind"] == "file" and source["options"] == {}
    inputs = build_study_inputs(load_study(write(tmp_path, study)))
    results, node = import_dataset.run_get_node(file=inputs["files"]["candidates"], options=orm.Dict(source["options"]))
    assert node.is_finished_ok, node.exit_message
    assert len(results["dataset"]) == 3


def test_materials_project_without_key(tmp_path, monkeypatch):
    """No mp-api or no MP_API_KEY: the import says so, nothing else runs."""
    monkeypatch.delenv("MP_API_KEY", raising=False)
    study = {**SMALL, "source": {"materials_project": {"query": {"material_ids": ["mp-149"]}}}, "target": "band_gap"}
    loaded = load_study(write(tmp_path, study))
    assert loaded["sources"]["train"]["options"] == {"properties": ["band_gap"]}
    _, node = run_get_node(StudyWorkChain, **build_study_inputs(loaded))
    assert node.exit_status == StudyWorkChain.exit_codes.ERROR_IMPORT_FAILED.status
    assert "Materials Project" in node.exit_message and ("MP_API_KEY" in node.exit_message or "mp-api" in node.exit_message)


def test_fewer_records_than_folds(tmp_path):
    study = {**SMALL, "source": {"synthetic": {"n": 4, "seed": 1}}, "split": {"kind": "kfold", "n_splits": 5},
             "descriptors": [{"name": "amd", "k": 4}], "models": [{"name": "median"}]}
    result = run_cli("study", "run", write(tmp_path, study), "--report", tmp_path / "r", ok=False)
    assert "failed (exit status 407): median_on_amd: TrainingWorkChain" in result.output and "cannot be split into 5 folds" in result.output


@pytest.mark.daemon
def test_study_on_the_daemon(tmp_path, daemon_ready, submit_and_await):
    study = {**SMALL, "descriptors": [{"name": "amd", "k": 6}], "models": [{"name": "knn", "k": 2}]}
    result = run_cli("study", "run", write(tmp_path, study), "--daemon")
    assert "submitted StudyWorkChain" in result.output
    pk = int(result.output.split("<")[1].split(">")[0])
    node = submit_and_await(orm.load_node(pk), timeout=240)
    assert node.is_finished_ok, node.exit_message
    result = run_cli("study", "report", pk, "--report", tmp_path / "daemon-report")
    assert "knn" in result.output and (tmp_path / "daemon-report" / "report.md").exists()


def test_builder_from_study_exposes_the_training_inputs(tmp_path):
    """get_builder_from_study fills the exposed TrainingWorkChain inputs from the file; a
    builder changed to disagree with the study is refused at the ports, storing nothing."""
    from aiida.engine import run_get_node

    builder = StudyWorkChain.get_builder_from_study(write(tmp_path, SMALL))
    assert builder.training.target.value == TARGET
    assert builder.training.split.get_dict() == {"kind": "kfold", "n_splits": 3, "seed": 0}
    assert builder.study["pairs"][0]["label"] == "knn_on_amd"
    builder.training.split = orm.Dict({"kind": "kfold", "n_splits": 4})
    before = orm.QueryBuilder().append(orm.Node).count()
    with pytest.raises(ValueError, match="is not the study's split"):
        run_get_node(builder)
    with pytest.raises(ValueError, match="n_splits"):  # the builder checks the port on assignment
        builder.training.split = orm.Dict({"kind": "kfold", "n_splits": 1})
    assert orm.QueryBuilder().append(orm.Node).count() == before
    with pytest.raises(StudyError, match="unknown key"):
        StudyWorkChain.get_builder_from_study({**SMALL, "modles": []}, base=tmp_path)


@pytest.mark.slow
def test_study_with_jobs_on_a_computer(tmp_path, aiida_localhost, aiida_code_installed):
    """``jobs:``: the invariants are computed as worker jobs on the computer (core.direct,
    for real); the trained models' metrics equal those of the same study without jobs."""
    from aiida_crystinv.cli.cmd_worker import setup_worker

    code = setup_worker(aiida_localhost, label="crystinv-worker-study")
    base = {**SMALL, "source": {"synthetic": {"n": 30, "seed": 77}}, "descriptors": [{"name": "amd", "k": 9}],
            "models": [SMALL["models"][0]]}
    study = {**base, "name": "with-jobs", "jobs": {"code": code.full_label, "options": {"block_size": 12}}}
    plan = load_study(write(tmp_path, study))
    assert plan["jobs"] == {"code": code.full_label, "options": {"block_size": 12}}
    inputs = build_study_inputs(plan)
    assert inputs["code"].uuid == code.uuid
    _, node = run_get_node(StudyWorkChain, **inputs)
    assert node.is_finished_ok, node.exit_message
    invariants_wc = [c for c in node.called if c.process_label == "InvariantsWorkChain"]
    assert len(invariants_wc) == 1  # a source and descriptor no other test uses: computed here, as 3 jobs
    jobs = [d for d in invariants_wc[0].called_descendants if d.process_label == "WorkerCalculation"]
    assert len(jobs) == 3 and all(j.computer.uuid == aiida_localhost.uuid for j in jobs)
    plain = build_study_inputs(load_study(write(tmp_path, {**base, "name": "no-jobs"}, "plain.yaml")))
    _, node_plain = run_get_node(StudyWorkChain, **plain)
    rows = node.outputs.summary.get_dict()["rows"]
    assert rows == node_plain.outputs.summary.get_dict()["rows"]
    # a study with jobs but no code input is refused at the ports
    without = {k: v for k, v in inputs.items() if k != "code"}
    with pytest.raises(ValueError, match="jobs.code"):
        run_get_node(StudyWorkChain, **without)


def test_the_reference_block_of_the_docs(tmp_path):
    """The annotated study file of docs/learning.md ("The study file") names every key the
    spec knows, and, without its `loop:` and `jobs:` sections (which need a code and a
    candidates file; their runnable examples are examples/study_carbon24_dft.yaml and
    docs/scale.md), it is a valid study file."""
    import re

    from aiida_crystinv.specs.study import StudySpec

    text = (pathlib.Path(__file__).parents[2] / "docs" / "learning.md").read_text()
    block = re.findall(r"## The study file\n\n```yaml\n(.*?)```", text, flags=re.S)[0]
    data = yaml.safe_load(block)
    assert sorted(data) == sorted(f.alias or name for name, f in StudySpec.model_fields.items())
    for key in ("loop", "jobs"):
        data.pop(key)
    path = tmp_path / "reference.yaml"
    path.write_text(yaml.safe_dump(data))
    study = load_study(path)
    assert study["name"] == "ewald-landscape" and study["audit"] and study["screening"]
