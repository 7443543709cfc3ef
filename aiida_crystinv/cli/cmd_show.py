"""``crystinv show NODE``: a summary of a dataset, invariants, distances or model node (or
its table, with ``--format csv|json`` / ``-o``)."""

from __future__ import annotations

import json
import typing as t

import click
from aiida.cmdline.utils import echo

from .output import table_options
from .params import CRYSTINV_NODE
from .root import cmd_crystinv
from .utils import clean_errors, count_of, is_chunk, is_result, table, with_profile


def _describe_creator(node: t.Any) -> str:
    creator = node.creator
    if creator is None:
        return "created directly (no process)"
    from aiida.common.links import LinkType

    incoming = creator.base.links.get_incoming(link_type=(LinkType.INPUT_CALC, LinkType.INPUT_WORK)).all()
    inputs = ", ".join(f"{link.link_label}={type(link.node).__name__}<{link.node.pk}>" for link in incoming)
    return f"{creator.process_label}<{creator.pk}>({inputs})"


def _show_dataset(node: t.Any, max_skipped: int) -> None:
    import numpy as np

    formulas = node.formulas
    echo.echo(f"Dataset {node.pk}  {node.label or ''}".rstrip())
    rows = [
        ["UUID", node.uuid],
        ["Created", node.ctime.strftime("%Y-%m-%d %H:%M:%S")],
        ["Structures", len(node)],
        ["Sites", node.n_sites],
        ["Formulas", f"{len(set(formulas))} distinct"],
        ["Elements", " ".join(node.elements)],
        ["Ordered", "yes" if node.is_ordered else "no (partial occupancies present)"],
        ["Source", (node.source or {}).get("description") or (node.source or {}).get("uri") or "-"],
        ["Created by", _describe_creator(node)],
    ]
    echo.echo(table(rows, plain=True))
    if node.target_names:
        echo.echo("\nTargets")
        units = node.units
        trows = []
        for name in node.target_names:
            values = node.get_target(name)
            finite = values[np.isfinite(values)]
            trows.append(
                [
                    name,
                    units.get(name) or "-",
                    len(finite),
                    finite.min() if len(finite) else float("nan"),
                    np.median(finite) if len(finite) else float("nan"),
                    finite.mean() if len(finite) else float("nan"),
                    finite.max() if len(finite) else float("nan"),
                    finite.std() if len(finite) else float("nan"),
                ]
            )
        echo.echo(table(trows, ["Target", "Unit", "Count", "Min", "Median", "Mean", "Max", "Std"]))
    skipped = node.skipped
    if skipped:
        echo.echo(f"\nSkipped records ({len(skipped)})")
        srows = [[s.get("id", "?"), s.get("position") or "", s.get("reason", "")] for s in skipped[:max_skipped]]
        echo.echo(table(srows, ["Record", "Position", "Reason"]))
        if len(skipped) > max_skipped:
            echo.echo(f"... and {len(skipped) - max_skipped} more (--max-skipped N)")
    derived = _derived_invariants(node)
    if derived:
        echo.echo("\nInvariants computed from it")
        echo.echo(table(derived, ["PK", "Descriptor", "Created"]))
    ids = node.ids
    preview = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
    echo.echo(f"\nRecords: {preview}")


def _derived_invariants(dataset: t.Any) -> list[list[t.Any]]:
    from aiida import orm
    from aiida.plugins import DataFactory

    invariants_cls = DataFactory("crystinv.invariants")
    builder = orm.QueryBuilder()
    builder.append(orm.Data, filters={"id": dataset.pk}, tag="dataset")
    builder.append(orm.ProcessNode, with_incoming="dataset", tag="process")
    builder.append(invariants_cls, with_incoming="process", project="*")
    builder.distinct()
    rows = []
    for (inv,) in builder.all():
        if is_chunk(inv) or not is_result(inv):
            continue
        rows.append([inv.pk, inv.base.attributes.get("descriptor", "?"), inv.ctime.strftime("%Y-%m-%d %H:%M")])
    return sorted(rows)


