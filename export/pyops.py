"""Python debug kernels: steport custom ops as numpy functions that run *inside* ONNX Runtime
through onnxruntime-extensions' Python custom-op mechanism (``onnx_op`` / ``PyCustomOpDef``).

A third, independent implementation of every op (next to the C++ kernel and the standard-ONNX
fallback body), used by ``steport verify --backend python`` and by :func:`localize_mismatch`
to find the first node where two backends disagree.

Adding a kernel for a new op: write a numpy function next to the others below and decorate it
with ``@numpy_kernel("ai.steport.<family>", "<OpName>")``. It receives the node's inputs as
numpy arrays (omitted optional inputs as ``None``) and its attributes as keyword arguments
(already decoded to Python values, defaults filled in from the registry), and returns one
array per output (a tuple when the op has several). Types, attribute kinds and the rewrite of
the model are derived from the OpSpec; nothing else needs registering.

Caveats of onnxruntime-extensions 0.15.2 (see docs/extensions.md):
- Python ops live in the extensions' own domain ``ai.onnx.contrib`` (no custom domain), so a
  model runs on this backend as a rewritten *copy* whose steport nodes are renamed into that
  domain (``to_python_backend``).
- Attributes may only be int64, float or string: ``ints``/``floats`` attributes are carried
  as JSON strings and decoded here. Every declared attribute must be present on the node, so
  the rewrite fills in registry defaults.
- Each input/output has one fixed element type per Python op: ops with several type variants
  get one Python op per type signature (named after it).
- uint64 *outputs* are corrupted by the bridge (values pass through a C double and are
  written as its bit pattern), so uint64 results are returned bit-cast to float64, which the
  bridge then copies bit-exactly. uint64 inputs and int64 in/out are fine.
- Outputs travel through ``ndarray.tolist()``: slow, fine for debugging only. Every call holds
  the GIL, so Python ops never run in parallel (correct from several threads, but serialized).
"""
from __future__ import annotations

import contextlib
import copy
import json
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import onnx
from onnx import TensorProto

from steport.registry import DOMAINS, OPS, get
from steport.registry.logic import GATE_TRUTH_TABLE, MAX_WIDTH
from steport.registry.shapes import conv_output_hw

PY_DOMAIN = "ai.onnx.contrib"  # the only domain onnxruntime-extensions serves Python ops in
_PREFIX = "Steport_"

_ONNX_TO_NP = {TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64,
               TensorProto.FLOAT16: np.float16, TensorProto.UINT8: np.uint8,
               TensorProto.INT8: np.int8, TensorProto.UINT16: np.uint16,
               TensorProto.INT16: np.int16, TensorProto.INT32: np.int32,
               TensorProto.INT64: np.int64, TensorProto.UINT32: np.uint32,
               TensorProto.UINT64: np.uint64, TensorProto.BOOL: np.bool_}
_TYPE_NAMES = {"float": TensorProto.FLOAT, "double": TensorProto.DOUBLE,
               "float16": TensorProto.FLOAT16, "uint8": TensorProto.UINT8,
               "int8": TensorProto.INT8, "uint16": TensorProto.UINT16, "int16": TensorProto.INT16,
               "int32": TensorProto.INT32, "int64": TensorProto.INT64,
               "uint32": TensorProto.UINT32, "uint64": TensorProto.UINT64,
               "bool": TensorProto.BOOL}


class PythonBackendError(RuntimeError):
    """The python backend cannot run this model (missing kernel, unsupported type...)."""


@dataclass(frozen=True)
class Kernel:
    domain: str
    name: str
    fn: Callable[..., Any]


_KERNELS: dict[tuple[str, str], Kernel] = {}


def numpy_kernel(domain_or_family: str, name: str):
    """Decorator: register ``fn`` as the numpy kernel of a registry op."""
    spec = get(domain_or_family, name)  # KeyError for ops the registry does not know

    def deco(fn):
        _KERNELS[(spec.domain, spec.name)] = Kernel(spec.domain, spec.name, fn)
        return fn
    return deco


def kernel_for(domain: str, name: str) -> Kernel:
    try:
        return _KERNELS[(domain, name)]
    except KeyError:
        have = sorted(f"{d}::{n}" for d, n in _KERNELS)
        raise PythonBackendError(f"no python kernel for {domain}::{name} (have: {have}); add "
                                 "one with @numpy_kernel in steport/export/pyops.py") from None


@contextlib.contextmanager
def override_kernel(domain_or_family: str, name: str, fn: Callable[..., Any]):
    """Temporarily replace an op's numpy kernel (e.g. to try a fix, or to plant a bug in a
    test); sessions already created pick it up too, since kernels are looked up per call."""
    spec = get(domain_or_family, name)
    key = (spec.domain, spec.name)
    old = _KERNELS.get(key)
    _KERNELS[key] = Kernel(spec.domain, spec.name, fn)
    try:
        yield
    finally:
        if old is None:
            _KERNELS.pop(key, None)
        else:
            _KERNELS[key] = old


def registered_kernels() -> list[str]:
    return sorted(f"{d}::{n}" for d, n in _KERNELS)


# --------------------------------------------------------------------------------------------
# Kernels. One function per op, mirroring the C++ kernel's float32 arithmetic exactly.

