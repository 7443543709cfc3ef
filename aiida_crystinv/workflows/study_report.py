"""The Markdown report of a finished study: ``report.md``, parity plots, node tables."""

from __future__ import annotations

import pathlib
from typing import Any, Mapping

from aiida import orm

__all__ = ["write_report", "metrics_table"]


# ------------------------------------------------------------------------------- report


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def metrics_table(summary: Mapping[str, Any], markdown: bool = False) -> str:
    """The metrics table of a study summary (plain text, or a Markdown table)."""
    unit = summary.get("unit") or ""
    headers = ["model", "descriptor", f"MAE ({unit})", f"median AE ({unit})", f"RMSE ({unit})", "R2", "n",
               f"median-predictor MAE ({unit})"]
    rows = [
        [r["model"], r["descriptor"], _fmt(r["mae"]), _fmt(r["median_ae"]), _fmt(r["rmse"]), _fmt(r["r2"], 3), _fmt(r["n"]),
         _fmt(r["baseline_mae"])]
        for r in summary["rows"]
    ]
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    from tabulate import tabulate

    return tabulate(rows, headers=headers, disable_numparse=True)


def write_report(node: orm.WorkflowNode, directory: str | pathlib.Path | None = None) -> pathlib.Path:
    """Write ``report.md``, the parity plots (``parity_<pair>.png``) and the node table of
    a finished StudyWorkChain into ``directory`` (default ``./crystinv-study-<pk>``).

    Returns:
        The path of ``report.md``.

    Raises:
        ValueError: the node is not a finished StudyWorkChain with a summary.
    """
    outputs = node.outputs
    if "summary" not in outputs:
        state = "finished" if node.is_finished else "not finished"
        raise ValueError(
            f"process <{node.pk}> has no study summary ({state}, exit status {node.exit_status}: {node.exit_message}); "
            f"see `verdi process report {node.pk}`"
        )
    directory = pathlib.Path(directory or f"crystinv-study-{node.pk}")
    directory.mkdir(parents=True, exist_ok=True)
    summary = outputs.summary.get_dict()
    study = node.inputs.study.get_dict()
    lines = [f"# Study: {summary['name']}", ""]
    if study.get("description"):
        lines += [study["description"], ""]
    lines += [
        f"- study file: `{study.get('file', '-')}`",
        f"- StudyWorkChain: pk {node.pk}, uuid `{node.uuid}` (`verdi process show {node.pk}`, "
        f"`verdi node graph generate --process-out --process-in {node.pk}`)",
        f"- target: `{summary['target']}` ({summary['unit'] or 'no unit'})"
        + (", models fitted on log10 of it" if study["target"].get("transform") == "log10" else ""),
        f"- evaluation: {summary['evaluation']}; the same split for every model",
    ]
    datasets = outputs.datasets if "datasets" in outputs else {}
    for role in ("train", "test", "candidates"):
        if role in datasets:
            ds = datasets[role]
            lines.append(f"- {role} dataset: {len(ds)} records, pk {ds.pk}, uuid `{ds.uuid}`")
    lines += ["", "## Metrics", "", "Best first. Each row is one model trained on one descriptor; the last column is the "
              "median of the training targets used as the prediction (the baseline).", "",
              metrics_table(summary, markdown=True), ""]
    for s in summary.get("skipped", []):
        lines.append(f"- not run: {s['model']} on {s['descriptor']} ({s['reason']})")
    if summary.get("skipped"):
        lines.append("")
    lines += ["## Parity plots", ""]
    training = outputs.training if "training" in outputs else {}
    node_rows = []
    for row in summary["rows"]:
        label = row["label"]
        if label not in training:
            continue
        out = training[label]
        if "parity_plot" in out:
            name = f"parity_{label}.png"
            (directory / name).write_bytes(out["parity_plot"].get_content(mode="rb"))
            lines += [f"### {row['model']} on {row['descriptor']}", "", f"![{label}]({name})", ""]
        for key in ("model", "metrics", "predictions", "parity_plot", "invariants", "features", "distances"):
            if key in out:
                n = out[key]
                node_rows.append(f"| {label} | {key} | {type(n).__name__} | {n.pk} | `{n.uuid}` |")
    lines += ["## Nodes", "", "| pair | role | type | pk | uuid |", "|---|---|---|---|---|", *node_rows, ""]
    if "screening" in outputs:
        sc = outputs.screening
        lines += ["## Screening", ""]
        if "selected_ids" in sc:
            preds = sc["predictions"]
            values = dict(zip(preds.get_array("ids").tolist(), preds.get_array("y_pred").tolist()))
            structures = {s.label: s for s in sc["structures"].values()} if "structures" in sc else {}
            handoff = sc["handoff"] if "handoff" in sc else {}
            by_label = {}
            for key, s in (sc["structures"].items() if "structures" in sc else []):
                by_label[s.label] = key
            lines += [f"Selected {len(sc['selected_ids'])} of {len(values)} candidates (predictions: pk {preds.pk}).", ""]
            lines += ["| candidate | predicted | StructureData pk | hand-off outputs |", "|---|---|---|---|"]
            for rid in sc["selected_ids"].get_list():
                key = by_label.get(rid)
                ho = handoff.get(key, {}) if key else {}
                ho_text = ", ".join(
                    f"{k} = {_fmt(v.value)}" if hasattr(v, "value") and not isinstance(v, orm.Dict) else f"{k} (pk {v.pk})"
                    for k, v in ho.items()
                ) or "-"
                s = structures.get(rid)
                lines.append(f"| {rid} | {_fmt(values.get(rid))} | {s.pk if s else '-'} | {ho_text} |")
            lines.append("")
    path = directory / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