def _show_other(node: t.Any) -> None:
    attrs = node.base.attributes.all
    echo.echo(f"{type(node).__name__} {node.pk}")
    rows = [["UUID", node.uuid], ["Created", node.ctime.strftime("%Y-%m-%d %H:%M:%S")]]
    for key, value in sorted(attrs.items()):
        text = json.dumps(value, default=str)
        rows.append([key, text if len(text) < 100 else text[:97] + "..."])
    rows.append(["Created by", _describe_creator(node)])
    echo.echo(table(rows, plain=True))


def _compact(value: t.Any, limit: int = 100) -> str:
    """A JSON value on one line, ``key=value`` for a mapping, cut at ``limit`` characters."""
    if isinstance(value, dict):
        text = ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in value.items()) or "-"
    else:
        text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _load_or_none(uuid: str | None) -> t.Any:
    from aiida import orm

    if not uuid:
        return None
    try:
        return orm.load_node(uuid)
    except Exception:  # noqa: BLE001 - deleted, or in another profile
        return None


def _evaluation_name(metrics: dict[str, t.Any]) -> str:
    split = metrics.get("split")
    if not split:
        return "test set"
    if split.get("kind") == "kfold":
        return f"{split.get('n_splits')}-fold CV (seed {split.get('seed')})"
    if split.get("kind") == "holdout":
        return f"hold-out {split.get('test_fraction')} (seed {split.get('seed')})"
    return str(split.get("kind"))


def _model_sections(node: t.Any) -> tuple[list[list[t.Any]], list[list[t.Any]], list[str]]:
    """``(rows, metric rows, predictions)`` of :func:`_show_model`: what the model is and was
    trained on, its metrics (fit, and the evaluation of the TrainingWorkChain that made it),
    and the ``predict`` processes that used it."""
    from aiida import orm

    target = node.target
    training = node.training
    spec = {k: v for k, v in node.model_spec.items() if k not in ("name", "metric", "target_transform")}
    params = node.model_params
    descriptor = node.descriptor
    dataset = _load_or_none(training.get("dataset_uuid"))
    values_uuid = training.get("invariants_uuid") or training.get("features_uuid")
    values = _load_or_none(values_uuid)
    if dataset is not None:
        trained_on = f"dataset {dataset.pk}" + (f" '{dataset.label}'" if dataset.label else "")
    else:
        trained_on = f"dataset {training.get('dataset_uuid') or '-'} (not in this profile)"
    trained_on += f", {count_of(int(training.get('n_records') or 0), 'record')}"
    transform = target.get("transform")
    rows: list[list[t.Any]] = [
        ["UUID", node.uuid],
        ["Created", node.ctime.strftime("%Y-%m-%d %H:%M:%S")],
        ["Model", node.model_name],
        ["Hyperparameters", _compact(spec)],
        ["Fitted", _compact(params.get("fitted", {}))],
        ["Descriptor", f"{descriptor.get('name')} ({descriptor.get('kind')}): {_compact(descriptor.get('params', {}))}"],
    ]
    if node.metric:
        metric = dict(node.metric)
        rows.append(["Metric", f"{metric.pop('name')}" + (f" ({_compact(metric)})" if metric else "")])
    rows += [
        ["Target", f"{target['name']} [{target.get('unit') or '-'}]" + (f", fitted on {transform} of it" if transform else "")],
        ["Trained on", trained_on],
    ]
    if values is not None:
        kind = "invariants" if training.get("invariants_uuid") else "features"
        rows.append([f"Training {kind}", f"{type(values).__name__} {values.pk}"])
    rows.append(["Created by", _describe_creator(node)])
    creator = node.creator
    caller = creator.caller if creator is not None else None
    if caller is not None:
        rows.append(["Called by", f"{caller.process_label}<{caller.pk}>" + (f" '{caller.label}'" if caller.label else "")])

    fit = node.metrics
    metric_rows: list[list[t.Any]] = []
    if "train_mae" in fit:
        metric_rows.append(["fit (training records)", fit.get("train_mae"), fit.get("train_median_ae"), fit.get("train_rmse"),
                            fit.get("train_r2"), fit.get("train_n"), None])
    if caller is not None:
        from aiida.common.links import LinkType

        for link in caller.base.links.get_outgoing(link_type=LinkType.RETURN, link_label_filter="metrics").all():
            m = link.node.get_dict()
            metric_rows.append([_evaluation_name(m), m.get("mae"), m.get("median_ae"), m.get("rmse"), m.get("r2"), m.get("n"),
                                m.get("baseline_mae")])
    builder = orm.QueryBuilder()
    builder.append(orm.Data, filters={"id": node.pk}, tag="model")
    builder.append(orm.CalcFunctionNode, with_incoming="model", edge_filters={"label": "model"},
                   filters={"attributes.process_label": "predict"}, project="id", tag="predict")
    builder.order_by({"predict": {"id": "desc"}})
    predictions = [str(pk) for (pk,) in builder.all()]
    return rows, metric_rows, predictions


