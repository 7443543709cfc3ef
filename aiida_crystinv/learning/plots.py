"""Parity plots (predicted against true) as PNG, with matplotlib's Agg backend.

The one parity plot of the package: :func:`parity_png` (bytes, for the AiiDA
``parity_plot`` calcfunction) and :func:`parity_plot` (bytes, optionally also a file).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .metrics import regression_metrics

__all__ = ["parity_plot", "parity_png"]


def parity_plot(y_true, y_pred, path: str | Path | None = None, title: str = "", unit: str = "",
                dpi: int = 120, label: str = "") -> bytes:
    """Draw predicted against true values with the y = x line and MAE / median AE / R^2.

    Args:
        y_true, y_pred: (n,) finite values in the target's unit.
        path: also write the PNG there (optional).
        title: plot title; unit: axis and error unit label, e.g. ``'GPa'``.
        dpi: resolution of the PNG.
        label: text appended to the ``n = ...`` line of the legend (e.g. ``', 5-fold CV'``).

    Returns:
        The PNG file content (bytes). Uses an explicit Agg canvas: no global pyplot state,
        no display, no file unless ``path`` is given.

    Raises:
        ValueError: different lengths, no values, NaN or infinite values.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    m = regression_metrics(y_true, y_pred)
    a = np.asarray(y_true, float).ravel()
    b = np.asarray(y_pred, float).ravel()
    fig = Figure(figsize=(4.5, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    lo, hi = float(min(a.min(), b.min())), float(max(a.max(), b.max()))
    pad = 0.03 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="k", lw=0.8, zorder=1)
    ax.scatter(a, b, s=6, alpha=0.5, linewidths=0, zorder=2)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    u = f" ({unit})" if unit else ""
    ax.set_xlabel(f"true{u}")
    ax.set_ylabel(f"predicted{u}")
    if title:
        ax.set_title(title, fontsize=9)
    eu = f" {unit}" if unit else ""
    ax.text(0.03, 0.97, f"MAE {m['mae']:.4g}{eu}\nmedian AE {m['median_ae']:.4g}{eu}\n$R^2$ {m['r2']:.3f}\n"
            f"n = {m['n']}{label}", transform=ax.transAxes, va="top", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    data = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def parity_png(y_true, y_pred, title: str = "", unit: str = "", label: str = "") -> bytes:
    """A parity plot as PNG bytes (no file): :func:`parity_plot` with its defaults.

    Args:
        y_true, y_pred: (n,) finite values in the target's unit.
        title: plot title; unit: e.g. ``'eV/atom'``; label: appended to the ``n = ...`` line.
    """
    return parity_plot(y_true, y_pred, title=title, unit=unit, label=label)
