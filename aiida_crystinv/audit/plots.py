"""PNG plots of audit results (matplotlib, Agg backend; each function returns PNG bytes)."""

from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np

__all__ = ["continuity_plot", "target_continuity_plot", "model_continuity_plot"]


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _figure(**kw):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(**kw)


def continuity_plot(rows: Sequence[dict[str, Any]], title: str = "") -> bytes:
    """Ratio (descriptor change / eps) against eps, one line per :func:`~aiida_crystinv.audit.audit` row.

    A Lipschitz descriptor gives a flat or falling line; a jump gives a line rising as
    1 / eps below the eps of the jump."""
    fig, ax = _figure(figsize=(6.4, 4.2))
    for r in rows:
        eps = np.asarray(r["eps"], float)
        ratio = np.asarray(r["change"], float) / eps
        if np.all(ratio == 0):
            continue  # a constant descriptor has no line on a log scale
        ax.loglog(eps, np.where(ratio > 0, ratio, np.nan), marker="o", ms=3,
                  ls="--" if r["continuity"] == "jumps" else "-", label=f"{r['descriptor']} ({r['continuity']})")
    ax.set_xlabel("largest displacement eps (Angstrom)")
    ax.set_ylabel("descriptor change / eps (descriptor unit / Angstrom)")
    ax.set_title(title or "continuity under perturbation")
    ax.legend(fontsize=7, loc="best")
    return _png(fig)


def target_continuity_plot(results: Sequence[dict[str, Any]], target: str = "target", title: str = "") -> bytes:
    """|target difference| against distance / d over the closest pairs, one panel per
    descriptor (:func:`~aiida_crystinv.audit.target_continuity` results), with the bound c d."""
    n = len(results)
    fig, axes = _figure(nrows=1, ncols=max(n, 1), figsize=(3.0 * max(n, 1), 3.0), squeeze=False)
    for ax, r in zip(axes[0], results):
        x = np.asarray(r["pair_distance"], float) / (r["d"] if r["d"] > 0 else 1.0)
        ax.scatter(x, r["pair_dy"], s=3, alpha=0.4)
        ax.axvline(1.0, color="grey", lw=0.8)
        ax.axhline(r["c"] * r["d"], color="red", lw=0.8)
        ax.set_title(f"{r['descriptor']}\nratio {r['ratio']:.2f}", fontsize=8)
        ax.set_xlabel("distance / d", fontsize=8)
    axes[0][0].set_ylabel(f"|d {target}|", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9, y=1.08)
    return _png(fig)


def model_continuity_plot(result: dict[str, np.ndarray], title: str = "", unit: str = "") -> bytes:
    """Change of the prediction (and of the truth, when given) against the displacement of
    one atom (:func:`~aiida_crystinv.audit.model_continuity` result)."""
    fig, ax = _figure(figsize=(5.0, 3.6))
    ax.scatter(result["displacement"], result["delta_predicted"], s=8, label="model")
    if "delta_truth" in result:
        ax.scatter(result["displacement"], result["delta_truth"], s=8, marker="x", label="truth")
    ax.set_xlabel("displacement of one atom (Angstrom)")
    ax.set_ylabel(f"change of the value {unit}".strip())
    ax.set_title(title or "model continuity")
    ax.legend(fontsize=8)
    return _png(fig)
