"""Quantizer layers."""
from __future__ import annotations

import torch
from torch import nn

from ..ops.quant import (WEIGHT_CODES, check_weight_bits, pact, quantize_weight,
                         signed_quant)

__all__ = ["PACT", "SignedActQuant", "QConv2d", "QLinear", "ACT_BITS"]

# Activation bit widths the quantized layers accept: the integer export carries codes in
# uint8 / int8 (docs/ops.md "Integer models").
ACT_BITS = (2, 8)


class PACT(nn.Module):
    """PACT activation quantizer (Choi et al., 2018): learned clipping level alpha, ``bits``
    unsigned levels. Forward/backward as docs/ops.md "Pact"; exports to ``ai.steport.quant::Pact``."""

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
        from steport.errors import ExportError

        a = float(self.alpha.detach().reshape(-1)[0])
        if not (a > 0 and a < float("inf")):
            raise ExportError(f"alpha must be positive and finite to export, got {a}")

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


class SignedActQuant(nn.Module):
    """Signed symmetric activation quantizer with a learned clipping level alpha (PACT
    mirrored to [-alpha, alpha]; ``2^(b-1) - 1`` levels each side): for inputs that are not
    non-negative, e.g. normalized images feeding the first layer."""

    def __init__(self, bits: int = 8, alpha_init: float = 3.0):
        super().__init__()
        if not isinstance(bits, int) or not 2 <= bits <= 16:
            raise ValueError(f"SignedActQuant bits must be an int in [2, 16], got {bits!r}")
        if not alpha_init > 0:
            raise ValueError(f"SignedActQuant alpha_init must be > 0, got {alpha_init}")
        self.bits = bits
        self.alpha = nn.Parameter(torch.tensor(float(alpha_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return signed_quant(x, self.alpha, self.bits)

    check_exportable = PACT.check_exportable

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


def _act_quantizer(bits: int | None, signed: bool, alpha_init: float) -> nn.Module | None:
    if bits is None:
        return None
    lo, hi = ACT_BITS
    if not isinstance(bits, int) or isinstance(bits, bool) or not lo <= bits <= hi:
        raise ValueError(f"activation bits must be an int in [{lo}, {hi}] or None, got {bits!r}")
    return SignedActQuant(bits, alpha_init) if signed else PACT(bits, alpha_init)


class _QuantizedLayer:
    """Shared by QConv2d and QLinear (bitorch's QConv2d/QLinear, Brevitas' QuantConv2d): an
    input quantizer (PACT, or SignedActQuant with ``act_signed``; None keeps float input) and
    a weight quantizer (``"symmetric"`` per-output-channel int-b, ``"dorefa"`` as bitorch's
    WeightDoReFa, or None for float weights). Forward: the float op on the quantized input
    and the fake-quantized weight; the bias stays float."""

    def _init_quant(self, act_bits, act_signed, alpha_init, weight_quant, weight_bits):
        if weight_quant is not None:
            check_weight_bits(weight_quant, weight_bits)
        self.input_quantizer = _act_quantizer(act_bits, act_signed, alpha_init)
        self.weight_quant = weight_quant
        self.weight_bits = weight_bits

    _frozen_weight: torch.Tensor | None = None

    def quantized_weight(self) -> torch.Tensor:
        if self._frozen_weight is not None:
            return self._frozen_weight
        if self.weight_quant is None:
            return self.weight
        return quantize_weight(self.weight, self.weight_quant, self.weight_bits)

    def prepare_export(self) -> None:
        # The float export stores the fake-quantized weight as one constant instead of
        # tracing the quantizer's arithmetic into the graph.
        self._frozen_weight = self.quantized_weight().detach().clone()

    def finish_export(self) -> None:
        self._frozen_weight = None

    def weight_codes(self):
        """(integer-valued codes shaped like weight, per-output-channel scale): the weight the
        integer export stores; ``codes · scale`` is the trained fake-quantized weight."""
        if self.weight_quant is None:
            raise ValueError("layer has float weights (weight_quant=None): no integer codes")
        with torch.no_grad():
            return WEIGHT_CODES[self.weight_quant](self.weight, self.weight_bits)

    def _quant_repr(self) -> str:
        act = "float" if self.input_quantizer is None else (
            f"{type(self.input_quantizer).__name__}({self.input_quantizer.bits})")
        w = "float" if self.weight_quant is None else f"{self.weight_quant}({self.weight_bits})"
        return f"input={act}, weight={w}"


class QConv2d(_QuantizedLayer, nn.Conv2d):
    """Conv2d with quantized input and weights (see _QuantizedLayer). Exports as float Conv
    with Pact nodes (``export_model``) or as an integer QLinearConv network
    (``steport.export.integer``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros", *,
                 act_bits: int | None = 4, act_signed: bool = False, alpha_init: float = 6.0,
                 weight_quant: str | None = "symmetric", weight_bits: int = 8):
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, stride=stride,
                           padding=padding, dilation=dilation, groups=groups, bias=bias,
                           padding_mode=padding_mode)
        self._init_quant(act_bits, act_signed, alpha_init, weight_quant, weight_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        return self._conv_forward(x, self.quantized_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{nn.Conv2d.extra_repr(self)}, {self._quant_repr()}"


class QLinear(_QuantizedLayer, nn.Linear):
    """Linear with quantized input and weights (see _QuantizedLayer)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 act_bits: int | None = 4, act_signed: bool = False, alpha_init: float = 6.0,
                 weight_quant: str | None = "symmetric", weight_bits: int = 8):
        nn.Linear.__init__(self, in_features, out_features, bias=bias)
        self._init_quant(act_bits, act_signed, alpha_init, weight_quant, weight_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        return torch.nn.functional.linear(x, self.quantized_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{nn.Linear.extra_repr(self)}, {self._quant_repr()}"
