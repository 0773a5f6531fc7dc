"""Compatible entry points: the autograd Functions users port from torchapprox, bitorch,
bitorch-engine and torchlogix, under the same names and call signatures.

Each is a thin ``torch.autograd.Function`` over the same registered steport ops the layers
use (no second implementation), so under ``torch.onnx.export(..., dynamo=True)`` the
Function's forward emits steport's custom-domain nodes; a ``symbolic`` staticmethod serves
the legacy TorchScript exporter. See docs/porting.md for the mapping and the choices made
where the original documentation leaves one open."""
from __future__ import annotations

import torch

from .ops.quant import pact, pact_grads
from .ste import GradFactor

__all__ = ["PactActFn", "GradFactor"]


class PactActFn(torch.autograd.Function):
    """bitorch.layers.pact.PactActFn: ``PactActFn.apply(input_tensor, alpha, bits)``.

    Forward: ``steport::pact`` (round half to even, DESIGN.md); backward returns
    ``(dx, dalpha, None)`` with dx = g * 1[0 <= x <= alpha], dalpha = sum(g * 1[x >= alpha])."""

    @staticmethod
    def forward(ctx, input_tensor: torch.Tensor, alpha: torch.Tensor, bits: int) -> torch.Tensor:
        ctx.save_for_backward(input_tensor, alpha)
        return pact(input_tensor, alpha, int(bits))

    @staticmethod
    def backward(ctx, output_gradient: torch.Tensor):
        x, alpha = ctx.saved_tensors
        return (*pact_grads(x, alpha, output_gradient), None)

    @staticmethod
    def symbolic(g, input_tensor, alpha, bits):  # legacy TorchScript exporter
        return g.op("ai.steport.quant::Pact", input_tensor, alpha, bits_i=int(bits))
