"""The Markdown report of a finished study: ``report.md``, parity plots, node tables, the
audit of the descriptors (when the study asked for one) and, unless asked not to, the pictures of the training set (:mod:`aiida_crystinv.learning.maps`):
the target against density, and for each pairwise distance matrix a kNN model used, a
heatmap with its dendrogram and a 2-D map coloured by the target (at most
:data:`REPORT_MAX_POINTS` records each, sampled with a fixed seed above that)."""

from __future__ import annotations

import pathlib
from typing import Any, Mapping

from aiida import orm

__all__ = ["write_report", "metrics_table", "REPORT_MAX_POINTS"]

#: Most records in a heatmap or map of the report (a seeded sample above it keeps the
#: report cheap: a few seconds per picture).
REPORT_MAX_POINTS = 500
#: Largest distance matrix (condensed entries) the report reads for its pictures.
_REPORT_MAX_ENTRIES = 25_000_000


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


def write_report(node: orm.WorkflowNode, directory: str | pathlib.Path | None = None, plots: bool = True) -> pathlib.Path:
    """Write ``report.md``, the parity plots (``parity_<pair>.png``) and the node table of
    a finished StudyWorkChain into ``directory`` (default ``./crystinv-study-<pk>``), with
    the audit of the descriptors (``audit_continuity.png``, ``target_continuity.png``) when
    the study had an ``audit:`` section; with
    ``plots``, also ``landscape.png`` (target against density of the training set) and,
    per pairwise distance matrix of a kNN pair, ``heatmap_<metric>.png`` and
    ``map_<metric>.png`` (see :func:`_pictures_section`).

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
    for role in ("train", "test", "candidates", "pool"):
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
    if "audit" in outputs and "table" in outputs.audit:
        lines += _audit_section(outputs.audit, directory)
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
    if plots:
        lines += _pictures_section(summary, datasets, training, directory)
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
            for skey, s in (sc["structures"].items() if "structures" in sc else []):
                by_label[s.label] = skey
            lines += [f"Selected {len(sc['selected_ids'])} of {len(values)} candidates (predictions: pk {preds.pk}).", ""]
            lines += ["| candidate | predicted | DFT energy (eV/atom) | StructureData pk | hand-off outputs |",
                      "|---|---|---|---|---|"]
            pairs = []
            for rid in sc["selected_ids"].get_list():
                hkey = by_label.get(rid)
                ho = handoff.get(hkey, {}) if hkey else {}
                ho_text = ", ".join(
                    f"{k} = {_fmt(v.value)}" if hasattr(v, "value") and not isinstance(v, orm.Dict) else f"{k} (pk {v.pk})"
                    for k, v in ho.items()
                ) or "-"
                s = structures.get(rid)
                dft = _handoff_energy(ho, s)
                if dft is not None and values.get(rid) is not None:
                    pairs.append((values[rid], dft))
                lines.append(f"| {rid} | {_fmt(values.get(rid))} | {_fmt(dft)} | {s.pk if s else '-'} | {ho_text} |")
            lines.append("")
            lines.append(_rank_line(pairs))
            lines.append("")
        screening_node = next((c for c in node.called if c.process_label == "ScreeningWorkChain"), None)
        if screening_node is not None and not screening_node.is_finished_ok:
            lines += [f"Hand-off failures: [{screening_node.exit_status}] {screening_node.exit_message}", ""]
    if "loop" in outputs:
        lines += _loop_section(outputs.loop, directory)
    path = directory / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _pictures_section(summary: Mapping[str, Any], datasets: Any, training: Any, directory: pathlib.Path) -> list[str]:
    """The pictures of the training set: target against density, and a heatmap and a 2-D
    map of each distinct pairwise distance matrix the kNN pairs used."""
    import numpy as np

    from ..learning import maps

    train = datasets["train"] if "train" in datasets else None
    if train is None:
        return []
    target, unit = summary["target"], summary.get("unit") or ""
    lines = ["## Pictures of the training set", ""]
    values = train.get_target(target) if target in train.target_names else None
    if values is not None:
        density = np.array([maps.mass_density(c) for c in train.get_crystals()])
        maps.landscape_png(density, values, target=target, unit=unit, labels=train.ids, n_lowest=5,
                           title=f"{target} against density ({len(train)} structures)", path=directory / "landscape.png")
        lines += [f"{target} against mass density (g/cm$^3$, from each cell and its atoms); the five lowest are "
                  "starred and named.", "", f"![{target} against density](landscape.png)", ""]
    position = {r: x for x, r in enumerate(train.ids)}
    seen: set[int] = set()
    for row in summary["rows"]:
        out = training[row["label"]] if row["label"] in training else {}
        distances = out["distances"] if "distances" in out else None
        if distances is None or distances.pk in seen or distances.layout != "condensed":
            continue
        seen.add(distances.pk)
        n = distances.shape[0]
        metric = distances.metric
        if n * (n - 1) // 2 > _REPORT_MAX_ENTRIES:
            lines += [f"The {metric} matrix <{distances.pk}> ({n} records) is too large to read for a picture here: "
                      f"`crystinv plot heatmap {distances.pk} --sample 500 -o heatmap.png` draws a sample.", ""]
            continue
        rows = maps.sample_indices(n, REPORT_MAX_POINTS, seed=0)
        from scipy.spatial.distance import squareform

        D = squareform(distances.get_condensed(), checks=False)[np.ix_(rows, rows)]
        ids = [distances.row_ids[int(i)] for i in rows]
        of = f"a seeded sample of {len(rows)} of the {n}" if len(rows) < n else f"the {n}"
        dunit = "" if metric.startswith("composition") else "Angstrom"
        heatmap, picture = f"heatmap_{metric}.png", f"map_{metric}.png"
        maps.heatmap_png(D, ids, title=f"{metric} distances <{distances.pk}>", unit=dunit, path=directory / heatmap)
        lines += [f"### {metric} distances <{distances.pk}>", "",
                  f"Heatmap of {of} training records, ordered by average-linkage clustering (dendrogram above):", "",
                  f"![{metric} heatmap]({heatmap})", ""]
        if values is not None and all(r in position for r in ids):
            y = values[np.array([position[r] for r in ids], dtype=np.int64)]
            maps.map_png(D, y, target=target, unit=unit, distance_unit=dunit, labels=ids,
                         title=f"{metric} map coloured by {target}", path=directory / picture)
            lines += [f"2-D map of the same records (metric MDS of the {metric} distances, seed 0; the stress-1 in the "
                      f"corner says how faithful it is), coloured by {target}:", "", f"![{metric} map]({picture})", ""]
    return lines if len(lines) > 2 else []


def _audit_section(audit: Any, directory: pathlib.Path) -> list[str]:
    """The audit of the descriptors (outputs ``audit.*`` of the study): the table of the
    largest change under each cell change ("not comparable" when the output's shape
    changed), the verdicts, and the continuity plots written next to report.md."""
    from ..audit import JUMP_FACTOR, TRANSFORMS, format_table

    table = audit["table"].get_dict()
    rows = table["rows"]
    node = audit["table"]
    eps = ", ".join(f"{e:g}" for e in table.get("eps", []))
    lines = ["## Audit of the descriptors", "",
             f"On the first {table.get('n_structures', len(table.get('ids', [])))} training records "
             f"({', '.join(map(str, table.get('ids', [])))}; table: pk {node.pk}, uuid `{node.uuid}`). Each transform "
             f"column is the largest change of the descriptor (its own distance and unit) when the same crystal is "
             f"described differently ({', '.join(TRANSFORMS)}); \"not comparable\" means the output changed shape. "
             f"Continuity: the largest change when every atom moves by at most eps (eps = {eps} Angstrom, "
             f"{table.get('n_trials', '?')} trials); lipschitz is the largest change / eps for eps >= 0.01 Angstrom, "
             "jump_factor the largest change / eps over that at the largest eps, and the verdict is \"jumps\" when "
             f"jump_factor exceeds {JUMP_FACTOR:g}.", "",
             format_table(rows), ""]
    units = ", ".join(f"{r['descriptor']}: {r.get('unit') or 'no unit'}" for r in rows)
    lines += [f"Units of the changes: {units}.", ""]
    if "continuity_plot" in audit:
        name = "audit_continuity.png"
        (directory / name).write_bytes(audit["continuity_plot"].get_content(mode="rb"))
        lines += [f"![change / eps against eps]({name})", ""]
    if "target_table" in audit:
        target = audit["target_table"].get_dict()
        lines += [f"### Continuity of {target['target']}", "",
                  "Over the closest pairs of the records (distance <= d, the close-fraction quantile of all pairwise "
                  "distances): c is the smallest constant with |dy| <= c d for the stated fraction of them; ratio is "
                  "the median |dy| of the close pairs over that of all pairs (smaller: closeness in the descriptor "
                  "means closeness in the target).", "",
                  "| descriptor | records | close pairs | d | c | ratio |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['descriptor']} | {r['n']} | {r['n_close']} | {_fmt(r['d'])} | {_fmt(r['c'])} | {_fmt(r['ratio'], 3)} |"
                  for r in target["rows"]]
        lines.append("")
        if "target_plot" in audit:
            name = "target_continuity.png"
            (directory / name).write_bytes(audit["target_plot"].get_content(mode="rb"))
            lines += [f"![target continuity]({name})", ""]
    return lines


def _handoff_energy(outputs: Mapping[str, Any], structure: Any) -> float | None:
    """The energy per atom (eV/atom) in a hand-off's outputs, or None."""
    from ..calculations.dft import energy_per_atom

    node = outputs.get("output_parameters", outputs.get("energy"))
    if node is None or structure is None:
        return None
    try:
        return energy_per_atom(node, len(structure.sites))[0]
    except ValueError:
        return None


