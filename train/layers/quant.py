"""Quantizer layers."""
from __future__ import annotations

import torch
from torch import nn

from ..ops.quant import pact

__all__ = ["PACT"]


class PACT(nn.Module):
    """PACT activation quantizer (Choi et al., 2018): learned clipping level alpha, ``bits``
    unsigned levels. Forward/backward as DESIGN.md; exports to ``ai.steport.quant::Pact``."""

    def __init__(self, bits: int = 4, alpha_init: float = 6.0):
        super().__init__()
        if not isinstance(bits, int) or not 1 <= bits <= 16:
            raise ValueError(f"PACT bits must be an int in [1, 16], got {bits!r}")
        if not alpha_init > 0:
            raise ValueError(f"PACT alpha_init must be > 0, got {alpha_init}")
        self.bits = bits
        self.alpha = nn.Parameter(torch.tensor(float(alpha_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pact(x, self.alpha, self.bits)

    def check_exportable(self) -> None:
        # Training can drive alpha to <= 0 or NaN; the exported Pact node would then fail
        # only at run time, so refuse at export (export_model names the layer).
        from steport.export import ExportError

        a = float(self.alpha.detach().reshape(-1)[0])
        if not (a > 0 and a < float("inf")):
            raise ExportError(f"alpha must be positive and finite to export, got {a}")

    def extra_repr(self) -> str:
        return f"bits={self.bits}"
