"""Error metrics over all 65536 operand pairs, as EvoApproxLib reports them.

EvoApproxLib normalizes MAE% and WCE% by the output range 2^(2n) = 65536 for 8x8
multipliers (e.g. mul8u_17R6: MAE 442 -> 0.67 %, WCE 1925 -> 2.94 %), and the relative
error of one pair by max(1, |exact|). We use the same 2^16 for the mixed uint8 x int8 table
(its 16-bit signed output range).
"""
from __future__ import annotations

import math

import numpy as np

OUTPUT_RANGE = 2 ** 16
COLUMNS = ["MAE%", "WCE%", "EP%", "MRED%", "WCRE%", "bias", "MAE", "WCE", "MSE"]


def error_metrics(approx, exact) -> dict:
    """Metrics of ``approx`` against ``exact`` (same shape; approx may be float for fitted
    models: then EP% counts pairs whose rounded value differs).

    MAE = mean|e|, WCE = max|e|, EP% = share of pairs with e != 0, MRED% = mean of
    |e| / max(1, |exact|), WCRE% = its max, bias = mean signed error (approx - exact),
    MSE = mean e^2, with e = approx - exact."""
    approx = np.asarray(approx)
    exact = np.asarray(exact, dtype=np.float64)
    if approx.shape != exact.shape:
        raise ValueError(f"shapes differ: {approx.shape} vs {exact.shape}")
    e = approx.astype(np.float64) - exact
    ae = np.abs(e)
    wrong = (np.round(approx) != exact) if approx.dtype.kind == "f" else (ae != 0)
    rel = ae / np.maximum(1.0, np.abs(exact))
    mae, wce = float(ae.mean()), float(ae.max())
    return {
        "MAE%": 100.0 * mae / OUTPUT_RANGE,
        "WCE%": 100.0 * wce / OUTPUT_RANGE,
        "EP%": 100.0 * float(wrong.mean()),
        "MRED%": 100.0 * float(rel.mean()),
        "WCRE%": 100.0 * float(rel.max()),
        "bias": float(e.mean()),
        "MAE": mae,
        "WCE": wce,
        "MSE": float((e * e).mean()),
    }


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000 or float(v).is_integer():
        return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"
    digits = max(0, 3 - int(math.floor(math.log10(abs(v)))) - 1)
    return f"{v:.{min(digits, 4)}f}"


def metrics_rows(mults, table: str | None = None) -> list[dict]:
    """One row per multiplier: {"name": ..., **metrics}."""
    return [{"name": m.name, **m.metrics(table)} for m in mults]


def format_table(rows: list[dict], columns=None, fmt: str = "md") -> str:
    """Markdown (``fmt="md"``) or aligned plain-text table of metric rows."""
    columns = list(columns or COLUMNS)
    head = ["name", *columns]
    body = [[str(r["name"]), *(_fmt(r[c]) for c in columns)] for r in rows]
    if fmt == "md":
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * len(columns)) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines)
    if fmt != "text":
        raise ValueError(f"fmt must be 'md' or 'text', got {fmt!r}")
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    out = [" ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(row, widths)))
           for row in [head, *body]]
    return "\n".join(out)