@numpy_kernel("quant", "Pact")
def pact(x: np.ndarray, alpha: np.ndarray, *, bits: int) -> np.ndarray:
    if not 1 <= bits <= 16:
        raise ValueError(f"Pact: bits must be in [1, 16], got {bits}")
    a = np.asarray(alpha, np.float32)
    if a.size != 1 or a.ndim > 1:
        raise ValueError(f"Pact: alpha must be a scalar (shape [] or [1]), got {a.shape}")
    a = np.float32(a.reshape(()))
    if not (np.isfinite(a) and a > 0):
        raise ValueError(f"Pact: alpha must be positive and finite, got {a}")
    s = np.float32((1 << bits) - 1) / a  # float32 / float32, as the C++ MakePactParams
    x = np.asarray(x, np.float32)
    v = np.where(x < 0, np.float32(0), x)  # -0.0 stays -0.0, NaN passes (comparisons false)
    v = np.where(v > a, a, v)
    with np.errstate(invalid="ignore"):
        return (np.round(v * s) / s).astype(np.float32)  # np.round: half to even


# ---- ai.steport.binary ----------------------------------------------------------------------
# Independent of the C++ tiles: unpack the weight bits to +-1, binarize the activations, and
# take the integer dot with a float64 matmul (|dot| <= K <= 2^24: exact), then float32
# `dot * scale` and `+ bias` (two roundings, as every other implementation).

_BIN_MAX_K = 1 << 24


def _sign_pm1(x: np.ndarray) -> np.ndarray:
    """sign with sign(0) = sign(-0) = +1 and NaN -> -1, as float64 +-1."""
    return np.where(np.asarray(x) >= 0, 1.0, -1.0)


def _unpack_pm1(words: np.ndarray, k: int) -> np.ndarray:
    """uint64 [..., W] (bit k%64 of word k//64, LSB first) -> float64 +-1 [..., k]; tail bits
    beyond k ignored."""
    w = np.ascontiguousarray(words, dtype="<u8")
    bits = np.unpackbits(w.view(np.uint8), axis=-1, bitorder="little")[..., :k]
    return bits.astype(np.float64) * 2.0 - 1.0


def _check_vec(v, n: int, what: str, op: str) -> np.ndarray:
    v = np.asarray(v)
    if v.dtype != np.float32 or v.shape != (n,):
        raise ValueError(f"{op}: {what} must be float32 [{n}], got {v.dtype} {list(v.shape)}")
    return v


@numpy_kernel("binary", "BinaryGemm")
def binary_gemm(a: np.ndarray, b: np.ndarray, scale: np.ndarray, bias: np.ndarray, *,
                k: int) -> np.ndarray:
    a, b = np.asarray(a), np.asarray(b)
    if not 1 <= k <= _BIN_MAX_K or a.ndim < 1 or a.shape[-1] != k:
        raise ValueError(f"BinaryGemm: k={k} must equal A.shape[-1] (A {list(a.shape)}) and "
                         f"lie in [1, {_BIN_MAX_K}]")
    kw = (k + 63) // 64
    if b.dtype != np.uint64 or b.ndim != 2 or b.shape[1] != kw:
        raise ValueError(f"BinaryGemm: B must be uint64 [N, {kw}], got {b.dtype} {list(b.shape)}")
    n = b.shape[0]
    scale = _check_vec(scale, n, "scale", "BinaryGemm")
    bias = _check_vec(bias, n, "bias", "BinaryGemm")
    dot = _sign_pm1(a) @ _unpack_pm1(b, k).T  # [..., N], exact integers
    return (dot.astype(np.float32) * scale) + bias


def _conv_windows(xp: np.ndarray, kh: int, kw: int, strides, dilations) -> np.ndarray:
    """Padded NCHW -> strided view [N, C, OH, OW, kh, kw] (no copy)."""
    dh, dw = dilations
    sh, sw = strides
    v = np.lib.stride_tricks.sliding_window_view(xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1),
                                                 axis=(2, 3))
    return v[:, :, ::sh, ::sw, ::dh, ::dw]


def _grouped_cols(win: np.ndarray, group: int) -> np.ndarray:
    """[N, C, OH, OW, kh, kw] -> [G, N*OH*OW, (C/G)*kh*kw] (channel-major, then kh, kw)."""
    n, c, oh, ow, kh, kw = win.shape
    cg = c // group
    v = win.reshape(n, group, cg, oh, ow, kh, kw).transpose(1, 0, 3, 4, 2, 5, 6)
    return v.reshape(group, n * oh * ow, cg * kh * kw)


def _conv_attrs(op: str, strides, pads, dilations, group: int):
    strides, pads, dilations = list(strides), list(pads), list(dilations)
    if len(strides) != 2 or len(dilations) != 2 or len(pads) != 4:
        raise ValueError(f"{op}: strides and dilations need 2 values, pads 4 [t, l, b, r]; got "
                         f"{strides}, {dilations}, {pads}")
    if min(strides) < 1 or min(dilations) < 1 or min(pads) < 0 or group < 1:
        raise ValueError(f"{op}: bad strides {strides}, dilations {dilations}, pads {pads} or "
                         f"group {group}")
    return strides, pads, dilations


