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
