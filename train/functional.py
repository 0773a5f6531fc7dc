"""Compatible entry points: the autograd Functions users port from torchapprox, bitorch,
bitorch-engine and torchlogix, under the same names and call signatures.

Each is a thin ``torch.autograd.Function`` over the same registered steport ops the layers
use (no second implementation), so under ``torch.onnx.export(..., dynamo=True)`` the
Function's forward emits steport's custom-domain nodes; a ``symbolic`` staticmethod serves
the legacy TorchScript exporter. See docs/porting.md for the mapping and the choices made
where the original documentation leaves one open."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from typing import Any, Dict, Tuple, Union

import torch

from .ops.quant import pact, pact_grads
from .ste import GradFactor, conv2d_grads, linear_grads, sign, sign_ste_grad

__all__ = ["PactActFn", "GradFactor"]


class PactActFn(torch.autograd.Function):
    """bitorch.layers.pact.PactActFn: ``PactActFn.apply(input_tensor, alpha, bits)``.

    Forward: ``steport::pact`` (round half to even, docs/ops.md "Pact"); backward returns
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


# ---- torchapprox ------------------------------------------------------------------------
# Shared convention (docs/approx.md "The multiplier"): x holds activation codes 0..255 and w weight codes
# -128..127, as integer-valued float tensors (the quantization scales live outside these
# Functions, as in torchapprox); products come from LUT[x, uint8(w)]; no zero-point shift
# (codes are taken as they are, padding uses code 0). Outputs are float sums of products.

def _tracing() -> bool:
    return torch.compiler.is_exporting() or torch.compiler.is_compiling()


def _check_codes(t: torch.Tensor, lo: int, hi: int, what: str) -> None:
    if not t.is_floating_point() and t.dtype not in (torch.uint8, torch.int8, torch.int32,
                                                    torch.int64, torch.int16):
        raise TypeError(f"{what} must hold integer codes (float or int tensor), got {t.dtype}")
    if _tracing() or t.numel() == 0:
        return  # values are unknown while exporting; eager calls were checked
    tmin, tmax = t.min().item(), t.max().item()
    if tmin < lo or tmax > hi or (t.is_floating_point() and not bool((t == t.round()).all())):
        raise ValueError(f"{what} must hold integer codes in [{lo}, {hi}] (docs/approx.md: activation "
                         f"codes 0..255, weight codes -128..127), got values in [{tmin}, {tmax}]")


def _as_lut(lut) -> torch.Tensor:
    """LUT argument: int32 [256, 256] (or [65536]) tensor/array, or an object with .lut()."""
    from .ops.approx import check_lut

    if hasattr(lut, "lut") and callable(lut.lut):
        lut = lut.lut()
    if isinstance(lut, np.ndarray):
        lut = torch.from_numpy(np.ascontiguousarray(lut))
    if not isinstance(lut, torch.Tensor):
        raise TypeError(f"lut must be an int32 [256, 256] tensor or array, got {type(lut).__name__}")
    check_lut(lut)
    return lut


def _multiplier(model: str):
    from .multipliers import get_multiplier

    if not isinstance(model, str):
        raise TypeError(f"model must be a multiplier name such as 'truncated_t2', got {model!r}")
    return get_multiplier(model)


def _zero_point() -> torch.Tensor:
    return torch.zeros((), dtype=torch.uint8)


