"""One exit-code table: every process of every entry point uses it, each number with one
meaning; invalid specs are refused at the ports before any node exists."""

from __future__ import annotations

import ast
import pathlib

import pytest
from aiida import orm
from aiida.engine import CalcJob
from aiida.plugins.entry_point import get_entry_point_names, load_entry_point

from aiida_crystinv.exit_codes import EXIT_CODES, exit_code_table

#: aiida-core's own CalcJob exit codes (100-160), inherited by every CalcJob: not the package's
AIIDA_CALCJOB_CODES = {code.status: (label, code.message) for label, code in CalcJob.spec().exit_codes.items()}

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "aiida_crystinv"
DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs" / "aiida.md"


def _our_processes():
    for group in ("aiida.workflows", "aiida.calculations"):
        for name in get_entry_point_names(group):
            if name.startswith("crystinv."):
                yield name, load_entry_point(group, name)


def test_every_process_spec_uses_the_table():
    seen = 0
    for name, process in _our_processes():
        process_class = process if isinstance(process, type) else process.process_class
        for label, code in process_class.spec().exit_codes.items():
            if code.status < 100:  # aiida-core's own (killed, excepted, ...)
                continue
            if AIIDA_CALCJOB_CODES.get(code.status) == (label, code.message):  # aiida-core's CalcJob codes
                continue
            seen += 1
            assert code.status in EXIT_CODES, f"{name}: exit code {code.status} {label} is not in the table"
            table_label, table_message = EXIT_CODES[code.status]
            assert (label, code.message) == (table_label, table_message), f"{name}: {code.status} means something else"
    assert seen > 20


def test_no_exit_code_is_made_outside_the_table():
    """An ``ExitCode(...)`` literal or ``spec.exit_code(...)`` anywhere else would be a
    second meaning of a number."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "exit_codes.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in ("ExitCode", "exit_code"):
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not offenders


def test_labels_and_numbers_are_unique_and_in_aiidas_ranges():
    labels = [label for label, _ in EXIT_CODES.values()]
    assert len(labels) == len(set(labels))
    for status, (label, message) in EXIT_CODES.items():
        assert 100 <= status < 450 and label.startswith("ERROR_") and "{message}" in message
        assert status not in AIIDA_CALCJOB_CODES, f"{status} is aiida-core's {AIIDA_CALCJOB_CODES[status][0]}"


def test_the_docs_show_the_table():
    assert exit_code_table() in DOCS.read_text()


def _dataset():
    """An unstored one-record dataset (a refused launch never stores it)."""
    from pymatgen.core import Lattice, Structure

    from aiida_crystinv.data import CrystalDatasetData

    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return CrystalDatasetData.from_structures([nacl], ids=["nacl"], targets={"y": [1.0]})


def _count():
    return orm.QueryBuilder().append(orm.Node).count()


@pytest.mark.parametrize(
    "descriptor",
    [{"name": "pdd", "k": 0}, {"name": "pdd", "kk": 5}, {"name": "nope"}, {"name": "grid", "bin_width": float("nan")},
     {"name": "amd", "k": True}, {"name": "rdf", "partial": True}],
)
def test_compute_invariants_refuses_bad_descriptors_before_any_node(aiida_profile_clean, descriptor):
    from aiida_crystinv.calculations.functions import compute_invariants
    from aiida_crystinv.data import CrystalDatasetData

    from pymatgen.core import Lattice, Structure

    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    dataset = CrystalDatasetData.from_structures([nacl], ids=["nacl"])
    before = _count()
    with pytest.raises(ValueError, match="descriptor"):
        compute_invariants.run_get_node(dataset=dataset, descriptor=orm.Dict(descriptor))
    assert _count() == before


def test_workchains_refuse_bad_specs_at_the_ports(aiida_profile_clean):
    from aiida.engine import run_get_node

    from aiida_crystinv.workflows.training import TrainingWorkChain

    before = _count()
    with pytest.raises(ValueError, match="pdd_emd"):
        run_get_node(TrainingWorkChain, dataset=_dataset(), target=orm.Str("y"), descriptor=orm.Dict({"name": "amd"}),
                     model=orm.Dict({"name": "knn", "metric": "pdd_emd"}))
    with pytest.raises(ValueError, match="weights"):
        run_get_node(TrainingWorkChain, dataset=_dataset(), target=orm.Str("y"), descriptor=orm.Dict({"name": "amd"}),
                     model=orm.Dict({"name": "knn", "weight": "distance"}))
    assert _count() == before
