"""ai.steport.approx reference kernels (docs/ops.md). Sum of LUT entries gathered in int64 over
chunks of K (bounded temporaries, no [M, K, N] tensor), minus the exact zero-point correction,
wrapped to int32 modulo 2^32."""
from __future__ import annotations

import numpy as np

from .conv import conv_attrs, conv_windows, grouped_cols, out_hw
from .kernels import numpy_kernel

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
    strides, pads, dilations = conv_attrs(op, strides, pads, dilations, group)
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
    oh, ow = out_hw(op, h, wd, kh, kw, strides, pads, dilations)
    og = c_out // group
    # padding stands for real 0, i.e. the zero-point code
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])),
                constant_values=np.uint8(zp))
    cols = grouped_cols(conv_windows(xp, kh, kw, strides, dilations), group)
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
    yp = np.pad(y, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    return conv_windows(yp, kernel[0], kernel[1], strides, (1, 1)).max(axis=(-1, -2))


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
