"""Error-surface heat maps (matplotlib, Agg backend, no display needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import tables


def error_surface(m, table: str = "signed") -> tuple[np.ndarray, np.ndarray]:
    """(error[a, j], b values of the columns): approx - exact, columns sorted by b value
    (-128..127 for the mixed table, 0..255 unsigned)."""
    if table == "signed":
        order = np.argsort(tables.B_VALUES[0], kind="stable")
        err = np.asarray(m.lut(), np.int64) - tables.EXACT_SIGNED
        return err[:, order], tables.B_VALUES[0][order]
    if table == "unsigned":
        return np.asarray(m.lut_unsigned(), np.int64) - tables.EXACT_UNSIGNED, np.arange(256)
    raise ValueError(f"table must be 'signed' or 'unsigned', got {table!r}")


def plot_error_surface(m, path, table: str = "signed") -> Path:
    """Write a PNG heat map of error(a, b) = approx - exact for multiplier ``m``."""
    # A bare Figure on the Agg canvas: no pyplot, no global backend state touched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    err, bvals = error_surface(m, table)
    lim = max(1, int(np.abs(err).max()))
    fig = Figure(figsize=(6.4, 5.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    im = ax.imshow(err, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto",
                   extent=(bvals[0] - 0.5, bvals[-1] + 0.5, -0.5, 255.5), interpolation="nearest")
    fig.colorbar(im, ax=ax, label="approx - exact")
    met = m.metrics(table)
    ax.set_title(f"{m.name} ({table}): MAE {met['MAE%']:.3g}%, WCE {met['WCE%']:.3g}%, "
                 f"EP {met['EP%']:.3g}%", fontsize=9)
    ax.set_xlabel("weight b" + (" (int8 value)" if table == "signed" else ""))
    ax.set_ylabel("activation a")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