def _out_hw(op: str, h: int, w: int, kh: int, kw: int, strides, pads, dilations):
    oh, ow = conv_output_hw(h, w, kh, kw, strides, pads, dilations)
    if (h + pads[0] + pads[2] < dilations[0] * (kh - 1) + 1
            or w + pads[1] + pads[3] < dilations[1] * (kw - 1) + 1):
        raise ValueError(f"{op}: kernel {kh}x{kw} (dilations {dilations}) larger than the padded "
                         f"input {h}x{w} + pads {pads}")
    return oh, ow


@numpy_kernel("binary", "BinaryConv2d")
def binary_conv2d(x: np.ndarray, w: np.ndarray, scale: np.ndarray, bias: np.ndarray, *,
                  kernel_shape=None, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1),
                  group: int = 1, pad_value: int = 0) -> np.ndarray:
    op = "BinaryConv2d"
    x, w = np.asarray(x), np.asarray(w)
    strides, pads, dilations = _conv_attrs(op, strides, pads, dilations, group)
    if pad_value not in (-1, 0, 1):
        raise ValueError(f"{op}: pad_value must be -1, 0 or 1, got {pad_value}")
    if x.ndim != 4 or w.ndim != 4 or w.dtype != np.uint64:
        raise ValueError(f"{op}: X must be NCHW and W uint64 [C_out, KH, KW, words], got X "
                         f"{list(x.shape)}, W {w.dtype} {list(w.shape)}")
    n, c_in, h, wd = x.shape
    c_out, kh, kw, words = w.shape
    if kernel_shape is not None and list(kernel_shape) != [kh, kw]:
        raise ValueError(f"{op}: kernel_shape {list(kernel_shape)} does not match W "
                         f"{list(w.shape)}")
    if c_in % group or c_out % group:
        raise ValueError(f"{op}: group {group} must divide C_in {c_in} and C_out {c_out}")
    cg, og = c_in // group, c_out // group
    if words != (cg + 63) // 64:
        raise ValueError(f"{op}: W must have {(cg + 63) // 64} words per tap for C_in/group = "
                         f"{cg}, got {words}")
    if cg * kh * kw > _BIN_MAX_K:
        raise ValueError(f"{op}: reduction length {cg * kh * kw} exceeds {_BIN_MAX_K}")
    scale = _check_vec(scale, c_out, "scale", op)
    bias = _check_vec(bias, c_out, "bias", op)
    oh, ow = _out_hw(op, h, wd, kh, kw, strides, pads, dilations)
    # padded taps hold pad_value *after* binarization (0 = PyTorch zero padding of sign(x))
    xp = np.pad(_sign_pm1(x), ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])),
                constant_values=float(pad_value))
    cols = _grouped_cols(_conv_windows(xp, kh, kw, strides, dilations), group)
    # weights [C_out, KH, KW, C_in/g] -> [G, og, C_in/g * KH * KW] in the cols' order
    sw = _unpack_pm1(w, cg).transpose(0, 3, 1, 2).reshape(group, og, cg * kh * kw)
    dot = np.matmul(cols, sw.transpose(0, 2, 1))  # [G, N*OH*OW, og], exact integers
    dot = dot.reshape(group, n, oh, ow, og).transpose(1, 0, 4, 2, 3).reshape(n, c_out, oh, ow)
    return (dot.astype(np.float32) * scale.reshape(1, -1, 1, 1)) + bias.reshape(1, -1, 1, 1)


# ---- ai.steport.approx ----------------------------------------------------------------------
# Sum of LUT entries gathered in int64 over chunks of K (bounded temporaries, no [M, K, N]
# tensor), minus the exact zero-point correction, wrapped to int32 modulo 2^32.

_APPROX_CHUNK = 1 << 22  # elements of one gathered [M, kc, N] block


def _lut_flat(lut: np.ndarray, op: str) -> np.ndarray:
    lut = np.asarray(lut)
    if lut.dtype != np.int32 or lut.shape not in ((256, 256), (65536,)):
        raise ValueError(f"{op}: lut must be int32 [256, 256] or [65536], got {lut.dtype} "
                         f"{list(lut.shape)}")
    return lut.reshape(65536).astype(np.int64)


def _zero_point(zp, op: str, name: str) -> int:
    if zp is None:
        return 0
    zp = np.asarray(zp)
    if zp.dtype != np.uint8 or zp.ndim > 1 or zp.size != 1:
        raise ValueError(f"{op}: {name} must be a uint8 scalar ([] or [1]), got {zp.dtype} "
                         f"{list(zp.shape)}")
    return int(zp.reshape(()))


def _wrap_i32(y: np.ndarray) -> np.ndarray:
    return (y.astype(np.int64) & 0xFFFFFFFF).astype(np.uint32).view(np.int32)


