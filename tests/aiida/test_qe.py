"""Real Quantum ESPRESSO in the loop: pw.x (Debian's quantum-espresso) through
aiida-quantumespresso's protocol builder, with a pseudopotential family made by
``crystinv pseudo-family`` from the UPF files of quantum-espresso-data.

Nothing is mocked: every energy comes from a pw.x run on this machine (cheap settings: the
'fast' protocol, 25/200 Ry, k-points every 0.5 1/A, Carbon-24 cells of at most 8 atoms).
Skipped with the reason when pw.x, the pseudopotentials or aiida-quantumespresso are
missing, except with CI=true (``make test`` installs them as root).
"""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from click.testing import CliRunner
from pymatgen.core import Lattice, Structure

from tests.aiida.conftest import service_missing
from tests.conftest import read_csv_structures

pytestmark = [pytest.mark.slow]

PSEUDO_DIR = Path("/usr/share/espresso/pseudo")
C_UPF = PSEUDO_DIR / "C.pbe-rrkjus.UPF"
RY_TO_EV = 13.605693122994  # CODATA 2018, as QE 6.7 prints it
ECUTWFC, ECUTRHO = 25.0, 200.0
TARGET = "energy_per_atom"


@pytest.fixture(scope="module")
def qe_ready():
    if shutil.which("pw.x") is None:
        service_missing("pw.x is not installed (apt-get install quantum-espresso; make test does it as root)")
    if not C_UPF.exists():
        service_missing(f"{C_UPF} is missing (apt-get install quantum-espresso-data)")
    try:
        import aiida_pseudo  # noqa: F401
        import aiida_quantumespresso  # noqa: F401
    except ImportError as exc:
        service_missing(f"{exc.name} is not installed (pip install -e '.[qe]')")


@pytest.fixture
def pw_code(qe_ready, aiida_localhost):
    return orm.InstalledCode(
        label=f"pw-{uuid.uuid4().hex[:6]}", computer=aiida_localhost, filepath_executable=shutil.which("pw.x"),
        default_calc_job_plugin="quantumespresso.pw",
    ).store()


@pytest.fixture
def carbon_family(qe_ready):
    """A family made by the command a user runs, from the system package's C pseudopotential."""
    from aiida_crystinv.cli import cmd_crystinv

    label = f"crystinv-test-C-{uuid.uuid4().hex[:6]}"
    result = CliRunner().invoke(cmd_crystinv, ["pseudo-family", label, str(C_UPF), "--ecutwfc", str(ECUTWFC),
                                               "--ecutrho", str(ECUTRHO)])
    assert result.exit_code == 0, result.output
    assert label in result.output and "C: 25 / 200 Ry" in result.output
    return label


def _parameters(family: str) -> dict:
    return {
        "overrides": {"pseudo_family": family, "kpoints_distance": 0.5},
        "options": {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1}, "withmpi": False,
                    "max_wallclock_seconds": 900},
    }


@pytest.fixture(scope="module")
def carbon_sets():
    """Carbon-24 cells of at most 8 atoms: 40 to train on, 16 candidates (with their
    published energies, used only to check the DFT values afterwards)."""
    from aiida_crystinv.data import CrystalDatasetData

    ids, structures, y = read_csv_structures("carbon24.csv.gz", n=400, target=TARGET)
    small = [i for i, s in enumerate(structures) if len(s) <= 8]
    assert len(small) >= 56, len(small)
    pick = lambda rows: ([structures[i] for i in rows], [ids[i] for i in rows], {TARGET: [y[i] for i in rows]})  # noqa: E731
    s, i, t = pick(small[:40])
    training = CrystalDatasetData.from_structures(s, ids=i, targets=t, units={TARGET: "eV/atom"}).store()
    s, i, t = pick(small[40:56])
    candidates = CrystalDatasetData.from_structures(s, ids=i, targets=t, units={TARGET: "eV/atom"}).store()
    return training, candidates


def _printed_energy_per_atom(calc) -> float:
    """The last '!    total energy' line of pw.x's own output, in eV per atom."""
    text = calc.outputs.retrieved.base.repository.get_object_content("aiida.out")
    energies = re.findall(r"^!\s+total energy\s+=\s+(-?\d+\.\d+) Ry", text, flags=re.M)
    atoms = int(re.search(r"number of atoms/cell\s+=\s+(\d+)", text).group(1))
    return float(energies[-1]) * RY_TO_EV / atoms


