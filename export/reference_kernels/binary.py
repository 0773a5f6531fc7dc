"""ai.steport.binary reference kernels (docs/ops.md). Independent of the C++ tiles: unpack the
weight bits to +-1, binarize the activations, and take the integer dot with a float64 matmul
(|dot| <= K <= 2^24: exact), then float32 `dot * scale` and `+ bias` (two roundings, as every
other implementation)."""
from __future__ import annotations

import numpy as np

from steport.registry.binary import MAX_K as _BIN_MAX_K

from .conv import conv_attrs, conv_windows, grouped_cols, out_hw
from .kernels import numpy_kernel


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


@numpy_kernel("binary", "BinaryConv2d")
def binary_conv2d(x: np.ndarray, w: np.ndarray, scale: np.ndarray, bias: np.ndarray, *,
                  kernel_shape=None, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1),
                  group: int = 1, pad_value: int = 0) -> np.ndarray:
    op = "BinaryConv2d"
    x, w = np.asarray(x), np.asarray(w)
    strides, pads, dilations = conv_attrs(op, strides, pads, dilations, group)
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
    oh, ow = out_hw(op, h, wd, kh, kw, strides, pads, dilations)
    # padded taps hold pad_value *after* binarization (0 = PyTorch zero padding of sign(x))
    xp = np.pad(_sign_pm1(x), ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])),
                constant_values=float(pad_value))
    cols = grouped_cols(conv_windows(xp, kh, kw, strides, dilations), group)
    # weights [C_out, KH, KW, C_in/g] -> [G, og, C_in/g * KH * KW] in the cols' order
    sw = _unpack_pm1(w, cg).transpose(0, 3, 1, 2).reshape(group, og, cg * kh * kw)
    dot = np.matmul(cols, sw.transpose(0, 2, 1))  # [G, N*OH*OW, og], exact integers
    dot = dot.reshape(group, n, oh, ow, og).transpose(1, 0, 4, 2, 3).reshape(n, c_out, oh, ow)
    return (dot.astype(np.float32) * scale.reshape(1, -1, 1, 1)) + bias.reshape(1, -1, 1, 1)
