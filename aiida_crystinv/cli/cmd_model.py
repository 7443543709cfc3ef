"""Commands on trained models: ``predict``; and :func:`structures_dataset`, the structures
named on a command line (a file, a dataset or a group) as one dataset node."""

from __future__ import annotations

import pathlib
import typing as t

import click
from aiida.cmdline.utils import echo

from .output import emit_table, table_options
from .params import MODEL
from .root import cmd_crystinv
from .utils import Timer, clean_errors, count_of, one_line, run_process, with_profile

__all__ = ("cmd_predict", "structures_dataset", "forget_import")

FORMAT_CHOICES = ("auto", "cif", "csv", "json")


def structures_dataset(value: str, format_: str = "auto", what: str = "STRUCTURES") -> tuple[t.Any, t.Any]:
    """The structures named by ``value`` as one dataset: ``(dataset, import process or None)``.

    ``value`` is a structure file (CIF, CSV, JSON, or a folder of CIFs: imported as a new
    dataset with ``import_dataset``), a dataset (PK, UUID or label) or the label of an AiiDA
    group of ``StructureData`` (read with ``import_group``); the process that made a new
    dataset is returned, so that a command can undo it (:func:`forget_import`). Exits with
    one line (nothing stored) when ``value`` is none of these or the file cannot be read.
    ``what`` names the argument in messages.
    """
    from aiida import orm

    from aiida_crystinv.data import CrystalDatasetData


    path = pathlib.Path(value)
    if path.exists():
        from .cmd_dataset import import_file

        dataset, node = import_file(path, format=format_)
        echo.echo_report(f"imported {path.name}: dataset {dataset.pk} with {len(dataset)} structure(s)")
        return dataset, node
    node = None
    try:
        node = orm.load_node(value)
        if isinstance(node, CrystalDatasetData):
            return node, None
    except Exception:  # noqa: BLE001 - not a node: maybe a group
        node = None
    try:
        group = orm.load_group(value)
    except Exception:  # noqa: BLE001
        said = f"node {node.pk} is a {type(node).__name__}" if node is not None else "no such file, dataset or group"
        echo.echo_critical(f"{what} {value!r}: {said}; give a structure file, a dataset or a group of StructureData")
    from aiida_crystinv.calculations.sources import import_group

    results, process = run_process(import_group, {"group": orm.Str(group.label)})
    if not process.is_finished_ok:
        reason = process.exit_message or f"exit status {process.exit_status}"
        forget_import(process)
        echo.echo_critical(one_line(f"{what} {value!r}: reading the group {group.label} failed: {reason} [nothing was stored]"))
    return results["dataset"], process


def forget_import(process: t.Any) -> list[int]:
    """Delete what an import made for this command: the import process, its inputs (made
    here: the file node, options) and its outputs, with everything computed from them.
    Returns the deleted pks."""
    from aiida.common.links import LinkType
    from aiida.tools import delete_nodes

    pks = {process.pk} | {link.node.pk for link in process.base.links.get_incoming(link_type=LinkType.INPUT_CALC).all()}
    deleted, _ = delete_nodes(sorted(pks), dry_run=False)
    return sorted(deleted)


def _reference(model: t.Any) -> t.Any:
    """The training invariants of a kNN model (passed to ``predict`` so that the graph links
    them); exits with one line when they cannot be loaded."""
    try:
        return model.load_reference()
    except Exception as exception:  # noqa: BLE001 - ModelSpecError, NotExistent: one line
        echo.echo_critical(one_line(f"model {model.pk} predicts from its training invariants, which cannot be "
                                    f"loaded: {exception}"))


@cmd_crystinv.command("predict")
@click.argument("model", type=MODEL)
@click.argument("structures", metavar="STRUCTURES")
@click.option("-F", "--input-format", "format_", type=click.Choice(FORMAT_CHOICES), default="auto", show_default=True,
              help="Format of a STRUCTURES file; 'auto' guesses from the extension.")
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True,
              help="Rows of the text table (0: none); --format csv|json writes every row.")
@table_options
@with_profile
@clean_errors
def cmd_predict(model, structures, format_, limit, table_format, output, force):
    """Predict the target of MODEL for every structure of STRUCTURES.

    MODEL is a trained model node (the `model` output of `train_model`, a
    TrainingWorkChain or a study). STRUCTURES is a structure file (CIF, CSV,
    JSON, or a folder of CIFs: imported as a new dataset), a dataset (PK, UUID
    or label) or an AiiDA group of StructureData. The prediction runs as the
    `predict` calcfunction, so the predictions node is stored and linked to the
    model and the structures (a kNN model: also to its training invariants).
    When the structures carry the model's target, the true values and the
    errors are shown too.

    If the prediction fails (e.g. a structure whose descriptor cannot be
    computed), nothing imported for it is kept.

    \b
    Examples:
        crystinv predict 812 candidates.cif
        crystinv predict 812 77 --format csv -o predictions.csv
        crystinv predict 812 my-structures-group --format json
    """
    import numpy as np

    from aiida_crystinv.calculations.learning import predict

    inputs: dict[str, t.Any] = {"model": model}
    if model.needs_reference:
        inputs["reference"] = _reference(model)
    dataset, imported = structures_dataset(structures, format_)
    inputs["dataset"] = dataset
    with Timer() as timer:
        outputs, node = run_process(predict, inputs)
    if not node.is_finished_ok:
        reason = node.exit_message or ("an exception" if node.is_excepted else f"exit status {node.exit_status}")
        if imported is not None:
            forget_import(imported)
            kept = "nothing was stored"
        else:
            kept = f"predict {node.pk}; no predictions stored"
        echo.echo_critical(one_line(f"predicting with model {model.pk} failed: {reason} [{kept}]"))
    predictions = outputs["predictions"]
    target = model.target
    name, unit = target["name"], target.get("unit") or ""
    ids = predictions.get_array("ids").tolist()
    y_pred = predictions.get_array("y_pred")
    has_true = "y_true" in predictions.get_arraynames()
    headers = ["id", "predicted"] + (["true"] if has_true else [])
    columns = [ids, y_pred.tolist()] + ([predictions.get_array("y_true").tolist()] if has_true else [])
    rows = [list(row) for row in zip(*columns)]
    echo.echo_success(
        f"{name} predicted by model {model.pk} ({model.model_name} on {model.descriptor.get('name')}) for "
        f"{count_of(len(ids), 'structure')} of dataset {dataset.pk}: predictions node {predictions.pk} "
        f"(predict {node.pk}; {timer.seconds:.1f} s)"
    )
    if "metrics" in outputs:
        m = outputs["metrics"].get_dict()
        echo.echo(f"  against the dataset's own {name}: MAE {m['mae']:.4g} {unit}, R2 {m['r2']:.3f}, n={m['n']}".replace(" ,", ","))
    if table_format == "table" and output is None and not limit:
        return
    if table_format == "table" and len(ids) and np.isfinite(y_pred).all():
        echo.echo(f"  {name} [{unit or '-'}]: lowest {y_pred.min():.4g}, median {np.median(y_pred):.4g}, highest {y_pred.max():.4g}")
    emit_table(headers, rows, table_format=table_format, output=output, force=force,
               units={"predicted": unit, "true": unit}, limit=limit if table_format == "table" else None, floatfmt=".6g")
