"""``DemoWorkChain``: the whole pipeline on a synthetic landscape, as one provenance graph.

``n``, ``seed`` ->

1. :func:`generate_landscape` (calcfunction): ``n`` ionic structures from
   :func:`aiida_crystinv.sources.synthetic.ewald_landscape`, labelled with their Ewald
   energy, as a JSON dataset file (``file``) and what was planted in it (``landscape``:
   counts, the planted near-duplicate pairs);
2. ``import_dataset``: the file as one dataset node (``dataset``);
3. + 4. :class:`~aiida_crystinv.workflows.invariants.InvariantsWorkChain` for AMD, then
   for PDD (``k = 100``), each in chunks of ``chunk_size`` (``amd``, ``pdd``);
5. ``compute_neighbours`` on the PDDs with PDD-EMD (``knn``), then
   :func:`~aiida_crystinv.workflows.neighbours.near_duplicate_pairs` within
   ``threshold`` (``duplicates``).

Every input is checked at its port (``n >= 2``, ``seed >= 0``, ``k >= 1``, ``threshold``
a finite number >= 0, ``chunk_size >= 1``): a bad value is refused before any node is
stored.

From Python, :func:`launch_demo` runs it here (reporting each step as it finishes) or
submits it, and returns a :class:`DemoResult` with the nodes by role::

    from aiida import load_profile
    from aiida_crystinv.workflows.demo_launch import launch_demo

    load_profile()
    result, node = launch_demo(n=200, seed=0, on_step=lambda step: print(step.line))
    result.nodes["dataset"], result.nodes["pdd"], result.nodes["knn"], result.duplicates
    result.found_planted, len(result.planted)

To extend the demo from Python (e.g. with a model-training study), register a step; it
runs after the WorkChain, in this process, timed and reported like the built-in ones::

    from aiida_crystinv.workflows.demo_launch import DemoResult, register_demo_step

    @register_demo_step("train a kNN energy model on the PDD-EMD graph")
    def train(result: DemoResult) -> str:
        ...                                  # use result.nodes["dataset"], ["pdd"] ...
        result.nodes["model"] = model_node   # appears in the provenance summary
        return "kNN model: MAE 0.05 eV/atom"   # the step's line
"""

from __future__ import annotations

import io
import json
import typing as t

from aiida import orm
from aiida.engine import ToContext, WorkChain, calcfunction

from ..calculations.functions import compute_neighbours, import_dataset
from ..calculations.ports import check_finite, check_positive_int, validate_inputs
from ..data import CrystalDatasetData, DistancesData, InvariantsData
from ..exit_codes import EXIT, add_exit_codes, describe_failure
from .invariants import InvariantsWorkChain
from .neighbours import near_duplicate_pairs

__all__ = [
    "DemoWorkChain",
    "generate_landscape",
    "landscape_records",
]

#: The target of the landscape and its unit.
TARGET, TARGET_UNIT = "ewald_energy_per_atom", "eV/atom"
#: ``k`` of the AMD and PDD invariants of the demo.
INVARIANTS_K = 100
#: The metric of the neighbour graph and the near-duplicate search.
METRIC = "pdd_emd"
#: Descriptors computed, in this order, with the link label of their WorkChain.
DEMO_INVARIANTS = ("amd", "pdd")


