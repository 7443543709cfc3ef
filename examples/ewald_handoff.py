"""Hand selected records of a dataset on to an energy workflow, with provenance.

    python examples/ewald_handoff.py DATASET_PK [N]

The pattern of a screening pipeline's "DFT hand-off": pick records (here, the N with the
lowest stored Ewald energy), extract them as ``StructureData`` with the
``extract_structures`` calcfunction, and run a WorkChain on each -- here the lightweight
``EwaldEnergyWorkChain`` (entry point ``crystinv.ewald_energy``) instead of a DFT
relaxation. Every structure, run and energy stays linked to the dataset it came from.
"""

from __future__ import annotations

import sys

import numpy as np
from aiida import load_profile, orm
from aiida.engine import run_get_node
from aiida.plugins import WorkflowFactory

from aiida_crystinv.calculations.functions import extract_structures


def main() -> None:
    load_profile()
    dataset = orm.load_node(int(sys.argv[1]))
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    energies = dataset.get_target("ewald_energy_per_atom")
    chosen = [dataset.ids[i] for i in np.argsort(energies)[:n]]
    structures, node = extract_structures.run_get_node(dataset=dataset, ids=orm.List(chosen))
    print(f"extract_structures {node.pk}: {', '.join(chosen)}")
    workflow = WorkflowFactory("crystinv.ewald_energy")
    for structure in structures["structures"].values():
        results, run = run_get_node(workflow, structure=structure)
        stored = energies[dataset.index_of(structure.label)]
        print(
            f"{structure.label:28s} EwaldEnergyWorkChain {run.pk}: {results['energy'].value:10.4f} eV/atom "
            f"(dataset: {stored:.4f})"
        )


if __name__ == "__main__":
    main()