def _lut_gemm(a2: np.ndarray, b: np.ndarray, lut64: np.ndarray, zp: int) -> np.ndarray:
    """a2 codes [M, K] (uint8), b int8 [K, N] -> int64 [M, N] =
    sum_k LUT[a, uint8(b)] - zp * sum_k b (not yet wrapped)."""
    m, k = a2.shape
    n = b.shape[1]
    y = np.zeros((m, n), np.int64)
    if m and n and k:
        ai = a2.astype(np.intp) * 256
        bu = b.view(np.uint8).astype(np.intp)
        kc = max(1, _APPROX_CHUNK // max(1, m * n))
        for s in range(0, k, kc):
            idx = ai[:, s:s + kc, None] + bu[None, s:s + kc, :]  # [M, kc, N]
            y += lut64[idx].sum(axis=1)
    if zp:
        y -= zp * b.astype(np.int64).sum(axis=0, keepdims=True)
    return y


@numpy_kernel("approx", "ApproxMatMulInteger")
def approx_matmul_integer(a: np.ndarray, b: np.ndarray, lut: np.ndarray,
                          a_zero_point: np.ndarray | None = None) -> np.ndarray:
    op = "ApproxMatMulInteger"
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != np.uint8 or b.dtype != np.int8:
        raise ValueError(f"{op}: A must be uint8 and B int8, got {a.dtype} and {b.dtype}")
    if a.ndim < 2 or b.ndim != 2 or a.shape[-1] != b.shape[0]:
        raise ValueError(f"{op}: A must be [..., M, K] and B [K, N] with the same K, got "
                         f"{list(a.shape)} and {list(b.shape)}")
    lut64 = _lut_flat(lut, op)
    zp = _zero_point(a_zero_point, op, "a_zero_point")
    y = _lut_gemm(a.reshape(-1, a.shape[-1]), b, lut64, zp)
    return _wrap_i32(y).reshape(*a.shape[:-1], b.shape[1])


@numpy_kernel("approx", "ApproxConvInteger")
def approx_conv_integer(x: np.ndarray, w: np.ndarray, lut: np.ndarray,
                        x_zero_point: np.ndarray | None = None, *, strides=(1, 1),
                        pads=(0, 0, 0, 0), dilations=(1, 1), group: int = 1) -> np.ndarray:
    op = "ApproxConvInteger"
    x, w = np.asarray(x), np.asarray(w)
    strides, pads, dilations = _conv_attrs(op, strides, pads, dilations, group)
    if x.dtype != np.uint8 or w.dtype != np.int8 or x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"{op}: X must be uint8 NCHW and W int8 [C_out, C_in/group, kH, kW], "
                         f"got {x.dtype} {list(x.shape)} and {w.dtype} {list(w.shape)}")
    n, c_in, h, wd = x.shape
    c_out, cg, kh, kw = w.shape
    if c_in % group or c_out % group or cg * group != c_in:
        raise ValueError(f"{op}: channels do not fit group={group}: X {list(x.shape)}, "
                         f"W {list(w.shape)}")
    lut64 = _lut_flat(lut, op)
    zp = _zero_point(x_zero_point, op, "x_zero_point")
    oh, ow = _out_hw(op, h, wd, kh, kw, strides, pads, dilations)
    og = c_out // group
    # padding stands for real 0, i.e. the zero-point code
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])),
                constant_values=np.uint8(zp))
    cols = _grouped_cols(_conv_windows(xp, kh, kw, strides, dilations), group)
    wg = w.reshape(group, og, cg * kh * kw)
    y = np.stack([_lut_gemm(cols[g], np.ascontiguousarray(wg[g].T), lut64, zp)
                  for g in range(group)])  # [G, N*OH*OW, og]
    y = y.reshape(group, n, oh, ow, og).transpose(1, 0, 4, 2, 3).reshape(n, c_out, oh, ow)
    return _wrap_i32(y)


def requantize_codes(acc: np.ndarray, bias: np.ndarray, multiplier: np.ndarray,
                     y_zero_point: np.ndarray | None, channel_axis: int, op: str) -> np.ndarray:
    """int32 sums -> uint8 codes sat(round_half_even(fp32(wrap32(acc + bias[c])) · m[c]) + y_zp)
    along ``channel_axis`` (docs/ops.md "Integer models"); fp32 arithmetic as ONNX's Cast,
    Mul and QuantizeLinear."""
    c = acc.shape[channel_axis]
    bias, mult = np.asarray(bias), np.asarray(multiplier)
    if bias.dtype != np.int32 or bias.shape != (c,):
        raise ValueError(f"{op}: bias must be int32 [{c}], got {bias.dtype} {list(bias.shape)}")
    if mult.dtype != np.float32 or mult.ndim > 1 or mult.size not in (1, c):
        raise ValueError(f"{op}: multiplier must be fp32 [{c}] or [1], got {mult.dtype} "
                         f"{list(mult.shape)}")
    if not np.isfinite(mult).all():
        raise ValueError(f"{op}: multiplier must be finite")
    zp = _zero_point(y_zero_point, op, "y_zero_point")
    shape = [1] * acc.ndim
    shape[channel_axis] = -1
    v = _wrap_i32(acc.astype(np.int64) + bias.astype(np.int64).reshape(shape))
    f = v.astype(np.float32) * mult.reshape(shape if mult.size > 1 else [1] * acc.ndim)
    return (np.rint(np.clip(f, np.float32(-zp), np.float32(255 - zp))) + zp).astype(np.uint8)


