"""The typed specs: defaults equal the pure functions' own, bad values refused with the
place and a hint, the study plan as the WorkChain runs it."""

from __future__ import annotations

import inspect

import pytest

from aiida_crystinv import invariants
from aiida_crystinv.specs import INVARIANTS, SpecError, metric_for, parse_descriptor, parse_invariant, parse_metric
from aiida_crystinv.specs.learning import parse_model, parse_selection, parse_split, resolve_pair
from aiida_crystinv.specs.study import parse_study


@pytest.mark.parametrize("name", list(INVARIANTS))
def test_invariant_defaults_are_the_functions_defaults(name):
    """A spec with no parameters computes exactly what the pure function does by default."""
    spec = parse_invariant(name)
    signature = inspect.signature(getattr(invariants, spec.function))
    for key, value in spec.params.items():
        default = signature.parameters[key].default
        if default is not inspect.Parameter.empty:
            assert value == (list(default) if isinstance(default, tuple) else default), key
    assert set(spec.params) | set(spec.fixed) | {"structure", "label"} >= {
        k for k, p in signature.parameters.items() if p.default is not inspect.Parameter.empty
    } - {"label"}


@pytest.mark.parametrize(
    "data, words",
    [
        ({"name": "pdd", "kk": 5}, "did you mean 'k'"),
        ({"name": "pdd", "k": True}, "must be an integer, got True"),
        ({"name": "pdd", "k": "abc"}, "must be an integer"),
        ({"name": "pdd", "k": 10**9}, "less than or equal to 10000"),
        ({"name": "pdd", "k": 0}, "greater than or equal to 1"),
        ({"name": "grid", "bin_width": float("nan")}, "finite"),
        ({"name": "grid", "bin_width": 20.0}, "must not exceed cutoff"),
        ({"name": "rdf", "partial": True}, "unknown key(s) 'partial'"),
        ({"name": "composition", "stats": ["foo"]}, "unknown statistic"),
        ({"name": "pdd", "collapse": "yes"}, "true or false"),
        ({"k": 3}, "needs a 'name'"),
    ],
)
def test_bad_descriptors_name_the_place(data, words):
    with pytest.raises(SpecError) as info:
        parse_descriptor(data, where="study.yaml.descriptors[0]")
    assert words in str(info.value) and str(info.value).startswith("study.yaml.descriptors[0]")


def test_shorthands_and_normal_forms():
    assert parse_descriptor("pdd") == parse_descriptor({"name": "PDD", "params": {"k": 100}})
    features = parse_descriptor({"name": "amd+element_stats", "amd": {"k": 50}})
    assert features.kind == "features" and features.params["amd"] == {"k": 50}
    assert parse_metric("pdd_emd").params == {}
    assert metric_for(None, parse_invariant("grid")).bin_width == 0.1
    with pytest.raises(SpecError, match="applies to pdd"):
        metric_for("pdd_emd", parse_invariant("amd"))
    assert parse_split(None).as_dict() == {"kind": "kfold", "n_splits": 5, "seed": 0}
    assert parse_selection({}).normalised() == {"top": 10, "threshold": None, "order": "lowest"}
    with pytest.raises(SpecError, match="test_fraction"):
        parse_split({"kind": "holdout", "test_fraction": 1.0})


def test_models_and_pairs():
    assert resolve_pair({"name": "knn", "k": [1, 3]}, "pdd") == {"name": "knn", "k": [1, 3], "metric": {"name": "pdd_emd"}}
    assert resolve_pair({"name": "knn"}, "grid")["metric"] == {"name": "grid_emd", "bin_width": 0.1}
    with pytest.raises(SpecError, match="ragged"):
        resolve_pair("krr", "pdd")
    with pytest.raises(SpecError, match="features descriptor"):
        resolve_pair("knn", "amd+element_stats")
    with pytest.raises(SpecError, match="did you mean 'weights'"):
        parse_model({"name": "knn", "weight": "uniform"})
    with pytest.raises(SpecError, match=r"alphas\[0\]: Input should be greater than 0"):
        parse_model({"name": "krr", "alphas": [-1]})
    with pytest.raises(SpecError, match="stack members must be feature models"):
        parse_model({"name": "stack", "members": [{"name": "knn"}]})