def test_pseudo_family_command_refuses_what_it_cannot_use(qe_ready, tmp_path):
    from aiida_crystinv.cli import cmd_crystinv

    runner = CliRunner()
    # two files for one element
    result = runner.invoke(cmd_crystinv, ["pseudo-family", "x-two", str(C_UPF), str(PSEUDO_DIR / "C.pz-rrkjus.UPF")])
    assert result.exit_code != 0 and "two files for C" in result.output and "Traceback" not in result.output
    # a file that suggests no cutoff, none given
    result = runner.invoke(cmd_crystinv, ["pseudo-family", "x-none", str(C_UPF)])
    assert result.exit_code != 0 and "suggests no cutoff" in result.output
    # the header's suggestion is used when there is one (C.pbe-n-kjpaw_psl.0.1: 36.66 / 146.63 Ry)
    label = f"x-header-{uuid.uuid4().hex[:6]}"
    result = runner.invoke(cmd_crystinv, ["pseudo-family", label, str(PSEUDO_DIR / "C.pbe-n-kjpaw_psl.0.1.UPF")])
    assert result.exit_code == 0, result.output
    family = orm.load_group(label)
    assert family.get_recommended_cutoffs(elements=("C",), unit="Ry") == pytest.approx((36.6569045899, 146.6276183596))
    # nothing stored for a refused command, and a taken label is refused
    assert not orm.QueryBuilder().append(orm.Group, filters={"label": {"in": ["x-two", "x-none"]}}).count()
    result = runner.invoke(cmd_crystinv, ["pseudo-family", label, str(C_UPF), "--ecutwfc", "30"])
    assert result.exit_code != 0 and "exists already" in result.output


def broken_for_one(structure, code, protocol, family, broken_label):
    """A builder callable (by dotted path): the 'fast' protocol, with an impossible
    charge-density cutoff (below the wavefunction cutoff) for the structure ``broken_label``."""
    from aiida_quantumespresso.workflows.pw.base import PwBaseWorkChain

    builder = PwBaseWorkChain.get_builder_from_protocol(code, structure, protocol="fast", **_parameters(family))
    if structure.label == broken_label:
        parameters = builder.pw.parameters.get_dict()
        parameters["SYSTEM"]["ecutrho"] = 10.0
        builder.pw.parameters = orm.Dict(parameters)
    return builder


def test_screening_reports_each_failed_hand_off_and_keeps_the_others(pw_code, carbon_family, carbon_sets):
    """Three selected structures: one computed by pw.x, one with an impossible setting (pw.x
    stops), one with an element the family lacks (no inputs can be built). The screening
    ends with 425, names both failures with their cause, and keeps the good result."""
    from aiida_crystinv.calculations.learning import train_model
    from aiida_crystinv.data import CrystalDatasetData
    from aiida_crystinv.workflows.screening import ScreeningWorkChain

    training, candidates = carbon_sets
    trained = train_model(dataset=training, target=orm.Str(TARGET), model=orm.Dict({"name": "krr", "kernel": "laplacian"}),
                          descriptor=orm.Dict({"name": "amd", "k": 50}))
    silicon = Structure(Lattice.cubic(5.43), ["Si"] * 2, [[0, 0, 0], [0.25, 0.25, 0.25]])
    pool = CrystalDatasetData.from_structures([candidates.get_structure(0), candidates.get_structure(1), silicon],
                                              ids=[candidates.ids[0], candidates.ids[1], "Si-diamond"]).store()
    broken = candidates.ids[1]
    results, node = run_get_node(
        ScreeningWorkChain, model=trained["model"], candidates=pool, selection=orm.Dict({"top": 3, "order": "lowest"}),
        handoff={"workflow": orm.Str("quantumespresso.pw.base"), "builder": orm.Str(f"{__name__}:broken_for_one"),
                 "code": pw_code, "parameters": orm.Dict({"family": carbon_family, "broken_label": broken})},
    )
    assert node.exit_status == 425, f"[{node.exit_status}] {node.exit_message}"
    message = node.exit_message
    assert "2 of 3 failed" in message
    assert "Si" in message and "building the inputs failed" in message  # the family has no Si
    assert re.search(r"PwBaseWorkChain <\d+> \[\d+\].*<- PwCalculation <\d+> \[\d+\]", message), message
    assert "Error in routine set_cutoff" in message  # what pw.x itself wrote
    assert "Si-diamond: building the inputs failed" in message  # named by its identifier
    good = [k for k in results["handoff"]]
    assert len(good) == 1
    params = results["handoff"][good[0]]["output_parameters"]
    assert np.isfinite(params["energy"])


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "study_carbon24_dft.yaml"