def max_pool_codes(y: np.ndarray, kernel, strides, pads) -> np.ndarray:
    """MaxPool (floor mode) of uint8 NCHW codes; pads < kernel, so a window's padding (0 here)
    never exceeds its real values."""
    (kh, kw), (sh, sw) = kernel, strides
    yp = np.pad(y, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    return np.lib.stride_tricks.sliding_window_view(yp, (kh, kw), axis=(2, 3))[
        :, :, ::sh, ::sw].max(axis=(-1, -2))


@numpy_kernel("approx", "ApproxQLinearMatMul")
def approx_q_linear_matmul(a: np.ndarray, b: np.ndarray, lut: np.ndarray, bias: np.ndarray,
                           multiplier: np.ndarray, a_zero_point: np.ndarray | None = None,
                           y_zero_point: np.ndarray | None = None) -> np.ndarray:
    acc = approx_matmul_integer(a, b, lut, a_zero_point)
    return requantize_codes(acc, bias, multiplier, y_zero_point, -1, "ApproxQLinearMatMul")


@numpy_kernel("approx", "ApproxQLinearConv")
def approx_q_linear_conv(x: np.ndarray, w: np.ndarray, lut: np.ndarray, bias: np.ndarray,
                         multiplier: np.ndarray, x_zero_point: np.ndarray | None = None,
                         y_zero_point: np.ndarray | None = None, *, strides=(1, 1),
                         pads=(0, 0, 0, 0), dilations=(1, 1), group: int = 1,
                         pool_kernel=(1, 1), pool_strides=(1, 1),
                         pool_pads=(0, 0, 0, 0)) -> np.ndarray:
    op = "ApproxQLinearConv"
    acc = approx_conv_integer(x, w, lut, x_zero_point, strides=strides, pads=pads,
                              dilations=dilations, group=group)
    codes = requantize_codes(acc, bias, multiplier, y_zero_point, 1, op)
    k, s, p = list(pool_kernel), list(pool_strides), list(pool_pads)
    if (len(k), len(s), len(p)) != (2, 2, 4) or min(k + s) < 1 or min(p) < 0 or \
            not (p[0] < k[0] and p[2] < k[0] and p[1] < k[1] and p[3] < k[1]):
        raise ValueError(f"{op}: bad pool_kernel {k}, pool_strides {s} or pool_pads {p} "
                         "(pads must be smaller than the window)")
    if codes.shape[2] + p[0] + p[2] < k[0] or codes.shape[3] + p[1] + p[3] < k[1]:
        raise ValueError(f"{op}: pool_kernel {k} larger than the padded conv output "
                         f"{list(codes.shape[2:])}")
    return max_pool_codes(codes, k, s, p)


# ---- ai.steport.logic -----------------------------------------------------------------------
# Bits are x != 0 (NaN -> 1); each layer gathers its two operand columns and looks the gate up
# in the flat 16x4 truth table at 4*id + 2a + b.

_TRUTH = np.array(GATE_TRUTH_TABLE, dtype=np.uint8).reshape(-1)


def _logic_tensors(x, ia, ib, g, op: str):
    x, ia, ib, g = (np.asarray(t) for t in (x, ia, ib, g))
    if x.ndim != 2 or x.dtype.kind != "f":
        raise ValueError(f"{op}: X must be a 2-D float tensor [N, in], got {x.dtype} "
                         f"{list(x.shape)}")
    for name, t in (("idx_a", ia), ("idx_b", ib)):
        if t.ndim != 1 or t.dtype != np.int64:
            raise ValueError(f"{op}: {name} must be 1-D int64, got {t.dtype} {list(t.shape)}")
    if g.ndim != 1 or g.dtype not in (np.uint8, np.int64):
        raise ValueError(f"{op}: gate_ids must be 1-D uint8 or int64, got {g.dtype} "
                         f"{list(g.shape)}")
    if not ia.shape == ib.shape == g.shape:
        raise ValueError(f"{op}: idx_a, idx_b, gate_ids lengths differ: {ia.size}, {ib.size}, "
                         f"{g.size}")
    return x, ia, ib, g


def _logic_layer(bits: np.ndarray, ia, ib, g, what: str) -> np.ndarray:
    """bits uint8 {0,1} [N, in] -> uint8 {0,1} [N, out]."""
    width = bits.shape[1]
    for name, t in (("idx_a", ia), ("idx_b", ib)):
        if t.size and (int(t.min()) < 0 or int(t.max()) >= width):
            raise ValueError(f"{what}: {name} out of range [0, {width}): min {int(t.min())}, "
                             f"max {int(t.max())}")
    g = g.astype(np.int64)
    if g.size and (int(g.min()) < 0 or int(g.max()) > 15):
        raise ValueError(f"{what}: gate id out of range [0, 15]: min {int(g.min())}, "
                         f"max {int(g.max())}")
    k = (g * 4).astype(np.intp) + 2 * bits[:, ia].astype(np.intp) + bits[:, ib]
    return _TRUTH[k]


@numpy_kernel("logic", "LogicLayer")
def logic_layer(x, idx_a, idx_b, gate_ids) -> np.ndarray:
    x, ia, ib, g = _logic_tensors(x, idx_a, idx_b, gate_ids, "LogicLayer")
    bits = (x != 0).astype(np.uint8)  # NaN != 0: 1
    return _logic_layer(bits, ia, ib, g, "LogicLayer").astype(x.dtype)


@numpy_kernel("logic", "LogicNet")
def logic_net(x, idx_a, idx_b, gate_ids, *, layer_sizes, num_classes: int,
              tau: float = 1.0) -> np.ndarray:
    op = "LogicNet"
    x, ia, ib, g = _logic_tensors(x, idx_a, idx_b, gate_ids, op)
    sizes = list(layer_sizes)
    if not sizes or any(not isinstance(s, int) or not 1 <= s <= MAX_WIDTH for s in sizes):
        raise ValueError(f"{op}: layer_sizes must be a non-empty list of ints in "
                         f"[1, {MAX_WIDTH}], got {sizes}")
    if not 1 <= x.shape[1] <= MAX_WIDTH:
        raise ValueError(f"{op}: input width must be in [1, {MAX_WIDTH}], got {x.shape[1]}")
    if sum(sizes) != ia.size:
        raise ValueError(f"{op}: sum(layer_sizes) = {sum(sizes)} but the index/gate tensors "
                         f"have {ia.size} entries")
    if not isinstance(num_classes, int) or num_classes < 1 or sizes[-1] % num_classes:
        raise ValueError(f"{op}: last layer width {sizes[-1]} is not a multiple of "
                         f"num_classes {num_classes}")
    t = np.float32(tau)  # the ONNX attribute is float32
    if not (np.isfinite(t) and t > 0):
        raise ValueError(f"{op}: tau must be positive and finite, got {tau}")
    h = (x != 0).astype(np.uint8)
    start = 0
    for li, size in enumerate(sizes):
        sl = slice(start, start + size)
        h = _logic_layer(h, ia[sl], ib[sl], g[sl], f"{op} layer {li}")
        start += size
    counts = h.reshape(h.shape[0], num_classes, sizes[-1] // num_classes).sum(-1, dtype=np.int64)
    return (counts.astype(np.float32) / t).astype(x.dtype)


# --------------------------------------------------------------------------------------------
# Python-op registration with onnxruntime-extensions (process-wide, once per signature).

_REGISTERED: set[str] = set()
_ERRORS: list[str] = []  # kernel exceptions of the current run (see PythonSession)
_RUN_LOCK = threading.Lock()  # _ERRORS is process-wide: one python-backend run at a time


def _ext():
    try:
        import onnxruntime_extensions as ext
    except ImportError as e:  # pragma: no cover - optional dependency
        raise PythonBackendError("the python backend needs onnxruntime-extensions: "
                                 "pip install 'steport[extensions]'") from e
    return ext


def _dt(onnx_type: int) -> int:
    P = _ext().PyCustomOpDef
    table = {TensorProto.FLOAT: P.dt_float, TensorProto.DOUBLE: P.dt_double,
             TensorProto.FLOAT16: P.dt_float16, TensorProto.UINT8: P.dt_uint8,
             TensorProto.INT8: P.dt_int8, TensorProto.UINT16: P.dt_uint16,
             TensorProto.INT16: P.dt_int16, TensorProto.INT32: P.dt_int32,
             TensorProto.INT64: P.dt_int64, TensorProto.UINT32: P.dt_uint32,
             TensorProto.UINT64: P.dt_uint64, TensorProto.BOOL: P.dt_bool}
    if onnx_type not in table:
        raise PythonBackendError(f"element type {TensorProto.DataType.Name(onnx_type)} is not "
                                 "supported by onnxruntime-extensions Python ops")
    return table[onnx_type]


def _attr_dt(kind: str) -> int:
    P = _ext().PyCustomOpDef
    # int -> int64, float -> float; everything else (ints, floats, string) travels as string
    return {"int": P.dt_int64, "float": P.dt_float}.get(kind, P.dt_string)


def _py_op_type(domain: str, name: str, in_types: list[int], out_types: list[int]) -> str:
    family = next(f for f, d in DOMAINS.items() if d == domain)
    sig = "_".join(TensorProto.DataType.Name(t).lower() for t in in_types + out_types)
    return f"{_PREFIX}{family}_{name}__{sig}"


def _register(op_type: str, domain: str, name: str, in_types: list[int], out_types: list[int],
              present: list[bool]) -> None:
    """Register one Python op (idempotent). ``present[i]`` is False for an omitted optional
    input: the rewritten node drops it, and the wrapper passes None in its place."""
    if op_type in _REGISTERED:
        return
    ext = _ext()
    spec = get(domain, name)
    kinds = {a.name: a.kind for a in spec.attrs}

    def call(*args, **attrs):
        # An exception escaping a Python op aborts the whole process (0.15.2), so errors are
        # caught, recorded, and raised by PythonSession.run after ORT returns.
        try:
            return compute(*args, **attrs)
        except Exception as e:  # noqa: BLE001 - re-raised by PythonSession.run
            _ERRORS.append(f"{spec.qualname}: {type(e).__name__}: {e}")
            empty = tuple(np.zeros(0, _ONNX_TO_NP[t]) if t != TensorProto.UINT64
                          else np.zeros(0, np.float64) for t in out_types)
            return empty if len(empty) > 1 else empty[0]

    def compute(*args, **attrs):
        it = iter(args)
        full = [next(it) if p else None for p in present]
        kw = {k: (json.loads(v) if kinds[k] in ("ints", "floats") else v) for k, v in attrs.items()}
        out = kernel_for(domain, name).fn(*full, **kw)  # looked up per call: overridable
        outs = out if isinstance(out, tuple) else (out,)
        if len(outs) != len(out_types):
            raise PythonBackendError(f"python kernel {spec.qualname} returned {len(outs)} "
                                     f"outputs, the node has {len(out_types)}")
        fixed = []
        for arr, t in zip(outs, out_types):
            arr = np.ascontiguousarray(arr, dtype=_ONNX_TO_NP[t])
            # the bridge writes each uint64 result as a C double's bit pattern: hand it the
            # double whose bits *are* the value (copied bit-exactly, NaN payloads included)
            fixed.append(arr.view(np.float64) if t == TensorProto.UINT64 else arr)
        return tuple(fixed) if len(fixed) > 1 else fixed[0]

    call.__name__ = op_type
    ext.onnx_op(op_type=op_type, inputs=[_dt(t) for t in in_types],
                outputs=[_dt(t) for t in out_types],
                attrs={a.name: _attr_dt(a.kind) for a in spec.attrs})(call)
    _REGISTERED.add(op_type)


# --------------------------------------------------------------------------------------------
# Model rewrite: steport nodes -> ai.onnx.contrib Python ops (on a copy).

def _value_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every value name we can find (inputs, outputs, initializers, inferred)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # inference is a best effort; spec types fill the gaps
        inferred = model
    g = inferred.graph
    types = {vi.name: vi.type.tensor_type.elem_type
             for vi in list(g.input) + list(g.output) + list(g.value_info)
             if vi.type.HasField("tensor_type")}
    types.update({t.name: t.data_type for t in g.initializer})
    return {k: v for k, v in types.items() if v}


def _attr_value(spec_attr, proto: onnx.AttributeProto | None):
    if proto is None:
        v = spec_attr.default
    else:
        v = onnx.helper.get_attribute_value(proto)
        if isinstance(v, bytes):
            v = v.decode()
    if spec_attr.kind in ("ints", "floats"):
        return json.dumps(None if v is None else list(v))  # None: optional, absent (null)
    return v


def to_python_backend(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose steport nodes run as Python ops (names of values kept, so
    intermediate outputs can be compared with the original). Registers the Python ops."""
    out = copy.deepcopy(model)
    ours = set(DOMAINS.values())
    types = _value_types(model)
    rewritten = set()
    for n in out.graph.node:
        if n.domain not in ours:
            continue
        spec = get(n.domain, n.op_type)
        kernel_for(spec.domain, spec.name)  # fail early, naming the op
        present = [i < len(n.input) and n.input[i] != "" for i in range(len(spec.inputs))]
        ins = [x for x in n.input if x != ""]
        in_types, out_types = [], []
        for name, port in zip([x for x in n.input], spec.inputs):
            if name:
                in_types.append(types.get(name, _TYPE_NAMES[port.types[0]]))
        for name, port in zip(n.output, spec.outputs):
            out_types.append(types.get(name, _TYPE_NAMES[port.types[0]]))
        if len(n.output) != len(spec.outputs) or any(o == "" for o in n.output):
            raise PythonBackendError(f"node '{n.name}': python backend needs every output of "
                                     f"{spec.qualname} named")
        op_type = _py_op_type(spec.domain, spec.name, in_types, out_types)
        _register(op_type, spec.domain, spec.name, in_types, out_types, present)
        given = {a.name: a for a in n.attribute}
        unknown = set(given) - {a.name for a in spec.attrs}
        if unknown:
            raise PythonBackendError(f"node '{n.name}': unknown attributes {sorted(unknown)} "
                                     f"for {spec.qualname}")
        attrs = []
        for a in spec.attrs:
            if a.name not in given and a.required:
                raise PythonBackendError(f"node '{n.name}': required attribute {a.name!r} "
                                         f"of {spec.qualname} missing")
            attrs.append(onnx.helper.make_attribute(a.name, _attr_value(a, given.get(a.name))))
        del n.input[:]
        n.input.extend(ins)
        del n.attribute[:]
        n.attribute.extend(attrs)
        n.op_type, n.domain = op_type, PY_DOMAIN
        rewritten.add((spec.domain, spec.name))
    keep = [f for f in out.functions if (f.domain, f.name) not in rewritten]
    del out.functions[:]
    out.functions.extend(keep)
    if PY_DOMAIN not in {o.domain for o in out.opset_import}:
        out.opset_import.append(onnx.helper.make_opsetid(PY_DOMAIN, 1))
    return out


def python_session(model: Any, threads: int | None = 1):
    """An ORT session that runs ``model``'s steport ops with the numpy kernels."""
    import onnxruntime as ort

    proto = _load(model)
    py_model = to_python_backend(proto)
    so = ort.SessionOptions()
    if threads is not None:
        so.intra_op_num_threads = int(threads)
    # registered after the Python ops: the library collects them when it is loaded
    so.register_custom_ops_library(_ext().get_library_path())
    return PythonSession(ort.InferenceSession(py_model.SerializeToString(), so,
                                              providers=["CPUExecutionProvider"]))


class PythonSession:
    """An InferenceSession whose run() raises the numpy kernels' exceptions (which the
    extensions bridge cannot propagate) as PythonBackendError."""

    def __init__(self, sess):
        self.sess = sess

    def __getattr__(self, name):
        return getattr(self.sess, name)

    def run(self, output_names, feeds, *args, **kwargs):
        with _RUN_LOCK:
            del _ERRORS[:]
            try:
                out = self.sess.run(output_names, feeds, *args, **kwargs)
            except Exception as e:
                if _ERRORS:  # ORT failed on the placeholder we returned: report the cause
                    raise PythonBackendError("python kernel failed: " + "; ".join(_ERRORS)) from e
                raise
            if _ERRORS:
                raise PythonBackendError("python kernel failed: " + "; ".join(_ERRORS))
            return out


def _load(model: Any) -> onnx.ModelProto:
    if isinstance(model, (str, os.PathLike)):
        return onnx.load(os.fspath(model))
    if isinstance(model, (bytes, bytearray)):
        return onnx.load_from_string(bytes(model))
    return model


# --------------------------------------------------------------------------------------------
# Per-node mismatch localization.

@dataclass
class NodeDiff:
    node: str
    op: str  # domain::name
    output: str
    max_abs_diff: float
    mismatches: int
    size: int

    @property
    def ok(self) -> bool:
        return self.mismatches == 0


@dataclass
class NodeReport:
    backends: tuple[str, str]
    nodes: list[NodeDiff]

    @property
    def first_mismatch(self) -> NodeDiff | None:
        return next((d for d in self.nodes if not d.ok), None)

    @property
    def ok(self) -> bool:
        return self.first_mismatch is None

    def table(self) -> str:
        a, b = self.backends
        lines = [f"per-node comparison {a} vs {b} (custom nodes in graph order)",
                 f"{'node':24s} {'op':28s} {'output':16s} {'max|diff|':>10s} {'mismatch':>10s}"]
        for d in self.nodes:
            lines.append(f"{d.node:24s} {d.op:28s} {d.output:16s} {d.max_abs_diff:10.3g} "
                         f"{d.mismatches:>5d}/{d.size:<5d}")
        first = self.first_mismatch
        lines.append("all custom nodes agree" if first is None else
                     f"FIRST MISMATCH: node '{first.node}' ({first.op}), output '{first.output}'")
        return "\n".join(lines)


def _expose_custom_outputs(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[tuple]]:
    """Copy of ``model`` with every steport node's outputs added as graph outputs."""
    m = copy.deepcopy(model)
    ours = set(DOMAINS.values())
    types = _value_types(model)
    have = {o.name for o in m.graph.output}
    probes = []
    for i, n in enumerate(m.graph.node):
        if n.domain not in ours:
            continue
        if not n.name:
            n.name = f"{n.op_type}_{i}"
        for o in n.output:
            if not o:
                continue
            probes.append((n.name, f"{n.domain}::{n.op_type}", o))
            if o not in have:
                t = types.get(o)
                if t is None:
                    port = get(n.domain, n.op_type).outputs[list(n.output).index(o)]
                    t = _TYPE_NAMES[port.types[0]]
                m.graph.output.append(onnx.helper.make_tensor_value_info(o, t, None))
                have.add(o)
    return m, probes


def _diff(a: np.ndarray, b: np.ndarray, atol: float) -> tuple[float, int]:
    if a.shape != b.shape:
        return float("inf"), max(a.size, b.size, 1)
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        same = (np.isnan(a64) & np.isnan(b64)) | (a64 == b64)  # inf == inf counts as equal
        d = np.where(same, 0.0, np.nan_to_num(np.abs(a64 - b64), nan=np.inf))
        return (float(d.max()) if d.size else 0.0), int((d > atol).sum())
    neq = a != b
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return (float(d.max()) if d.size else 0.0), int(neq.sum())


def localize_mismatch(model: Any, feeds: dict[str, np.ndarray],
                      backends: tuple[str, str] = ("steport", "python"),
                      atol: float = 0.0) -> NodeReport:
    """Run ``model`` on two backends ("steport": C++ kernels, "python": numpy kernels,
    "fallback": stock ORT with the fallback bodies) with every custom node's outputs exposed,
    and compare node by node in graph (topological) order. The first differing node is where
    the backends part ways; later ones may only inherit its difference."""
    import onnxruntime as ort

    import steport

    proto = _load(model)
    probed, probes = _expose_custom_outputs(proto)
    names = [o.name for o in probed.graph.output]
    results = {}
    for b in backends:
        if b == "steport":
            sess = steport.session(probed.SerializeToString(), threads=1)
        elif b == "python":
            sess = python_session(probed)
        elif b == "fallback":
            sess = ort.InferenceSession(probed.SerializeToString(),
                                        providers=["CPUExecutionProvider"])
        else:
            raise ValueError(f"unknown backend {b!r} (steport, python, fallback)")
        results[b] = dict(zip(names, sess.run(None, feeds)))
    ra, rb = (results[b] for b in backends)
    diffs = []
    for node, op, out in probes:
        mad, bad = _diff(np.asarray(ra[out]), np.asarray(rb[out]), atol)
        diffs.append(NodeDiff(node, op, out, mad, bad, int(np.asarray(ra[out]).size)))
    return NodeReport(tuple(backends), diffs)


def kernels_cover(model: onnx.ModelProto) -> list[str]:
    """Steport ops of ``model`` that have no python kernel (empty list: all covered)."""
    ours = set(DOMAINS.values())
    return sorted({f"{n.domain}::{n.op_type}" for n in model.graph.node
                   if n.domain in ours and (n.domain, n.op_type) not in _KERNELS})


__all__ = ["numpy_kernel", "kernel_for", "registered_kernels", "to_python_backend",
           "python_session", "localize_mismatch", "override_kernel", "NodeReport", "NodeDiff",
           "PythonBackendError", "kernels_cover", "PY_DOMAIN", "OPS"]