def _approx_linear(x: torch.Tensor, w: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    from .ops.approx import approx_matmul_integer

    a = x.round().to(torch.uint8) if x.is_floating_point() else x.to(torch.uint8)
    b = w.round().to(torch.int8).t() if w.is_floating_point() else w.to(torch.int8).t()
    return approx_matmul_integer(a, b, lut, _zero_point()).to(
        x.dtype if x.is_floating_point() else torch.float32)


def _linear_bwd_ste(grad: torch.Tensor, x: torch.Tensor, w: torch.Tensor):
    return linear_grads(grad, x.to(grad.dtype), w.to(grad.dtype))


class FastLinearOp(torch.autograd.Function):
    """torchapprox.operators.linear.FastLinearOp: ``FastLinearOp.apply(x, w, model)``.

    Linear layer over codes (x [..., K] activation codes, w [N, K] weight codes) whose
    forward uses the named multiplier's fast model: exact integer GEMMs on transformed
    operands when its table factors (truncated, DRUM, Kulkarni, exact, ...), else the LUT
    op. Backward: exact (STE) gradients of x @ w.T. ``model`` names a multiplier of
    ``steport.train.multipliers`` (e.g. "truncated_t2", "drum_k4"); the exported model carries
    its real LUT (``ai.steport.approx::ApproxMatMulInteger``)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, model: str) -> torch.Tensor:
        mult = _multiplier(model)
        _check_codes(x, 0, 255, "FastLinearOp x")
        _check_codes(w, -128, 127, "FastLinearOp w")
        if w.dim() != 2 or x.shape[-1] != w.shape[1]:
            raise ValueError(f"FastLinearOp: x [..., K] and w [N, K] needed, got {tuple(x.shape)} "
                             f"and {tuple(w.shape)}")
        ctx.save_for_backward(x, w)
        if not _tracing() and mult.terms() is not None:
            from .ops.approx import _wrap_i32

            y = mult.fast_matmul(x.round().to(torch.int64), w.round().to(torch.int64).t())
            return _wrap_i32(y).to(x.dtype if x.is_floating_point() else torch.float32)
        return _approx_linear(x, w, torch.from_numpy(np.array(mult.lut(), dtype=np.int32)))

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        gx, gw = _linear_bwd_ste(grad, x, w)
        return gx, gw, None


@dataclass
class Conv2dArgs:
    """torchapprox.operators.conv2d.Conv2dArgs: convolution parameters passed around."""

    in_channels: int
    out_channels: int
    kernel_size: Union[int, Tuple[int, int]]
    stride: Union[int, Tuple[int, int]] = 1
    padding: Union[int, Tuple[int, int]] = 0
    dilation: Union[int, Tuple[int, int]] = 1
    groups: int = 1

    def __post_init__(self):
        if self.groups < 1 or self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"Conv2dArgs: groups={self.groups} must divide in_channels="
                             f"{self.in_channels} and out_channels={self.out_channels}")
        for name in ("kernel_size", "stride", "dilation"):
            if min(_pair(getattr(self, name))) < 1:
                raise ValueError(f"Conv2dArgs: {name} must be >= 1, got {getattr(self, name)}")
        if min(_pair(self.padding)) < 0:
            raise ValueError(f"Conv2dArgs: padding must be >= 0, got {self.padding}")

    def backward_args(self) -> Dict[str, Any]:
        """What the conv gradient needs: keyword arguments of torch.nn.grad.conv2d_input /
        conv2d_weight (stride, padding, dilation, groups)."""
        return {"stride": _pair(self.stride), "padding": _pair(self.padding),
                "dilation": _pair(self.dilation), "groups": self.groups}

    @classmethod
    def from_kwargs(cls, x: torch.Tensor, w: torch.Tensor, kwargs: Dict[str, Any] | None) -> "Conv2dArgs":
        kwargs = dict(kwargs or {})
        unknown = set(kwargs) - {"stride", "padding", "dilation", "groups"}
        if unknown:
            raise ValueError(f"conv kwargs: unknown key(s) {sorted(unknown)}; allowed: stride, "
                             f"padding, dilation, groups")
        return cls(x.shape[1], w.shape[0], tuple(w.shape[2:]), **kwargs)


def _pair(v) -> Tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _conv_bwd_ste(grad: torch.Tensor, x: torch.Tensor, w: torch.Tensor, conf: Conv2dArgs):
    """torchapprox's shared STE conv gradient: the exact conv2d input and weight gradients
    for the given parameters. Returns (grad_x, grad_w)."""
    return conv2d_grads(grad, x.to(grad.dtype), w.to(grad.dtype), **conf.backward_args())


def _approx_conv(x, w, lut, conf: Conv2dArgs) -> torch.Tensor:
    from .ops.approx import approx_conv_integer

    if x.dim() != 4 or w.dim() != 4 or x.shape[1] != conf.in_channels \
            or w.shape[0] != conf.out_channels or w.shape[1] * conf.groups != conf.in_channels:
        raise ValueError(f"approximate conv: x {tuple(x.shape)} and w {tuple(w.shape)} do not fit "
                         f"{conf}")
    _check_codes(x, 0, 255, "conv x")
    _check_codes(w, -128, 127, "conv w")
    (ph, pw), st, dl = _pair(conf.padding), _pair(conf.stride), _pair(conf.dilation)
    a = x.round().to(torch.uint8) if x.is_floating_point() else x.to(torch.uint8)
    b = w.round().to(torch.int8) if w.is_floating_point() else w.to(torch.int8)
    y = approx_conv_integer(a, b, lut, _zero_point(), list(st), [ph, pw, ph, pw], list(dl),
                            conf.groups)
    return y.to(x.dtype if x.is_floating_point() else torch.float32)


class ApproxConv2dOp(torch.autograd.Function):
    """torchapprox ApproxConv2dOp: ``.apply(x, w, conv_args, out_dims, lut)``.

    im2col + approximate LUT GEMM conv forward (``steport::approx_conv_integer``: the C++
    kernel in ORT, the PyTorch reference in training), STE backward via ``_conv_bwd_ste``.
    ``out_dims`` is the expected (out_h, out_w), checked; ``lut`` int32 [256, 256]."""

    @staticmethod
    def forward(ctx, x, w, conv_args: Conv2dArgs, out_dims, lut):
        y = _approx_conv(x, w, _as_lut(lut), conv_args)
        if out_dims is not None and tuple(int(d) for d in out_dims) != tuple(y.shape[2:]):
            raise ValueError(f"ApproxConv2dOp: out_dims {tuple(out_dims)} but the convolution "
                             f"gives {tuple(y.shape[2:])}")
        ctx.save_for_backward(x, w)
        ctx.conf = conv_args
        return y

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        return (*_conv_bwd_ste(grad, x, w, ctx.conf), None, None, None)


class FastApproxConv2dOp(torch.autograd.Function):
    """torchapprox FastApproxConv2dOp: ``.apply(x, w, model, kwargs)``.

    Conv whose forward uses the named multiplier's fast model: exact float convolutions on
    transformed operands (sum_i conv(f_i[x], g_i[w])) when its table factors, else the LUT
    op; ``kwargs`` holds stride / padding / dilation / groups. STE backward."""

    @staticmethod
    def forward(ctx, x, w, model: str, kwargs):
        mult = _multiplier(model)
        conf = Conv2dArgs.from_kwargs(x, w, kwargs)
        ctx.save_for_backward(x, w)
        ctx.conf = conf
        terms = None if _tracing() else mult.terms()
        if terms is None:
            return _approx_conv(x, w, torch.from_numpy(np.array(mult.lut(), dtype=np.int32)), conf)
        _check_codes(x, 0, 255, "FastApproxConv2dOp x")
        _check_codes(w, -128, 127, "FastApproxConv2dOp w")
        xi, wi = x.round().to(torch.int64), w.round().to(torch.int64) & 255
        args = conf.backward_args()
        y = None
        for f, g in terms:  # float64 convs of integers are exact below 2^53
            fx = torch.as_tensor(f, dtype=torch.float64)[xi]
            gw = torch.as_tensor(g, dtype=torch.float64)[wi]
            t = torch.nn.functional.conv2d(fx, gw, **args)
            y = t if y is None else y + t
        return y.to(x.dtype if x.is_floating_point() else torch.float32)

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        return (*_conv_bwd_ste(grad, x, w, ctx.conf), None, None)


class ApproxDWConv2dOp(torch.autograd.Function):
    """torchapprox ApproxDWConv2dOp: ``.apply(x, w, lut, kwargs)``: depthwise conv
    (groups = channels, w [C, 1, kh, kw]) with the LUT forward on the dedicated depthwise
    kernel; ``kwargs`` holds stride / padding / dilation. STE backward."""

    @staticmethod
    def forward(ctx, x, w, lut, kwargs):
        kwargs = dict(kwargs or {})
        groups = kwargs.pop("groups", x.shape[1])
        if groups != x.shape[1] or w.shape[1] != 1:
            raise ValueError(f"ApproxDWConv2dOp is depthwise: groups must equal channels "
                             f"({x.shape[1]}) and w must be [C, 1, kh, kw], got groups={groups}, "
                             f"w {tuple(w.shape)}")
        conf = Conv2dArgs.from_kwargs(x, w, {**kwargs, "groups": x.shape[1]})
        ctx.save_for_backward(x, w)
        ctx.conf = conf
        return _approx_conv(x, w, _as_lut(lut), conf)

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        return (*_conv_bwd_ste(grad, x, w, ctx.conf), None, None)


# ---- bitorch-engine ---------------------------------------------------------------------

class BinaryLinearForward(torch.autograd.Function):
    """bitorch_engine BinaryLinearForward: ``.apply(input, weights, m, n, k)`` -> [m, n] =
    sign(input) @ sign(weights).T on the XNOR-popcount kernel.

    ``weights`` is either float/int [n, k] (signs taken, sign(0) = +1) or already bit-packed
    uint64 [n, ceil(k/64)] (``steport.train.ops.binary.pack_signs``). Packed weights run the
    deploy op ``steport::binary_gemm`` and export to ``ai.steport.binary::BinaryGemm`` with
    the packed initializer; float weights train. Extension: the original has no backward;
    this one returns the STE gradients (clipped identity 1[|.| <= 1]) for input and float
    weights."""

    @staticmethod
    def forward(ctx, input: torch.Tensor, weights: torch.Tensor, m: int, n: int, k: int):
        from .ops.binary import binary_gemm, pack_signs

        if input.dim() != 2 or tuple(input.shape) != (m, k):
            raise ValueError(f"BinaryLinearForward: input must be [m={m}, k={k}], got "
                             f"{tuple(input.shape)}")
        packed = weights.dtype == torch.uint64
        want = (n, (k + 63) // 64) if packed else (n, k)
        if tuple(weights.shape) != want:
            raise ValueError(f"BinaryLinearForward: weights must be {'uint64 ' if packed else ''}"
                             f"{list(want)}, got {weights.dtype} {tuple(weights.shape)}")
        if not packed and _tracing():
            raise ValueError("BinaryLinearForward: export needs bit-packed weights: pass "
                             "pack_signs(weights) (uint64) or use steport.train.BinaryLinear")
        ctx.save_for_backward(input, weights)
        ctx.packed = packed
        b = weights if packed else pack_signs(weights)
        x = input if input.is_floating_point() else input.to(torch.float32)
        ones = torch.ones(n, dtype=x.dtype, device=x.device)
        return binary_gemm(x, b, ones, torch.zeros_like(ones), k)

    @staticmethod
    def backward(ctx, grad):
        from .ops.binary import unpack_signs

        x, w = ctx.saved_tensors
        if ctx.packed:  # deploy weights: no latent float weights to train
            sw = unpack_signs(w, x.shape[1]).to(grad.dtype)
            return sign_ste_grad(grad @ sw, x), None, None, None, None
        gsx, gsw = linear_grads(grad, sign(x).to(grad.dtype), sign(w).to(grad.dtype))
        return sign_ste_grad(gsx, x), sign_ste_grad(gsw, w), None, None, None


__all__ += ["FastLinearOp", "Conv2dArgs", "_conv_bwd_ste", "ApproxConv2dOp",
            "FastApproxConv2dOp", "ApproxDWConv2dOp", "BinaryLinearForward"]