@pytest.fixture
def example_setup(qe_ready, aiida_localhost):
    """What the example study names: the code pw@localhost and the family carbon-rrkjus
    (made by the command, as docs/dft.md says)."""
    from aiida.common.exceptions import NotExistent

    from aiida_crystinv.cli import cmd_crystinv

    assert aiida_localhost.label == "localhost"
    try:
        orm.load_code("pw@localhost")
    except NotExistent:
        orm.InstalledCode(label="pw", computer=aiida_localhost, filepath_executable=shutil.which("pw.x"),
                          default_calc_job_plugin="quantumespresso.pw").store()
    if not orm.QueryBuilder().append(orm.Group, filters={"label": "carbon-rrkjus"}).count():
        result = CliRunner().invoke(cmd_crystinv, ["pseudo-family", "carbon-rrkjus", str(C_UPF), "--ecutwfc", "25",
                                                   "--ecutrho", "200"])
        assert result.exit_code == 0, result.output


def test_example_study_screen_dft_retrain_through_the_daemon(example_setup, daemon_ready, daemon_client, tmp_path):
    """examples/study_carbon24_dft.yaml for real: train on Carbon-24 rows 0-299, calibrate
    on one of them, then two rounds of select the best two of rows 300-399 (at most 8
    atoms) and the two most novel -> pw.x (aiida-quantumespresso's protocol builder) ->
    collect -> retrain, every process in the daemon."""
    import time

    from aiida_crystinv.workflows.study import run_study, write_report

    if not daemon_client.is_daemon_running:
        daemon_client.start_daemon(number_workers=2)
    _, node = run_study(EXAMPLE, submit=True)
    deadline = time.monotonic() + 1500
    while not node.is_terminated and time.monotonic() < deadline:
        time.sleep(2)
    assert node.is_terminated, f"the study <{node.pk}> did not finish in 1500 s"
    assert node.is_finished_ok, f"[{node.exit_status}] {node.exit_message}"
    loop = node.outputs.loop
    summary = loop.summary.get_dict()
    assert [r["round"] for r in summary["rounds"]] == [1, 2]
    training = node.outputs.datasets.train
    assert len(training) == 300
    assert len(loop.dataset) == 308  # + 2 rounds x (the best two and the two most novel)
    shift = loop.calibration["shifts"]["C"]
    pool = node.outputs.datasets.pool
    published = read_csv_structures("carbon24.csv.gz", n=400, target=TARGET)
    energy_of = dict(zip(published[0], published[2]))
    deviations = []
    for name in ("round_1", "round_2"):
        dft = loop.dft[name]
        assert len(dft) == 4
        collect = dft.creator
        for i, record in enumerate(dft.ids):
            assert record in pool.ids and len(pool.get_structure(record)) <= 8
            params = collect.inputs[f"energy_{i}"]
            calc = params.creator  # the pw.x run itself
            assert calc.process_type == "aiida.calculations:quantumespresso.pw" and calc.is_finished_ok
            assert calc.caller.process_label == "PwBaseWorkChain"
            assert calc.caller.caller.process_label == "DftLoopWorkChain"
            e = dft.get_target("dft_energy_per_atom")[i]
            assert np.isfinite(e)
            assert e == pytest.approx(_printed_energy_per_atom(calc), abs=1e-4)  # what pw.x printed
            assert collect.inputs[f"structure_{i}"].label == record
            deviations.append(e + shift - energy_of[record])
        assert loop.scores[name]["n"] == 4 and loop.scores[name]["spearman"] is not None
    # every round trained on what the previous added; the last model on everything
    assert set(loop.dataset.ids[300:]) == set(loop.dft["round_1"].ids) | set(loop.dft["round_2"].ids)
    assert loop.model.base.attributes.get("training")["dataset_uuid"] == loop.dataset.uuid
    # on the AIRSS scale, these cheap pw.x energies stay close to the published ones
    assert np.max(np.abs(deviations)) < 0.15, deviations
    report = write_report(node, tmp_path / "report")
    text = report.read_text()
    assert "## DFT loop" in text and "![predicted vs DFT](loop_parity.png)" in text
    assert all(r in text for r in loop.dft["round_1"].ids)
    png = tmp_path / "report" / "loop_parity.png"
    assert png.stat().st_size > 10_000
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("L"))
    assert pixels.std() > 5  # not blank