def default_chunk_size(n: int) -> int:
    """Structures per invariants chunk when none is given: ``n / 4``, at least 50 (four
    chunks from 200 structures, one below 51)."""
    return max(50, -(-n // 4))


# ---------------------------------------------------------------------------- generation
def landscape_records(n: int, seed: int) -> tuple[list[dict[str, t.Any]], dict[str, t.Any]]:
    """The Ewald landscape as JSON-ready records, and what is in it.

    Returns:
        ``(records, info)``: ``n`` dicts ``{'id', 'formula', 'structure' (pymatgen
        ``as_dict``), 'ewald_energy_per_atom' (eV/atom)}`` and ``{'n', 'seed',
        'compositions', 'prototypes', 'planted': [[original_id, duplicate_id], ...],
        'target', 'unit'}``.

    Raises:
        ValueError: ``n < 1`` or a negative ``seed``.
    """
    from ..sources.synthetic import TARGET_NAME, ewald_landscape

    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    ids, structures, targets, units = ewald_landscape(n=n, seed=seed)
    records = [
        {"id": rid, "formula": s.composition.reduced_formula, "structure": s.as_dict(), TARGET_NAME: float(e)}
        for rid, s, e in zip(ids, structures, targets[TARGET_NAME])
    ]
    info = {
        "n": n,
        "seed": seed,
        "compositions": len({s.composition.reduced_formula for s in structures}),
        "prototypes": len({rid.split("-")[1] for rid in ids}),
        "planted": [[rid[: -len("-dup")], rid] for rid in ids if rid.endswith("-dup")],
        "target": TARGET_NAME,
        "unit": units[TARGET_NAME],
    }
    return records, info


@calcfunction
def generate_landscape(n: orm.Int, seed: orm.Int):
    """The synthetic Ewald landscape of ``n`` structures as a JSON dataset ``file``
    (``ewald_landscape_n<n>_seed<seed>.json``, the format ``import_dataset`` reads), and
    ``landscape``: a Dict of what is in it (see :func:`landscape_records`).

    ``n`` and ``seed`` are checked at the ports; exit code 220 if the generator refuses them.
    """
    try:
        records, info = landscape_records(n.value, seed.value)
    except ValueError as exc:
        return EXIT.ERROR_INVALID_SPEC.format(message=str(exc))
    payload = io.BytesIO(json.dumps(records).encode())
    name = f"ewald_landscape_n{n.value}_seed{seed.value}.json"
    return {"file": orm.SinglefileData(payload, filename=name), "landscape": orm.Dict(info)}


def _at_least(minimum: int) -> t.Callable[[t.Any, t.Any], str | None]:
    """A port validator: an integer ``>= minimum``."""

    def validator(value: t.Any, _port: t.Any = None) -> str | None:
        if value is None:
            return None
        v = value.value
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            return f"must be an integer >= {minimum}, got {v!r}"
        return None

    return validator


validate_inputs(generate_landscape, n=_at_least(1), seed=_at_least(0))


# ---------------------------------------------------------------------------- the WorkChain


class DemoWorkChain(WorkChain):
    """Generate a synthetic landscape, import it, compute AMD and PDD invariants, the
    PDD-EMD kNN graph and the near-duplicates within a threshold.

    Inputs: ``n`` (Int, >= 2), ``seed`` (Int, >= 0), ``k`` (Int, >= 1; lowered to
    ``n - 1``), ``threshold`` (Float, Angstrom, finite, >= 0), ``chunk_size`` (Int, optional:
    ``n / 4``, at least 50). Outputs: ``file``, ``landscape``, ``dataset``, ``amd``,
    ``pdd``, ``knn``, ``duplicates``.
    """

    @classmethod
    def define(cls, spec):
        """Inputs, outline, outputs and exit codes."""
        super().define(spec)
        spec.input("n", valid_type=orm.Int, default=lambda: orm.Int(200), validator=_at_least(2), help="Number of structures.")
        spec.input(
            "seed",
            valid_type=orm.Int,
            default=lambda: orm.Int(0),
            validator=_at_least(0),
            help="Random seed of the landscape (the same seed gives the same structures).",
        )
        spec.input(
            "k",
            valid_type=orm.Int,
            default=lambda: orm.Int(5),
            validator=check_positive_int,
            help="Neighbours per structure in the kNN graph (lowered to n - 1).",
        )
        spec.input(
            "threshold",
            valid_type=orm.Float,
            default=lambda: orm.Float(0.05),
            serializer=lambda value: orm.Float(value),
            validator=check_finite,
            help="PDD-EMD (Angstrom) at or under which two structures are near-duplicates.",
        )
        spec.input(
            "chunk_size",
            valid_type=orm.Int,
            required=False,
            validator=check_positive_int,
            help="Structures per invariants chunk (default: n / 4, at least 50).",
        )
        spec.outline(
            cls.generate,
            cls.import_landscape,
            cls.run_amd,
            cls.inspect_amd,
            cls.run_pdd,
            cls.inspect_pdd,
            cls.neighbours,
            cls.near_duplicates,
        )
        spec.output("file", valid_type=orm.SinglefileData, help="The generated landscape as a JSON dataset file.")
        spec.output("landscape", valid_type=orm.Dict, help="What was generated: counts and the planted near-duplicate pairs.")
        spec.output("dataset", valid_type=CrystalDatasetData, help="All structures and their Ewald energies, one node.")
        spec.output("amd", valid_type=InvariantsData, help=f"AMD invariants (k={INVARIANTS_K}).")
        spec.output("pdd", valid_type=InvariantsData, help=f"PDD invariants (k={INVARIANTS_K}).")
        spec.output("knn", valid_type=DistancesData, help="The PDD-EMD k-nearest-neighbour graph.")
        spec.output("duplicates", valid_type=orm.List, help="[id_a, id_b, PDD-EMD] pairs within the threshold, closest first.")
        add_exit_codes(
            spec, "ERROR_SUB_PROCESS_FAILED", "ERROR_IMPORT_FAILED", "ERROR_INVARIANTS_FAILED", "ERROR_DISTANCES_STEP_FAILED"
        )

    def generate(self):
        """Generate the landscape as a JSON dataset file."""
        results, node = generate_landscape.run_get_node(
            n=self.inputs.n, seed=self.inputs.seed, metadata={"call_link_label": "generate_landscape"}
        )
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_SUB_PROCESS_FAILED.format(message=describe_failure(node))
        self.ctx.file, self.ctx.landscape = results["file"], results["landscape"]
        self.out("file", results["file"])
        self.out("landscape", results["landscape"])
        self.report(describe_generation(results["landscape"].get_dict()))
        return None

    def import_landscape(self):
        """Import the file as one dataset node."""
        n, seed = self.inputs.n.value, self.inputs.seed.value
        options = {
            "on_error": "fail",
            "format": "json",
            "id_column": "id",
            "target_columns": [TARGET],
            "units": {TARGET: TARGET_UNIT},
        }
        results, node = import_dataset.run_get_node(
            file=self.ctx.file, options=orm.Dict(options), metadata={"call_link_label": "import_dataset"}
        )
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_IMPORT_FAILED.format(message=describe_failure(node))
        dataset = results["dataset"]
        dataset.label = f"ewald-landscape-n{n}-seed{seed}"
        dataset.description = "Synthetic ionic polymorph landscape (aiida_crystinv.sources.synthetic), Ewald energies"
        self.ctx.dataset = dataset
        self.out("dataset", dataset)
        self.report(describe_import(dataset, node))
        return None

    def _run_invariants(self, name: str):
        if "chunk_size" in self.inputs:
            chunk_size = self.inputs.chunk_size
        else:  # none given: n / 4, at least 50
            chunk_size = orm.Int(default_chunk_size(self.inputs.n.value))
        future = self.submit(
            InvariantsWorkChain,
            dataset=self.ctx.dataset,
            descriptor=orm.Dict({"name": name, "k": INVARIANTS_K}),
            chunk_size=chunk_size,
            metadata={"call_link_label": name, "label": f"{name.upper()} invariants"},
        )
        return ToContext(**{name: future})

    def _inspect_invariants(self, name: str):
        process = self.ctx[name]
        if not process.is_finished_ok:
            return self.exit_codes.ERROR_INVARIANTS_FAILED.format(message=f"{name.upper()}: {describe_failure(process)}")
        self.out(name, process.outputs.invariants)
        self.report(describe_invariants(name, process))
        return None

    def run_amd(self):
        """AMD invariants of the dataset (chunked WorkChain)."""
        return self._run_invariants("amd")

    def inspect_amd(self):
        """The AMD WorkChain must have finished successfully."""
        return self._inspect_invariants("amd")

    def run_pdd(self):
        """PDD invariants of the dataset (chunked WorkChain)."""
        return self._run_invariants("pdd")

    def inspect_pdd(self):
        """The PDD WorkChain must have finished successfully."""
        return self._inspect_invariants("pdd")

    def neighbours(self):
        """The PDD-EMD k-nearest-neighbour graph."""
        n = self.inputs.n.value
        k = self.inputs.k if self.inputs.k.value < n else orm.Int(n - 1)
        results, node = compute_neighbours.run_get_node(
            invariants=self.ctx.pdd.outputs.invariants,
            k=k,
            metric=orm.Dict({"name": METRIC}),
            metadata={"call_link_label": "compute_neighbours"},
        )
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_DISTANCES_STEP_FAILED.format(message=describe_failure(node))
        self.ctx.knn = results["distances"]
        self.out("knn", results["distances"])
        return None

    def near_duplicates(self):
        """The pairs of the kNN graph within the threshold."""
        knn = self.ctx.knn
        results, node = near_duplicate_pairs.run_get_node(
            distances=knn, threshold=self.inputs.threshold, metadata={"call_link_label": "near_duplicates"}
        )
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_DISTANCES_STEP_FAILED.format(message=describe_failure(node))
        self.out("duplicates", results["pairs"])
        planted = self.ctx.landscape.get_dict()["planted"]
        self.report(describe_neighbours(knn, knn.creator, results["pairs"].get_list(), planted, self.inputs.threshold.value))
        return None


# ---------------------------------------------------------------------------- what each step did
def _unordered(pairs: t.Iterable[t.Sequence[t.Any]]) -> set[tuple[str, str]]:
    return {(a, b) if a < b else (b, a) for a, b, *_ in pairs}


def count_planted(duplicates: t.Sequence[t.Sequence[t.Any]], planted: t.Sequence[t.Sequence[str]]) -> tuple[int, int]:
    """``(planted pairs found, other pairs)`` among ``duplicates`` (``(a, b, distance)``)."""
    found = _unordered(duplicates)
    truth = _unordered(planted)
    return len(found & truth), len(found - truth)


def describe_generation(info: t.Mapping[str, t.Any]) -> str:
    """One line: what :func:`generate_landscape` made."""
    return (
        f"generated {info['n']} ionic structures ({info['compositions']} compositions x {info['prototypes']} prototypes, "
        f"random strains and displacements, {len(info['planted'])} planted near-duplicates), "
        f"labelled with their Ewald energy [{info['unit']}]"
    )


def describe_import(dataset: CrystalDatasetData, process: orm.ProcessNode) -> str:
    """One line: the dataset and the process that imported it."""
    return f"imported as dataset {dataset.pk} ({len(dataset)} records) by import_dataset {process.pk}"


def describe_invariants(name: str, process: orm.ProcessNode) -> str:
    """One line: the invariants made by an InvariantsWorkChain and in how many chunks."""
    invariants = process.outputs.invariants
    n_chunks = -(-len(invariants) // process.inputs.chunk_size.value)
    how = f"in {n_chunks} chunks" if n_chunks > 1 else "in one chunk"
    k = invariants.parameters.get("k")
    return f"{name.upper()} invariants (k={k}): node {invariants.pk}, by InvariantsWorkChain {process.pk} {how}"


def describe_neighbours(
    knn: DistancesData,
    process: orm.ProcessNode,
    duplicates: t.Sequence[t.Sequence[t.Any]],
    planted: t.Sequence[t.Sequence[str]],
    threshold: float,
) -> str:
    """One line: the kNN graph, the near-duplicates and how many planted ones they include."""
    found, other = count_planted(duplicates, planted)
    k = knn.base.attributes.get("k")
    return (
        f"PDD-EMD {k}-nearest-neighbour graph: node {knn.pk} (compute_neighbours {process.pk}); "
        f"{len(duplicates)} near-duplicate pairs within {threshold} A: "
        f"{found}/{len(planted)} planted ones found, {other} other"
    )