def _rank_line(pairs: list[tuple[float, float]]) -> str:
    if len(pairs) < 3:
        return f"Rank correlation of predicted vs DFT: needs 3 or more computed structures ({len(pairs)} here)."
    from scipy.stats import spearmanr

    rho = float(spearmanr([p for p, _ in pairs], [d for _, d in pairs]).statistic)
    return f"Spearman rank correlation of predicted vs DFT energy over {len(pairs)} structures: {rho:.2f}."


def _loop_section(loop: Any, directory: pathlib.Path) -> list[str]:
    """The DFT loop: a table per round and the parity plot of predicted vs DFT values."""
    summary = loop["summary"].get_dict()
    unit = summary.get("unit") or ""
    lines = ["## DFT loop", "",
             f"Uncertainty for the 'uncertain' picks: {summary.get('uncertainty')}. Stopped: {summary.get('stopped')}.", ""]
    if "calibration" in loop:
        cal = loop["calibration"].get_dict()
        shifts = ", ".join(f"{k} {v:+.4f}" for k, v in cal["shifts"].items())
        lines += [f"DFT energies are put on the target's scale with per-element shifts from {', '.join(cal['references'])} "
                  f"(computed by both): {shifts} eV/atom.", ""]
    lines += [f"| round | trained on | DFT structures | MAE ({unit}) | Spearman | best this round ({unit}) | best so far |",
              "|---|---|---|---|---|---|---|"]
    points = []
    for row in summary["rounds"]:
        lines.append(f"| {row['round']} | {row['n_train']} | {row['n_dft']} | {row['mae']:.4f} | {_fmt(row['spearman'], 2)} | "
                     f"{row['best_this_round']:.4f} | {row['best_so_far']:.4f} ({row['best_id']}) |")
        points += [(row["round"], r, p, d) for r, p, d in row["pairs"]]
    pooled = summary.get("all_rounds") or {}
    if pooled.get("n"):
        lines += ["", f"All rounds together ({pooled['n']} DFT structures, each predicted by the model of its round): "
                  f"MAE {pooled['mae']:.4f} {unit}, Spearman {_fmt(pooled.get('spearman'), 2)}."]
    lines += ["", "| round | structure | predicted | DFT (on the target's scale) |", "|---|---|---|---|"]
    lines += [f"| {k} | {r} | {p:.4f} | {d:.4f} |" for k, r, p, d in points]
    if summary.get("failed_handoffs"):
        lines += ["", f"{summary['failed_handoffs']} DFT hand-off(s) failed; the report of the loop names them."]
    if points:
        name = "loop_parity.png"
        _loop_parity(points, unit, directory / name)
        lines += ["", f"![predicted vs DFT]({name})", ""]
    return lines


def _loop_parity(points: list[tuple[int, str, float, float]], unit: str, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    for k in sorted({p[0] for p in points}):
        xs = [p[3] for p in points if p[0] == k]
        ys = [p[2] for p in points if p[0] == k]
        ax.scatter(xs, ys, label=f"round {k}", s=30)
    values = [p[2] for p in points] + [p[3] for p in points]
    lo, hi = min(values), max(values)
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="grey", lw=1)
    ax.set_xlabel(f"DFT ({unit})")
    ax.set_ylabel(f"predicted before DFT ({unit})")
    ax.set_title("DFT loop: predicted vs DFT")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