def _show_model(node: t.Any, table_format: str = "table", output: t.Any = None, force: bool = False) -> None:
    """A trained model: what it is, what it was trained on, its metrics, who made and used it."""
    rows, metric_rows, predictions = _model_sections(node)
    unit = node.target.get("unit") or ""
    headers = ["Evaluation", "MAE", "Median AE", "RMSE", "R2", "n", "Median-predictor MAE"]
    if table_format != "table" or output is not None:
        from .output import emit_table

        records = [["model", key, value] for key, value in rows]
        records += [["metrics", f"{row[0]}: {name}", value] for row in metric_rows for name, value in zip(headers[1:], row[1:])]
        emit_table(["section", "key", "value"], records, table_format=table_format, output=output, force=force)
        return
    echo.echo(f"Model {node.pk}  {node.label or ''}".rstrip())
    echo.echo(table(rows, plain=True))
    if metric_rows:
        echo.echo(f"\nMetrics ({unit or 'target units'})")
        shown = [[row[0]] + ["-" if v is None else format(v, ".4g") if isinstance(v, float) else v for v in row[1:]]
                 for row in metric_rows]
        echo.echo(table(shown, headers))
    if predictions:
        more = f" and {len(predictions) - 10} more" if len(predictions) > 10 else ""
        echo.echo(f"\nUsed by predict: {', '.join(predictions[:10])}{more}")
    echo.echo(f"\nPredict with it:  crystinv predict {node.pk} STRUCTURES")


@cmd_crystinv.command("show")
@click.argument("node", type=CRYSTINV_NODE)
@click.option("--max-skipped", type=click.IntRange(min=0), default=20, show_default=True, help="Skipped records to list.")
@table_options
@with_profile
@clean_errors
def cmd_show(node, max_skipped, table_format, output, force):
    """Summary of a dataset: size, targets with statistics, skipped records.

    NODE is the PK, UUID or label of a dataset (an invariants or distances node
    is shown too, with its attributes). For a trained model: its descriptor,
    target and unit, hyperparameters, the dataset and number of records it was
    trained on, its metrics (fit, and the cross-validation / hold-out / test
    evaluation of the training that made it) and the processes that made and
    used it.

    With --format csv|json (or -o FILE) the node's records are written as one
    table instead: a dataset's id, formula and targets; invariants one row per
    record (PDD: one row per PDD row); distances one row per pair (kNN: query,
    neighbour, rank, distance). Units are in the header / under "units".

    \b
    Example:
        crystinv show 42
        crystinv show 812                  # a trained model
        crystinv show 51 --format csv > invariants.csv
    """
    from aiida_crystinv.data.dataset import CrystalDatasetData
    from aiida_crystinv.data.model import ModelData

    if isinstance(node, ModelData):
        _show_model(node, table_format, output, force)
        return
    if table_format != "table" or output is not None:
        from aiida_crystinv.data import DistancesData, to_dataframe

        from .output import emit_frame

        options = {"form": "long"} if isinstance(node, DistancesData) else {}
        emit_frame(to_dataframe(node, **options), table_format=table_format, output=output, force=force)
        return

    if isinstance(node, CrystalDatasetData):
        _show_dataset(node, max_skipped)
    else:
        _show_other(node)
