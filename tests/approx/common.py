"""Shared LUTs, an independent numpy reference and model builders for approx tests."""
from __future__ import annotations

import numpy as np

from steport.registry import get

from ..helpers import single_node_model

MATMUL = get("approx", "ApproxMatMulInteger")
CONV = get("approx", "ApproxConvInteger")


def exact_lut() -> np.ndarray:
    a = np.arange(256, dtype=np.int64)
    b = np.arange(256, dtype=np.uint8).view(np.int8).astype(np.int64)
    return np.outer(a, b).astype(np.int32)


def random_lut(seed: int = 3) -> np.ndarray:
    """ASYMMETRIC: LUT[a][b] != LUT[b][a], so swapped operands give different results."""
    rng = np.random.default_rng(seed)
    lut = exact_lut().astype(np.int64) + rng.integers(-300, 300, (256, 256))
    lut[5, 7] += 1000
    return lut.astype(np.int32)


def trunc_lut(t: int = 2) -> np.ndarray:
    """(a & m) * (b & m), m = ~(2^t - 1), b two's complement: separable."""
    m = ~((1 << t) - 1)
    a = np.arange(256, dtype=np.int64) & m
    b = np.arange(256, dtype=np.uint8).view(np.int8).astype(np.int64) & m
    return np.outer(a, b).astype(np.int32)


LUTS = {"asym": random_lut, "exact": exact_lut, "trunc": trunc_lut}


def np_matmul(a, b, lut, zp=0):
    """Loop over k (independent of the torch/ORT code paths)."""
    a = a.astype(np.int64)
    bu = b.view(np.uint8).astype(np.int64)
    y = np.zeros(a.shape[:-1] + (b.shape[1],), np.int64)
    for k in range(b.shape[0]):
        y += lut.astype(np.int64)[a[..., k][..., None], bu[k][None, :]]
    y -= zp * b.astype(np.int64).sum(0)
    return y.astype(np.int32)


def np_conv(x, w, lut, zp=0, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1):
    n, c, h, wd = x.shape
    co, cg, kh, kw = w.shape
    sh, sw = strides
    dh, dw = dilations
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])), constant_values=zp)
    oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    og = co // group
    lut64 = lut.astype(np.int64)
    y = np.zeros((n, co, oh, ow), np.int64)
    wu = w.view(np.uint8)
    for o in range(co):
        g = o // og
        for ci in range(cg):
            for i in range(kh):
                for j in range(kw):
                    patch = xp[:, g * cg + ci, i * dh: i * dh + sh * (oh - 1) + 1: sh,
                               j * dw: j * dw + sw * (ow - 1) + 1: sw]
                    y[:, o] += lut64[patch, wu[o, ci, i, j]] - zp * int(w[o, ci, i, j])
    return y.astype(np.int32)


def np_requant(acc: np.ndarray, bias: np.ndarray, mult: np.ndarray, y_zp: int,
               axis: int) -> np.ndarray:
    """The QLinear ops' output stage, independent of the kernels and of
    export/reference_kernels: sat(round_half_even(fp32(wrap32(acc + bias[c])) * m[c]) + y_zp)
    along ``axis`` (numpy fp32 convert and multiply; rint rounds half to even)."""
    shape = [1] * acc.ndim
    shape[axis] = -1
    v = (acc.astype(np.int64) + bias.astype(np.int64).reshape(shape) + 2**31) % 2**32 - 2**31
    m = mult.reshape([1] * acc.ndim) if mult.size == 1 else mult.reshape(shape)
    f = v.astype(np.int32).astype(np.float32) * m.astype(np.float32)
    return np.clip(np.rint(f.astype(np.float64)) + y_zp, 0, 255).astype(np.uint8)


def np_pool(y: np.ndarray, k, s, p) -> np.ndarray:
    """MaxPool (floor mode) of NCHW codes, padding never selected; a loop over windows."""
    n, c, h, w = y.shape
    ph, pw = (h + p[0] + p[2] - k[0]) // s[0] + 1, (w + p[1] + p[3] - k[1]) // s[1] + 1
    out = np.zeros((n, c, max(ph, 0), max(pw, 0)), np.uint8)
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            h0, w0 = i * s[0] - p[0], j * s[1] - p[1]
            out[:, :, i, j] = y[:, :, max(h0, 0):h0 + k[0], max(w0, 0):w0 + k[1]].max(axis=(2, 3))
    return out


def mm_model(zp: bool = True, lut_init: np.ndarray | None = None, rank: int = 2):
    ins = {"A": np.zeros((1,) * rank, np.uint8), "B": np.zeros((1, 1), np.int8),
           "a_zero_point": np.zeros((), np.uint8) if zp else None}
    inits = {}
    if lut_init is not None:
        inits["lut"] = lut_init
    else:
        ins["lut"] = np.zeros((256, 256), np.int32)
    from onnx import TensorProto
    return _unranked(single_node_model(MATMUL, ins, inits, out_types=[TensorProto.INT32],
                                       out_ranks=[rank]))


def _unranked(model):
    """Graph inputs without shapes, so the kernels' own shape checks are what tests see."""
    for i in model.graph.input:
        i.type.tensor_type.ClearField("shape")
    return model


def conv_model(zp: bool = True, **attrs):
    from onnx import TensorProto
    ins = {"X": np.zeros((1, 1, 1, 1), np.uint8), "W": np.zeros((1, 1, 1, 1), np.int8),
           "lut": np.zeros((256, 256), np.int32),
           "x_zero_point": np.zeros((), np.uint8) if zp else None}
    return _unranked(single_node_model(CONV, ins, out_types=[TensorProto.INT32], out_ranks=[4],
                                       **attrs))