def test_study_plan_and_mistakes(tmp_path):
    raw = {
        "source": {"synthetic": {"n": 20}},
        "target": "ewald_energy_per_atom",
        "descriptors": ["pdd", {"name": "amd", "k": 20, "label": "amd20"}],
        "models": ["knn", {"name": "krr", "descriptors": ["amd20"]}],
    }
    plan = parse_study(raw, base=tmp_path).plan()
    assert [p["label"] for p in plan["pairs"]] == ["knn_on_pdd", "knn_on_amd20", "krr_on_amd20"]
    assert plan["split"] == {"kind": "kfold", "n_splits": 5, "seed": 0}
    for change, words in [
        ({"target": None}, "'target' is missing"),
        ({"modles": []}, "did you mean 'models'"),
        ({"models": [{"name": "krr", "descriptors": ["nope"]}]}, "no descriptor labelled"),
        ({"source": {"materials_project": {"query": {"apikey": "x"}}}}, "never put an API key"),
        ({"source": {"file": "a.cif", "group": "g"}}, "exactly one of"),
    ]:
        bad = {k: v for k, v in {**raw, **change}.items() if v is not None}
        with pytest.raises(SpecError) as info:
            parse_study(bad, "s.yaml", base=tmp_path)
        assert words in str(info.value), str(info.value)


# ----------------------------------------------------------------------------- job options
def test_job_options_and_block_plans():
    from aiida_crystinv.specs.jobs import WORKER_BASE_MB, JobOptions, knn_blocks, parse_job_options, plan_rows

    with pytest.raises(SpecError, match="did you mean 'walltime'"):
        parse_job_options({"wall_time": 60})
    with pytest.raises(SpecError, match="threads"):
        parse_job_options({"threads": 0})
    options = parse_job_options({"max_memory_mb": 1000, "walltime": 600, "threads": 2, "queue_name": "debug"})
    slurm = options.metadata_options("core.slurm")
    assert slurm["max_memory_kb"] == 1000 * 1024 and slurm["max_wallclock_seconds"] == 600
    assert slurm["resources"] == {"num_machines": 1, "num_mpiprocs_per_machine": 1, "num_cores_per_mpiproc": 2}
    assert "max_memory_kb" not in options.metadata_options("core.direct")  # it cannot limit memory
    assert options.task_options() == {"n_jobs": 2, "memory_limit_mb": 250.0}

    for n, size in ((10, 3), (10, 10), (1, 5), (12345, 1000)):
        rows = plan_rows(n, size)
        assert rows[0][0] == 0 and rows[-1][1] == n and all(a[1] == b[0] for a, b in zip(rows, rows[1:]))
        assert max(stop - start for start, stop in rows) <= size
    # no bound: the whole reference set, queries in blocks of block_size
    queries, refs = knn_blocks(12000, 12000, 0.005, JobOptions(block_size=5000))
    assert refs == [(0, 12000)] and len(queries) == 3
    # a bound the whole reference set does not fit in: reference blocks, each job under the bound
    mb = 0.01
    bound = WORKER_BASE_MB + 3 * mb * 12000  # the whole set fits once, not twice
    queries, refs = knn_blocks(12000, 12000, mb, JobOptions(max_memory_mb=bound))
    assert len(refs) >= 2
    for q in queries:
        for r in refs:
            assert WORKER_BASE_MB + 3 * mb * ((q[1] - q[0]) + (r[1] - r[0])) <= bound
    with pytest.raises(ValueError, match="leaves no room"):
        knn_blocks(100, 100, mb, JobOptions(max_memory_mb=WORKER_BASE_MB - 10))
