"""``crystinv audit``: the invariance and continuity audit of descriptors on a dataset."""

from __future__ import annotations

from pathlib import Path

import click
from aiida.cmdline.utils import echo

from .params import DATASET
from .root import cmd_crystinv
from .utils import check_process, clean_errors, run_process, with_profile


def _cell(x) -> str:
    if x is None:
        return "not comparable"
    if isinstance(x, float):
        return "0" if x == 0 else f"{x:.2g}"
    return str(x)


@cmd_crystinv.command("audit")
@click.argument("dataset", type=DATASET)
@click.option("-d", "--descriptor", "descriptors", multiple=True, required=True,
              help="A descriptor (repeatable): amd, pdd, grid, rdf, density, niggli, sine_matrix, ewald_sum_matrix, "
              "soap, mbtr, acsf, embedding:<embedding>:<pooling>, element_mover:<embedding>, matminer:<Featurizer>, an entry point of "
              "the group crystinv.descriptors, or module:function.")
@click.option("-n", "--n-structures", type=click.IntRange(min=1), default=4, show_default=True,
              help="Audit the first N records of DATASET.")
@click.option("-t", "--target", default=None,
              help="Also measure target continuity for this target of DATASET (over --n-target records).")
@click.option("--n-target", type=click.IntRange(min=3), default=None,
              help="Records used for target continuity. Default: all.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the transforms and perturbations.")
@click.option("--png-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write the plots (PNG) into this folder.")
@with_profile
@clean_errors
def cmd_audit(dataset, descriptors, n_structures, target, n_target, seed, png_dir):
    """Audit descriptors for invariance and continuity on DATASET.

    For each descriptor: the largest change under a diagonal and a non-diagonal
    supercell, a skewed unimodular change of basis, a rotation, an origin
    shift and a permutation of atoms ("not comparable" when the output shape
    changes), and the change when every atom moves by at most eps (a jump:
    change / eps growing as eps shrinks). The table and plots are stored as
    nodes of one crystinv.audit process.

    \b
    Examples:
        crystinv audit 42 -d amd -d sine_matrix -d niggli
        crystinv audit 42 -d pdd -d embedding:mat2vec:mean -t heat_ref --png-dir plots
    """
    from aiida import orm

    from aiida_crystinv.calculations.audit import audit_descriptors

    parameters = {"n_structures": n_structures, "seed": seed}
    if target is not None:
        parameters["target"] = target
    if n_target is not None:
        parameters["n_target"] = n_target
    outputs, node = run_process(audit_descriptors, {"dataset": dataset, "descriptors": orm.List(list(descriptors)),
                                                    "parameters": orm.Dict(parameters)}, label="audit")
    check_process(node, "the audit")
    table = outputs["table"].get_dict()
    cols = ["descriptor", *table["transforms"], "invariance", "continuity"]
    echo.echo("  ".join(cols))
    for row in table["rows"]:
        echo.echo("  ".join(_cell(row.get(c)) for c in cols))
    if "target_table" in outputs:
        echo.echo(f"target continuity ({target}): descriptor  d  c  ratio")
        for row in outputs["target_table"].get_dict()["rows"]:
            echo.echo(f"{row['descriptor']}  {_cell(row['d'])}  {_cell(row['c'])}  {_cell(row['ratio'])}")
    if png_dir is not None:
        png_dir.mkdir(parents=True, exist_ok=True)
        for key in ("continuity_plot", "target_plot"):
            if key in outputs:
                (png_dir / outputs[key].filename).write_bytes(outputs[key].get_content(mode="rb"))
    echo.echo_success(f"audit of {len(descriptors)} descriptor(s) on {table['n_structures']} structure(s): "
                      f"{type(node).__name__} {node.pk}, table node {outputs['table'].pk}")
