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
    """The reference math, step by step in x's dtype (docs/ops.md "Pact").

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
    """dx = g * 1[0 <= x <= alpha];  dalpha = sum(g * 1[x >= alpha])  (docs/ops.md "Pact")."""
    a = alpha.reshape(()).to(x.dtype)
    dx = g * ((x >= 0) & (x <= a)).to(g.dtype)
    dalpha = (g * (x >= a).to(g.dtype)).sum().reshape(alpha.shape).to(alpha.dtype)
    return dx, dalpha


def _pact_backward(ctx, g):
    x, alpha = ctx.saved_tensors
    return (*pact_grads(x, alpha, g), None)  # no gradient for bits


pact.register_autograd(_pact_backward, setup_context=_pact_setup)


# ---- weight quantizers and the signed activation quantizer (QConv2d / QLinear) -----------
# Plain autograd functions (no custom ONNX node): a quantized layer deploys either as float
# Conv/Gemm on the fake-quantized weights (the float export) or as integer codes in the
# integer export (steport.export.integer, docs/ops.md "Integer models"). Both read the codes
# and scales from the *_codes helpers below, so training and deployment cannot disagree.

from ..ste import round_ste  # noqa: E402

WEIGHT_BITS = {"symmetric": (2, 8), "dorefa": (1, 8)}
# Smallest per-channel range: an all-zero weight channel keeps a finite scale.
_MIN_RANGE = 1e-8


def check_weight_bits(kind: str, bits: int) -> None:
    if kind not in WEIGHT_BITS:
        raise ValueError(f"weight quantizer must be one of {sorted(WEIGHT_BITS)}, got {kind!r}")
    lo, hi = WEIGHT_BITS[kind]
    if not isinstance(bits, int) or isinstance(bits, bool) or not lo <= bits <= hi:
        raise ValueError(f"{kind} weight bits must be an int in [{lo}, {hi}], got {bits!r}")


def symmetric_weight_codes(w: torch.Tensor, bits: int, ste: bool = False):
    """Per-output-channel symmetric int-b: ``scale_c = max|W_c| / (2^(b-1) - 1)`` (fp32
    division, not differentiated), ``code = clamp(round(W / scale_c), -(2^(b-1)-1), 2^(b-1)-1)``
    (round half to even; narrow range, so -code is a code too). Returns (codes, scale[C_out]),
    codes integer-valued in w's dtype. With ``ste`` the rounding passes gradients through."""
    qmax = float(2 ** (bits - 1) - 1)
    rng = w.detach().reshape(w.shape[0], -1).abs().amax(dim=1).clamp_min(_MIN_RANGE)
    scale = rng / qmax
    shape = (-1,) + (1,) * (w.dim() - 1)
    r = round_ste(w / scale.reshape(shape)) if ste else torch.round(w / scale.reshape(shape))
    return torch.clamp(r, -qmax, qmax), scale


def dorefa_weight_codes(w: torch.Tensor, bits: int, ste: bool = False):
    """bitorch ``WeightDoReFa``: ``t = tanh(W)``, ``u = t / (2 max|t|) + 0.5`` (max over the
    whole tensor, not differentiated), ``k = round(u · (2^b - 1))``; the weight is
    ``2k/(2^b-1) - 1``, i.e. the odd code ``2k - (2^b - 1)`` times ``1/(2^b - 1)`` (one scale
    for the tensor, returned per output channel)."""
    levels = float(2 ** bits - 1)
    t = torch.tanh(w)
    u = t / (2.0 * t.detach().abs().amax().clamp_min(_MIN_RANGE)) + 0.5
    k = round_ste(u * levels) if ste else torch.round(u * levels)
    scale = w.new_full((w.shape[0],), 1.0 / levels)
    return 2.0 * k - levels, scale


WEIGHT_CODES = {"symmetric": symmetric_weight_codes, "dorefa": dorefa_weight_codes}


def quantize_weight(w: torch.Tensor, kind: str, bits: int) -> torch.Tensor:
    """Fake-quantized weight for training (STE: the gradient passes the rounding unchanged,
    as bitorch's WeightDoReFa and the usual symmetric STE)."""
    if kind == "dorefa":  # bitorch's exact float expression 2·(k/L) − 1
        levels = float(2 ** bits - 1)
        t = torch.tanh(w)
        u = t / (2.0 * t.detach().abs().amax().clamp_min(_MIN_RANGE)) + 0.5
        return 2.0 * (round_ste(u * levels) / levels) - 1.0
    codes, scale = symmetric_weight_codes(w, bits, ste=True)
    return codes * scale.reshape((-1,) + (1,) * (w.dim() - 1))


class _SignedQuantFn(torch.autograd.Function):
    """Signed symmetric activation quantizer with learned clipping level alpha:
    ``y = round(clamp(x, -alpha, alpha) · s) / s``, ``s = (2^(b-1) - 1) / alpha``.
    Backward as PACT, mirrored: dx = g·1[|x| <= alpha]; dalpha = Σ g·sign(x)·1[|x| >= alpha]."""

    @staticmethod
    def forward(ctx, x, alpha, bits):
        ctx.save_for_backward(x, alpha)
        return signed_quant_reference(x, alpha, bits)

    @staticmethod
    def backward(ctx, g):
        x, alpha = ctx.saved_tensors
        a = alpha.reshape(()).to(x.dtype)
        dx = g * (x.abs() <= a).to(g.dtype)
        outside = (x.abs() >= a).to(g.dtype) * torch.where(x >= 0, 1.0, -1.0).to(g.dtype)
        dalpha = (g * outside).sum().reshape(alpha.shape).to(alpha.dtype)
        return dx, dalpha, None


def signed_quant_reference(x: torch.Tensor, alpha: torch.Tensor, bits: int) -> torch.Tensor:
    a = alpha.reshape(()).to(x.dtype)
    s = a.new_tensor(float(2 ** (bits - 1) - 1)) / a
    v = torch.maximum(torch.minimum(x, a), -a)
    return torch.round(v * s) / s


def signed_quant(x: torch.Tensor, alpha: torch.Tensor, bits: int) -> torch.Tensor:
    return _SignedQuantFn.apply(x, alpha, bits)
