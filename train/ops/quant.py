"""ai.steport.quant as torch custom ops: the op, its fake (shapes) and its STE autograd are
registered together (torch.library), and the exporter maps the op to the ONNX node."""
from __future__ import annotations

import torch

from steport.registry import get as _spec

PACT = _spec("quant", "Pact")
_BITS = PACT.attr("bits")


def _check_pact_args(x: torch.Tensor, alpha: torch.Tensor, bits: int) -> None:
    if not isinstance(bits, int) or not (_BITS.lo <= bits <= _BITS.hi):
        raise ValueError(f"PACT bits must be an int in [{_BITS.lo}, {_BITS.hi}], got {bits!r}")
    if alpha.dim() > 1 or alpha.numel() != 1:
        raise ValueError(f"PACT alpha must be a scalar (shape [] or [1]), got shape {tuple(alpha.shape)}")
    if not alpha.is_floating_point() or not x.is_floating_point():
        raise TypeError(f"PACT needs floating tensors, got x {x.dtype}, alpha {alpha.dtype}")


def pact_reference(x: torch.Tensor, alpha: torch.Tensor, bits: int) -> torch.Tensor:
    """The reference math, step by step in x's dtype (DESIGN.md PACT).

    The scale is a true division ``levels / alpha``; ``(2**b - 1) / alpha`` would be computed
    by torch as ``reciprocal(alpha) * levels`` and differ in the last bit from ONNX/C++."""
    a = alpha.reshape(()).to(x.dtype)
    s = a.new_tensor(float(2**bits - 1)) / a
    v = torch.minimum(torch.clamp(x, min=0.0), a)  # minimum propagates NaN
    return torch.round(v * s) / s


@torch.library.custom_op("steport::pact", mutates_args=())
def pact(x: torch.Tensor, alpha: torch.Tensor, bits: int) -> torch.Tensor:
    """PACT quantization: round(clamp(x, 0, alpha) * s) / s, s = (2^bits - 1) / alpha."""
    _check_pact_args(x, alpha, bits)
    if alpha.device.type == "cpu" and not bool(torch.isfinite(alpha).all() and (alpha > 0).all()):
        raise ValueError(f"PACT alpha must be positive and finite, got {alpha.reshape(()).item()}")
    return pact_reference(x, alpha, bits)


@pact.register_fake
def _pact_fake(x, alpha, bits):
    _check_pact_args(x, alpha, bits)
    return torch.empty_like(x)


def _pact_setup(ctx, inputs, output):
    x, alpha, _bits = inputs
    ctx.save_for_backward(x, alpha)


def pact_grads(x: torch.Tensor, alpha: torch.Tensor, g: torch.Tensor):
    """dx = g * 1[0 <= x <= alpha];  dalpha = sum(g * 1[x >= alpha])  (DESIGN.md PACT)."""
    a = alpha.reshape(()).to(x.dtype)
    dx = g * ((x >= 0) & (x <= a)).to(g.dtype)
    dalpha = (g * (x >= a).to(g.dtype)).sum().reshape(alpha.shape).to(alpha.dtype)
    return dx, dalpha


def _pact_backward(ctx, g):
    x, alpha = ctx.saved_tensors
    return (*pact_grads(x, alpha, g), None)  # no gradient for bits


pact.register_autograd(_pact_backward, setup_context=_pact_setup)
