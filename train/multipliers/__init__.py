"""Approximate 8-bit multiplier library (torchapprox family).

A multiplier is a 256x256 int32 table LUT[a][b] over the activation code a (uint8) and the
weight code b (uint8 view of an int8 weight), built by sign magnitude from an unsigned
design M: LUT[a][b] = sign(b) * M(a, |b|). See docs/multipliers.md.

    m = get_multiplier("truncated", t=2)      # or "truncated_t2"
    m.lut(), m.lut_unsigned(), m.metrics(), m.separable, m.model(a, b), m.fast_matmul(A, B)
"""
from .core import Multiplier, from_lut
from .factorize import check_terms, factorize_lut
from .io import load_lut, save_lut
from .metrics import error_metrics, format_table, metrics_rows
from .plot import plot_error_surface
from .registry import get_multiplier, list_designs, list_multipliers

__all__ = [
    "Multiplier", "from_lut", "get_multiplier", "list_multipliers", "list_designs",
    "load_lut", "save_lut", "factorize_lut", "check_terms", "error_metrics", "metrics_rows",
    "format_table", "plot_error_surface", "metrics_table",
]


def metrics_table(names=None, table: str = "unsigned", fmt: str = "md") -> str:
    """The metrics table of ``names`` (default: every preset), markdown or plain text."""
    mults = [get_multiplier(n) for n in (names or list_multipliers())]
    return format_table(metrics_rows(mults, table), fmt=fmt)
