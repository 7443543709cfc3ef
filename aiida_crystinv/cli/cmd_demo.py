"""``crystinv demo``: a provenance-tracked run on data the project generates itself.

The pipeline is :class:`~aiida_crystinv.workflows.demo.DemoWorkChain` (entry point
``crystinv.demo``); this command parses its options, runs it with
:func:`~aiida_crystinv.workflows.demo.launch_demo` and prints what it made. From Python,
call ``launch_demo`` directly; to extend the demo, register a step with
:func:`~aiida_crystinv.workflows.demo_launch.register_demo_step` (see that module).

:func:`run_demo` is kept for existing scripts: ``launch_demo`` with the step lines this
command prints sent to ``report``.
"""

from __future__ import annotations

import pathlib
import typing as t

import click
from aiida.cmdline.utils import echo

from .params import FiniteFloatRange
from .root import cmd_crystinv
from .interrupt import interrupt_pending
from .utils import check_process, clean_errors, quiet_process_reports, table, with_profile

__all__ = ("run_demo", "provenance_summary", "step_line")

def step_line(step: t.Any) -> str:
    """``[i/n] what the step did (seconds)`` for a :class:`~aiida_crystinv.workflows.demo_launch.DemoStep`."""
    return f"[{step.number}/{step.total}] {step.line} ({step.seconds:.1f} s)"


def run_demo(
    n: int = 200,
    seed: int = 0,
    output: pathlib.Path | str | None = None,
    k: int = 5,
    threshold: float = 0.05,
    chunk_size: int | None = None,
    report: t.Callable[[str], None] | None = None,
) -> t.Any:
    """:func:`~aiida_crystinv.workflows.demo.launch_demo`, reporting each step's line to
    ``report``; returns its :class:`~aiida_crystinv.workflows.demo_launch.DemoResult`.

    Raises:
        ValueError: an input refused by the DemoWorkChain's ports.
        RuntimeError: the DemoWorkChain failed (the message has its PK and exit status).
    """
    from aiida_crystinv.workflows.demo_launch import launch_demo

    def on_step(step: t.Any) -> None:
        if report is not None and step.line:
            report(step_line(step))

    result, node = launch_demo(n, seed, k, threshold, chunk_size, output=output, on_step=on_step,
                               interrupted=interrupt_pending)
    if result is None:
        raise RuntimeError(f"the demo failed: DemoWorkChain {node.pk} [{node.exit_status}] {node.exit_message}")
    return result


#: What each role of a demo's nodes is, for the provenance table.
ROLES = {
    "workflow": "DemoWorkChain: the whole demo",
    "generate": "generate_landscape calcfunction",
    "file": "input file (the generated JSON)",
    "landscape": "what was generated: counts, planted near-duplicates",
    "import": "import_dataset calcfunction",
    "dataset": "the dataset: all structures + Ewald energies, one node",
    "amd_workflow": "InvariantsWorkChain (AMD, chunked)",
    "amd": "AMD invariants, one node",
    "pdd_workflow": "InvariantsWorkChain (PDD, chunked)",
    "pdd": "PDD invariants, one node",
    "knn_process": "compute_neighbours calcfunction",
    "knn": "PDD-EMD kNN graph, one node",
    "duplicates_process": "near_duplicate_pairs calcfunction",
    "duplicates": "the near-duplicate pairs, one node",
}


def provenance_summary(result: t.Any) -> str:
    """A short account of what was stored: every node created since the demo started, by
    type, and the PK, type and role of each node the demo made."""
    counts = result.stored_node_counts()
    total = sum(counts.values())
    lines = [f"Provenance: {total} nodes stored (" + ", ".join(f"{c} {name}" for name, c in counts.most_common()) + ")"]
    rows = [[node.pk, type(node).__name__, ROLES.get(role, role)] for role, node in result.nodes.items()]
    lines.append(table(rows, ["PK", "Type", "Role"]))
    return "\n".join(lines)


@cmd_crystinv.command("demo")
@click.option("-n", "--n", "n", type=click.IntRange(min=10), default=200, show_default=True, help="Number of structures.")
@click.option("-s", "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Random seed of the landscape.")
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    default=None,
    help="Folder to keep the generated dataset file, a demo.json summary and provenance.dot (default: not kept).",
)
@click.option("-k", type=click.IntRange(min=1), default=5, show_default=True, help="Neighbours per structure.")
@click.option(
    "-t", "--threshold", type=FiniteFloatRange(min=0), default=0.05, show_default=True, help="Near-duplicate PDD-EMD (A)."
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
    near-duplicates written in another cell. Then, each step an AiiDA process
    of one DemoWorkChain: import them as one dataset node, compute AMD and PDD
    invariants (chunked WorkChains), the PDD-EMD nearest-neighbour graph, and
    the near-duplicates. Ends with what was stored and how to draw the graph.

    \b
    Examples:
        crystinv demo
        crystinv demo --n 1000 --seed 1 --output demo-files
    """
    from aiida.common import log
    from aiida.manage import get_manager

    from aiida_crystinv.workflows.demo_launch import launch_demo

    from .cmd_compute import knn_table

    if log.CLI_LOG_LEVEL is None:  # keep process reports in the database, off the terminal
        quiet_process_reports()
    profile = get_manager().get_profile()
    echo.echo(f"crystinv demo: Ewald polymorph landscape, n={n}, seed={seed}, profile '{profile.name}'")

    def report(step: t.Any) -> None:
        if step.line:
            echo.echo(step_line(step))

    try:
        result, node = launch_demo(n, seed, k, threshold, chunk_size, output=output, on_step=report,
                                   interrupted=interrupt_pending)
    except ValueError as exception:
        echo.echo_critical(str(exception))
    check_process(node, "the demo")

    if result.duplicates:
        echo.echo(f"\nNear-duplicates (PDD-EMD <= {threshold} A)")
        shown = result.duplicates[:20]
        echo.echo(table([[a, b, d] for a, b, d in shown], ["Structure", "Near-duplicate", "PDD-EMD (A)"], floatfmt=".4f"))
        if len(result.duplicates) > len(shown):
            echo.echo(f"... {len(result.duplicates) - len(shown)} more: crystinv duplicates {result.nodes['pdd'].pk}")
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
