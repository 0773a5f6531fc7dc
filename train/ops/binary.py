"""ai.steport.binary as torch custom ops (docs/binary.md "Conventions").

Two forms per layer kind:
- training ops on latent float weights (``binary_linear``, ``binary_conv2d_train``): sign
  STE (clipped identity 1[|x| <= 1]) for activations and weights, exact gradients for scale
  and bias;
- deploy ops on bit-packed weights (``binary_gemm``, ``binary_conv2d``) that map 1:1 to the
  ONNX nodes BinaryGemm / BinaryConv2d. Their bodies are the PyTorch reference (plain torch
  math, independent of the C++ kernels).

Both compute y = conv/linear(sign(x), sign(w)) * scale + bias, multiply then add."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from steport.registry import get as _spec
from steport.registry.shapes import conv_output_hw

from ..ste import conv2d_grads, linear_grads, sign, sign_ste_grad

GEMM = _spec("binary", "BinaryGemm")
CONV = _spec("binary", "BinaryConv2d")
MAX_K = GEMM.attr("k").hi
_SHIFTS = torch.arange(64, dtype=torch.int64)


# ---- bit packing (bit 1 = +1, LSB first, 64-bit words, zero tail) ---------------------

def pack_signs(w: torch.Tensor) -> torch.Tensor:
    """sign-pack the last axis: [..., K] float -> [..., ceil(K/64)] uint64 (tail bits 0)."""
    k = w.shape[-1]
    kw = (k + 63) // 64
    bits = (w.detach() >= 0).to(torch.int64)
    bits = F.pad(bits, (0, kw * 64 - k)).reshape(*w.shape[:-1], kw, 64)
    words = (bits << _SHIFTS.to(bits.device)).sum(-1)  # disjoint bits: sum == OR
    return words.view(torch.uint64)


def unpack_signs(p: torch.Tensor, k: int) -> torch.Tensor:
    """[..., KW] uint64 -> [..., k] float32 of +-1 (tail bits ignored)."""
    q = p.view(torch.int64).unsqueeze(-1)
    bits = (q >> _SHIFTS.to(q.device)) & 1
    bits = bits.reshape(*p.shape[:-1], p.shape[-1] * 64)[..., :k]
    return bits.to(torch.float32) * 2 - 1


def pack_conv_weight(w: torch.Tensor) -> torch.Tensor:
    """[C_out, C_in/g, KH, KW] float -> [C_out, KH, KW, ceil((C_in/g)/64)] uint64."""
    return pack_signs(w.permute(0, 2, 3, 1))


def _affine(d: torch.Tensor, scale, bias, shape) -> torch.Tensor:
    if scale is not None:
        d = d * scale.reshape(shape)
    if bias is not None:
        d = d + bias.reshape(shape)
    return d


def _check_vec(t, n: int, what: str) -> None:
    if t is None:
        return
    if not t.is_floating_point() or t.dim() != 1 or t.shape[0] != n:
        raise ValueError(f"{what} must be a float vector of length {n}, got "
                         f"{t.dtype} {tuple(t.shape)}")


# ---- training form: linear ----------------------------------------------------------

@torch.library.custom_op("steport::binary_linear", mutates_args=())
def binary_linear(x: torch.Tensor, w: torch.Tensor, scale: Optional[torch.Tensor],
                  bias: Optional[torch.Tensor]) -> torch.Tensor:
    """F.linear(sign(x), sign(w)) * scale + bias; x [..., K], w [N, K]."""
    return _affine(F.linear(sign(x), sign(w)), scale, bias, (-1,))


@binary_linear.register_fake
def _binary_linear_fake(x, w, scale, bias):
    torch._check(x.shape[-1] == w.shape[1], lambda: "binary_linear: K mismatch")
    return x.new_empty((*x.shape[:-1], w.shape[0]))


def _lin_setup(ctx, inputs, output):
    x, w, scale, bias = inputs
    ctx.has_scale, ctx.has_bias = scale is not None, bias is not None
    ctx.save_for_backward(x, w, scale)


def _lin_backward(ctx, g):
    x, w, scale = ctx.saved_tensors
    sx, sw = sign(x), sign(w)
    gd = g * scale if ctx.has_scale else g  # gradient w.r.t. the integer dot
    gsx, gsw = linear_grads(gd, sx, sw)
    gx, gw = sign_ste_grad(gsx, x), sign_ste_grad(gsw, w)
    gs = gb = None
    if ctx.has_scale:
        gs = (g * F.linear(sx, sw)).reshape(-1, g.shape[-1]).sum(0)
    if ctx.has_bias:
        gb = g.reshape(-1, g.shape[-1]).sum(0)
    return gx, gw, gs, gb


binary_linear.register_autograd(_lin_backward, setup_context=_lin_setup)


# ---- training form: conv ------------------------------------------------------------

def _pad4(padding: Sequence[int]) -> tuple[int, int, int, int]:
    """[pt, pl, pb, pr] (ONNX order) -> F.pad order (left, right, top, bottom)."""
    pt, pl, pb, pr = padding
    return (pl, pr, pt, pb)


def conv_reference(sx: torch.Tensor, sw: torch.Tensor, strides, pads, dilations, group: int,
                   pad_value: int) -> torch.Tensor:
    """conv2d of already-binarized tensors, padded taps = pad_value (0 = zero padding)."""
    xp = F.pad(sx, _pad4(pads), value=float(pad_value))
    return F.conv2d(xp, sw, None, tuple(strides), 0, tuple(dilations), group)


def _check_conv(x, w, strides, pads, dilations, groups, pad_value):
    if len(strides) != 2 or len(dilations) != 2 or len(pads) != 4:
        raise ValueError("binary conv: strides/dilations need 2 values, pads 4 (t, l, b, r)")
    if min(strides) < 1 or min(dilations) < 1 or min(pads) < 0:
        raise ValueError(f"binary conv: bad strides {strides}, dilations {dilations} or pads {pads}")
    if pad_value not in (-1, 0, 1):
        raise ValueError(f"binary conv: pad_value must be -1, 0 or 1, got {pad_value}")
    if groups < 1 or x.shape[1] % groups or w.shape[0] % groups:
        raise ValueError(f"binary conv: group {groups} must divide C_in {x.shape[1]} and "
                         f"C_out {w.shape[0]}")


@torch.library.custom_op("steport::binary_conv2d_train", mutates_args=())
def binary_conv2d_train(x: torch.Tensor, w: torch.Tensor, scale: Optional[torch.Tensor],
                        bias: Optional[torch.Tensor], strides: Sequence[int], pads: Sequence[int],
                        dilations: Sequence[int], groups: int, pad_value: int) -> torch.Tensor:
    """conv2d(pad(sign(x), pad_value), sign(w)) * scale + bias; w [C_out, C_in/g, KH, KW]."""
    _check_conv(x, w, strides, pads, dilations, groups, pad_value)
    y = conv_reference(sign(x), sign(w), strides, pads, dilations, groups, pad_value)
    return _affine(y, scale, bias, (1, -1, 1, 1))


@binary_conv2d_train.register_fake
def _binary_conv2d_train_fake(x, w, scale, bias, strides, pads, dilations, groups, pad_value):
    oh, ow = conv_output_hw(x.shape[2], x.shape[3], w.shape[2], w.shape[3], strides, pads,
                            dilations)
    return x.new_empty((x.shape[0], w.shape[0], oh, ow))


def _conv_setup(ctx, inputs, output):
    x, w, scale, bias, strides, pads, dilations, groups, pad_value = inputs
    ctx.args = (tuple(strides), tuple(pads), tuple(dilations), groups, pad_value)
    ctx.has_scale, ctx.has_bias = scale is not None, bias is not None
    ctx.save_for_backward(x, w, scale)


def _conv_backward(ctx, g):
    x, w, scale = ctx.saved_tensors
    strides, pads, dilations, groups, pad_value = ctx.args
    sx, sw = sign(x), sign(w)
    xp = F.pad(sx, _pad4(pads), value=float(pad_value))
    gd = g * scale.reshape(1, -1, 1, 1) if ctx.has_scale else g
    gxp, gsw = conv2d_grads(gd, xp, sw, strides, 0, dilations, groups)
    pt, pl = pads[0], pads[1]  # the padded taps are constants: only the image gets a gradient
    gx = sign_ste_grad(gxp[:, :, pt:pt + x.shape[2], pl:pl + x.shape[3]], x)
    gw = sign_ste_grad(gsw, w)
    gs = gb = None
    if ctx.has_scale:
        d = F.conv2d(xp, sw, None, strides, 0, dilations, groups)
        gs = (g * d).sum((0, 2, 3))
    if ctx.has_bias:
        gb = g.sum((0, 2, 3))
    return gx, gw, gs, gb, None, None, None, None, None


binary_conv2d_train.register_autograd(_conv_backward, setup_context=_conv_setup)


# ---- deploy form: packed weights, 1:1 with the ONNX nodes ------------------------------

@torch.library.custom_op("steport::binary_gemm", mutates_args=())
def binary_gemm(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor,
                k: int) -> torch.Tensor:
    """BinaryGemm: (K - 2*popcount(pack(sign(a)) ^ b)) * scale + bias; b [N, ceil(K/64)]."""
    _check_gemm(a, b, scale, bias, k)
    return _affine(F.linear(sign(a), unpack_signs(b, k).to(a.dtype)), scale, bias, (-1,))


def _check_gemm(a, b, scale, bias, k):
    if not 1 <= k <= MAX_K or a.shape[-1] != k:
        raise ValueError(f"BinaryGemm: k={k} must equal A.shape[-1]={a.shape[-1]} and lie in "
                         f"[1, {MAX_K}]")
    if b.dtype != torch.uint64 or b.dim() != 2 or b.shape[1] != (k + 63) // 64:
        raise ValueError(f"BinaryGemm: B must be uint64 [N, {(k + 63) // 64}], got {b.dtype} "
                         f"{tuple(b.shape)}")
    _check_vec(scale, b.shape[0], "scale")
    _check_vec(bias, b.shape[0], "bias")


@binary_gemm.register_fake
def _binary_gemm_fake(a, b, scale, bias, k):
    return a.new_empty((*a.shape[:-1], b.shape[0]))


@torch.library.custom_op("steport::binary_conv2d", mutates_args=())
def binary_conv2d(x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor,
                  kernel_shape: Sequence[int], strides: Sequence[int], pads: Sequence[int],
                  dilations: Sequence[int], group: int, pad_value: int) -> torch.Tensor:
    """BinaryConv2d on packed weights w [C_out, KH, KW, ceil((C_in/group)/64)] uint64."""
    cin_g = x.shape[1] // group
    if w.dtype != torch.uint64 or w.dim() != 4 or w.shape[3] != (cin_g + 63) // 64 \
            or list(w.shape[1:3]) != list(kernel_shape):
        raise ValueError(f"BinaryConv2d: W must be uint64 [C_out, {kernel_shape[0]}, "
                         f"{kernel_shape[1]}, {(cin_g + 63) // 64}], got {w.dtype} {tuple(w.shape)}")
    sw = unpack_signs(w, cin_g).permute(0, 3, 1, 2).to(x.dtype)
    _check_conv(x, sw, strides, pads, dilations, group, pad_value)
    y = conv_reference(sign(x), sw, strides, pads, dilations, group, pad_value)
    return _affine(y, scale, bias, (1, -1, 1, 1))


@binary_conv2d.register_fake
def _binary_conv2d_fake(x, w, scale, bias, kernel_shape, strides, pads, dilations, group,
                        pad_value):
    oh, ow = conv_output_hw(x.shape[2], x.shape[3], kernel_shape[0], kernel_shape[1], strides,
                            pads, dilations)
    return x.new_empty((x.shape[0], w.shape[0], oh, ow))
