"""``crystinv demo``: a provenance-tracked run on data the project generates itself.

The demo is a library function, :func:`run_demo`, returning a :class:`DemoResult` whose
``nodes`` map a role (``"dataset"``, ``"amd"``, ``"pdd"``, ``"knn"`` ...) to the stored
node. To extend the demo (e.g. with a model-training study), register a step::

    from aiida_crystinv.cli.cmd_demo import DemoResult, register_demo_step

    @register_demo_step("train a kNN energy model on the PDD-EMD graph")
    def train(result: DemoResult) -> str:
        ...                                  # use result.nodes["dataset"], ["pdd"] ...
        result.nodes["model"] = model_node   # appears in the provenance summary
        return "kNN model: MAE 0.05 eV/atom"   # one line for the step report

Registered steps run after the built-in ones, in registration order, each timed and
reported like them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pathlib
import tempfile
import time
import typing as t

import click
from aiida.cmdline.utils import echo

from .root import cmd_crystinv
from .utils import clean_errors, quiet_process_reports, table, with_profile

__all__ = ("DemoResult", "run_demo", "register_demo_step", "DEMO_STEPS")

TARGET = "ewald_energy_per_atom"


@dataclasses.dataclass
class DemoResult:
    """What :func:`run_demo` made: nodes by role, timings, duplicates, where files went."""

    n: int
    seed: int
    output: pathlib.Path | None
    nodes: dict[str, t.Any] = dataclasses.field(default_factory=dict)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    lines: list[str] = dataclasses.field(default_factory=list)
    duplicates: list[tuple[str, str, float]] = dataclasses.field(default_factory=list)
    planted: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    first_pk: int = 0
    wall_time: float = 0.0
    extra: dict[str, t.Any] = dataclasses.field(default_factory=dict)

    @property
    def found_planted(self) -> int:
        """How many planted near-duplicate pairs the search found."""
        found = {(a, b) if a < b else (b, a) for a, b, _ in self.duplicates}
        return sum(((a, b) if a < b else (b, a)) in found for a, b in self.planted)


DemoStep = t.Callable[[DemoResult], t.Optional[str]]
#: Extra steps run after the built-in ones: ``(title, function)``.
DEMO_STEPS: list[tuple[str, DemoStep]] = []


def register_demo_step(title: str) -> t.Callable[[DemoStep], DemoStep]:
    """Decorator: run ``func(result) -> str | None`` as an extra step of the demo."""

    def decorator(func: DemoStep) -> DemoStep:
        DEMO_STEPS.append((title, func))
        return func

    return decorator


def _max_pk() -> int:
    from aiida import orm

    builder = orm.QueryBuilder().append(orm.Node, project=["id"]).order_by({orm.Node: {"id": "desc"}}).limit(1)
    rows = builder.all()
    return int(rows[0][0]) if rows else 0


def write_landscape(path: pathlib.Path, n: int, seed: int) -> tuple[list[str], dict[str, t.Any]]:
    """Generate the Ewald landscape and write it as a JSON dataset file; return ``(ids, info)``."""
    from aiida_crystinv.sources.synthetic import TARGET_NAME, ewald_landscape

    ids, structures, targets, units = ewald_landscape(n=n, seed=seed)
    records = [
        {"id": rid, "formula": s.composition.reduced_formula, "structure": s.as_dict(), TARGET_NAME: float(e)}
        for rid, s, e in zip(ids, structures, targets[TARGET_NAME])
    ]
    path.write_text(json.dumps(records))
    info = {
        "formulas": len({s.composition.reduced_formula for s in structures}),
        "prototypes": len({rid.split("-")[1] for rid in ids}),
        "units": units,
    }
    return ids, info


def run_demo(
    n: int = 200,
    seed: int = 0,
    output: pathlib.Path | str | None = None,
    k: int = 5,
    threshold: float = 0.05,
    chunk_size: int | None = None,
    report: t.Callable[[str], None] | None = None,
) -> DemoResult:
    """Generate, import, compute AMD and PDD invariants, PDD-EMD neighbours, near-duplicates.

    Needs a loaded profile. Every step is an AiiDA process; the returned
    :class:`DemoResult` holds the nodes by role: ``file``, ``dataset``, ``amd``, ``pdd``,
    ``knn`` (and the process nodes ``import``, ``amd_workflow``, ``pdd_workflow``,
    ``knn_process``), plus whatever registered steps add.

    :param n: number of structures of the synthetic landscape.
    :param seed: its random seed.
    :param output: folder to keep the generated JSON file, a ``demo.json`` summary (PKs,
        timings, duplicates) and ``provenance.dot`` (the graph in Graphviz DOT text) in
        (default: a temporary folder, deleted afterwards).
    :param k: neighbours per structure in the kNN graph.
    :param threshold: PDD-EMD (Angstrom) under which two structures are near-duplicates.
    :param chunk_size: structures per invariants chunk (default: n/4, at least 50).
    :param report: called with one line per finished step (default: nothing).
    """
    from .cmd_compute import compute_invariants, near_duplicate_pairs, nearest_neighbours
    from .cmd_dataset import import_file

    say = report or (lambda line: None)
    start = time.perf_counter()
    result = DemoResult(n=n, seed=seed, output=pathlib.Path(output) if output else None)
    result.first_pk = _max_pk() + 1
    steps_total = 5 + len(DEMO_STEPS)
    chunk = chunk_size or max(50, -(-n // 4))  # 4 chunks for n >= 200, one below 50

    def step(i: int, key: str, func: t.Callable[[], str | None]) -> None:
        t0 = time.perf_counter()
        line = func()
        result.timings[key] = time.perf_counter() - t0
        if line:
            result.lines.append(line)
            say(f"[{i}/{steps_total}] {line} ({result.timings[key]:.1f} s)")

    with contextlib.ExitStack() as stack:
        if result.output is None:
            folder = pathlib.Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crystinv-demo-")))
        else:
            folder = result.output
            folder.mkdir(parents=True, exist_ok=True)
        data_file = folder / f"ewald_landscape_n{n}_seed{seed}.json"

        def generate() -> str:
            ids, info = write_landscape(data_file, n, seed)
            result.planted = [(rid[: -len("-dup")], rid) for rid in ids if rid.endswith("-dup")]
            return (
                f"generated {n} ionic structures ({info['formulas']} compositions x {info['prototypes']} prototypes, "
                f"random strains and displacements, {len(result.planted)} planted near-duplicates), "
                f"labelled with their Ewald energy [eV/atom]"
            )

        def do_import() -> str:
            dataset, node = import_file(
                data_file,
                format="json",
                id_column="id",
                targets=[(TARGET, "eV/atom")],
                label=f"ewald-landscape-n{n}-seed{seed}",
                description="Synthetic ionic polymorph landscape (aiida_crystinv.sources.synthetic), Ewald energies",
            )
            result.nodes.update({"file": node.inputs.file, "import": node, "dataset": dataset})
            return f"imported as dataset {dataset.pk} ({len(dataset)} records) by import_dataset {node.pk}"

        def invariants(name: str, k_: int) -> t.Callable[[], str]:
            def run() -> str:
                inv, node = compute_invariants(
                    result.nodes["dataset"], {"name": name, "k": k_}, chunk_size=chunk, label=f"{name.upper()} invariants"
                )
                result.nodes.update({name: inv, f"{name}_workflow": node})
                n_chunks = -(-n // chunk)
                how = f"in {n_chunks} chunks" if n_chunks > 1 else "in one chunk"
                return f"{name.upper()} invariants (k={k_}): node {inv.pk}, by InvariantsWorkChain {node.pk} {how}"

            return run

        def neighbours() -> str:
            knn, node = nearest_neighbours(result.nodes["pdd"], min(k, n - 1), "pdd_emd")
            result.nodes.update({"knn": knn, "knn_process": node})
            result.duplicates = near_duplicate_pairs(knn, threshold)
            planted = {(a, b) if a < b else (b, a) for a, b in result.planted}
            false = sum(((a, b) if a < b else (b, a)) not in planted for a, b, _ in result.duplicates)
            return (
                f"PDD-EMD {min(k, n - 1)}-nearest-neighbour graph: node {knn.pk} (nearest_neighbours {node.pk}); "
                f"{len(result.duplicates)} near-duplicate pairs within {threshold} A: "
                f"{result.found_planted}/{len(result.planted)} planted ones found, {false} other"
            )

        step(1, "generate", generate)
        step(2, "import", do_import)
        step(3, "amd", invariants("amd", 100))
        step(4, "pdd", invariants("pdd", 100))
        step(5, "neighbours", neighbours)
        for i, (title, func) in enumerate(DEMO_STEPS, start=6):
            step(i, title, lambda func=func: func(result))

        result.wall_time = time.perf_counter() - start
        if result.output is not None:
            dot = folder / "provenance.dot"
            dot.write_text(provenance_dot(result.nodes["file"]))
            result.extra["provenance_dot"] = dot
            summary = {
                "n": n,
                "seed": seed,
                "nodes": {role: {"pk": node.pk, "uuid": node.uuid, "type": type(node).__name__} for role, node in result.nodes.items()},
                "timings_s": result.timings,
                "wall_time_s": result.wall_time,
                "duplicates": result.duplicates,
            }
            (folder / "demo.json").write_text(json.dumps(summary, indent=2))
    return result


def provenance_dot(root: t.Any) -> str:
    """The provenance graph downstream of ``root`` in Graphviz DOT text (no Graphviz needed to write it).

    Render it with ``dot -Tpdf provenance.dot -o provenance.pdf`` or any DOT viewer.
    """
    from aiida.tools.visualization import Graph

    graph = Graph(graph_attr={"rankdir": "TB"})
    graph.recurse_descendants(root, include_process_inputs=True)
    return graph.graphviz.source


def provenance_summary(result: DemoResult) -> str:
    """A short account of what was stored: every node created since the demo started, by type."""
    from collections import Counter

    from aiida import orm

    builder = orm.QueryBuilder().append(orm.Node, filters={"id": {">=": result.first_pk}}, project=["node_type"])
    counts = Counter(row[0].rstrip(".").split(".")[-1] for row in builder.all())
    total = sum(counts.values())
    lines = [f"Provenance: {total} nodes stored (" + ", ".join(f"{c} {name}" for name, c in counts.most_common()) + ")"]
    roles = {
        "file": "input file (the generated JSON)",
        "import": "import_dataset calcfunction",
        "dataset": "the dataset: all structures + Ewald energies, one node",
        "amd_workflow": "InvariantsWorkChain (AMD, chunked)",
        "amd": "AMD invariants, one node",
        "pdd_workflow": "InvariantsWorkChain (PDD, chunked)",
        "pdd": "PDD invariants, one node",
        "knn_process": "nearest_neighbours calcfunction",
        "knn": "PDD-EMD kNN graph, one node",
    }
    rows = [[node.pk, type(node).__name__, roles.get(role, role)] for role, node in result.nodes.items()]
    lines.append(table(rows, ["PK", "Type", "Role"]))
    return "\n".join(lines)


@cmd_crystinv.command("demo")
@click.option("-n", "--n", "n", type=click.IntRange(min=10), default=200, show_default=True, help="Number of structures.")
@click.option("-s", "--seed", type=int, default=0, show_default=True, help="Random seed of the landscape.")
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    default=None,
    help="Folder to keep the generated dataset file, a demo.json summary and provenance.dot (default: not kept).",
)
@click.option("-k", type=click.IntRange(min=1), default=5, show_default=True, help="Neighbours per structure.")
@click.option(
    "-t", "--threshold", type=click.FloatRange(min=0), default=0.05, show_default=True, help="Near-duplicate PDD-EMD (A)."
)
@click.option(
    "-c", "--chunk-size", type=click.IntRange(min=1), default=None, help="Structures per invariants chunk [default: n/4, at least 50]."
)
@with_profile
@clean_errors
def cmd_demo(n, seed, output, k, threshold, chunk_size):
    """Run the whole pipeline on a synthetic crystal landscape (offline).

    Generates N ionic structures from prototypes (rocksalt, CsCl, zincblende,
    wurtzite, NiAs, fluorite, rutile, CdI2, perovskite) with random strains and
    displacements, labelled with their Ewald energy, a few of them planted
    near-duplicates written in another cell. Then, each step an AiiDA process:
    import them as one dataset node, compute AMD and PDD invariants (chunked
    WorkChains), the PDD-EMD nearest-neighbour graph, and list the
    near-duplicates. Ends with what was stored and how to draw the graph.

    \b
    Examples:
        crystinv demo
        crystinv demo --n 1000 --seed 1 --output demo-files
    """
    from aiida.common import log
    from aiida.manage import get_manager

    if log.CLI_LOG_LEVEL is None:  # keep process reports in the database, off the terminal
        quiet_process_reports()
    profile = get_manager().get_profile()
    echo.echo(f"crystinv demo: Ewald polymorph landscape, n={n}, seed={seed}, profile '{profile.name}'")
    result = run_demo(n=n, seed=seed, output=output, k=k, threshold=threshold, chunk_size=chunk_size, report=echo.echo)

    if result.duplicates:
        echo.echo(f"\nNear-duplicates (PDD-EMD <= {threshold} A)")
        shown = result.duplicates[:20]
        echo.echo(table([[a, b, d] for a, b, d in shown], ["Structure", "Near-duplicate", "PDD-EMD (A)"], floatfmt=".4f"))
        if len(result.duplicates) > len(shown):
            echo.echo(f"... {len(result.duplicates) - len(shown)} more: crystinv duplicates {result.nodes['pdd'].pk}")
    from .cmd_compute import knn_table

    echo.echo("\nNearest neighbours (PDD-EMD, first 5 structures)")
    echo.echo(knn_table(result.nodes["knn"], limit=5))
    echo.echo("")
    echo.echo(provenance_summary(result))
    root = result.nodes["file"].pk
    echo.echo(
        f"Draw it:  verdi -p {profile.name} node graph generate --process-in --process-out {root} "
        "(writes a PDF; needs graphviz)"
    )
    echo.echo(f"Inspect:  crystinv show {result.nodes['dataset'].pk}   |   verdi -p {profile.name} process list -a -p 1")
    if result.output is not None:
        echo.echo(f"Files:    {result.output} (the dataset file, demo.json, provenance.dot: `dot -Tpdf` renders it)")
    echo.echo_success(f"demo finished in {result.wall_time:.1f} s")
