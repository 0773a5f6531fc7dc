"""ApproxQLinearConv / ApproxQLinearMatMul (docs/ops.md): the LUT sums, the requantization
sat(round_half_even(fp32(acc + bias) * multiplier) + y_zp) and the fused max-pool. The
kernels (each ISA; the pool runs on the int32 sums, min for negative multipliers), the
fallback body in stock ORT and the numpy kernel against an independent loop reference."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from steport.export import pyops
from steport.registry import get

from ..conftest import assert_bitexact, run_fallback, run_steport
from ..helpers import single_node_model
from .common import LUTS, np_conv, np_matmul, np_pool, np_requant

QCONV = get("approx", "ApproxQLinearConv")
QMM = get("approx", "ApproxQLinearMatMul")


def qconv_model(**attrs) -> onnx.ModelProto:
    ins = {"X": np.zeros((1, 1, 1, 1), np.uint8), "W": np.zeros((1, 1, 1, 1), np.int8),
           "lut": np.zeros((256, 256), np.int32), "bias": np.zeros(1, np.int32),
           "multiplier": np.zeros(1, np.float32), "x_zero_point": np.zeros((), np.uint8),
           "y_zero_point": np.zeros((), np.uint8)}
    return single_node_model(QCONV, ins, out_types=[TensorProto.UINT8], out_ranks=[4], **attrs)


def qmm_model(rank: int = 2) -> onnx.ModelProto:
    ins = {"A": np.zeros((1,) * rank, np.uint8), "B": np.zeros((1, 1), np.int8),
           "lut": np.zeros((256, 256), np.int32), "bias": np.zeros(1, np.int32),
           "multiplier": np.zeros(1, np.float32), "a_zero_point": np.zeros((), np.uint8),
           "y_zero_point": np.zeros((), np.uint8)}
    return single_node_model(QMM, ins, out_types=[TensorProto.UINT8], out_ranks=[rank])


def _multipliers(rng, acc: np.ndarray, c: int, kind: str) -> np.ndarray:
    """Multipliers that spread the sums over the whole code range (and past it)."""
    m = (80.0 / (acc.std() + 1.0) * (rng.random(c) + 0.5)).astype(np.float32)
    if kind == "signed":  # BN sign flips: negative channels pool with min
        m[::2] *= -1
    elif kind == "zero":
        m[1::3] = 0.0
    elif kind == "tensor":
        m = m[:1]
    return m


# (shape of X, C_out, kernel, strides, pads, dilations, group, pool kernel/strides/pads)
CONVS = [
    ((2, 5, 9, 11), 6, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, ((2, 2), (2, 2), (0, 0, 0, 0))),
    ((1, 8, 16, 16), 12, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, ((2, 2), (2, 2), (0, 0, 0, 0))),
    ((1, 4, 12, 13), 4, 3, (1, 1), (1, 1, 1, 1), (1, 1), 4, ((3, 3), (2, 2), (1, 1, 1, 1))),
    ((2, 3, 10, 10), 5, 3, (2, 2), (0, 1, 2, 0), (1, 2), 1, ((2, 3), (1, 2), (1, 0, 0, 2))),
    ((1, 6, 7, 9), 4, 1, (1, 1), (0, 0, 0, 0), (1, 1), 2, ((1, 1), (1, 1), (0, 0, 0, 0))),
    ((3, 2, 34, 40), 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, ((2, 2), (2, 2), (0, 0, 0, 0))),
    # 2x2 pool with bottom / right pads on odd sizes: the last windows are one row / column
    ((2, 4, 5, 7), 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, ((2, 2), (2, 2), (0, 0, 1, 1))),
    # Separable LUTs (exact, trunc) on AVX-512 VNNI requantize and pool in the GEMM's tiles
    # (FusesCodes): rows of 32, 16 and 8 pixels in 64-pixel panels, groups, no pool with a
    # partial last panel; 6 x 16 (96 pixels, not whole panels) stays unfused.
    ((2, 8, 32, 32), 7, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, ((2, 2), (2, 2), (0, 0, 0, 0))),
    ((3, 8, 16, 16), 6, 3, (1, 1), (1, 1, 1, 1), (1, 1), 2, ((2, 2), (2, 2), (0, 0, 0, 0))),
    ((1, 8, 8, 8), 13, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, ((2, 2), (2, 2), (0, 0, 0, 0))),
    ((1, 5, 14, 14), 6, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, ((1, 1), (1, 1), (0, 0, 0, 0))),
    ((1, 4, 6, 16), 4, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, ((2, 2), (2, 2), (0, 0, 0, 0))),
]


@pytest.mark.parametrize("lut_name", sorted(LUTS))
@pytest.mark.parametrize("case", range(len(CONVS)))
@pytest.mark.parametrize("mkind", ["channel", "signed", "zero", "tensor"])
def test_qconv_bitexact(lut_name, case, mkind, isa):
    xs, co, k, st, pads, dil, group, (pk, ps, pp) = CONVS[case]
    rng = np.random.default_rng(case * 7 + len(mkind))
    lut = LUTS[lut_name]()
    x = rng.integers(0, 256, xs, dtype=np.uint8)
    w = rng.integers(-127, 128, (co, xs[1] // group, k, k), dtype=np.int8)
    bias = rng.integers(-40000, 40000, co, dtype=np.int32)
    x_zp, y_zp = 17, 100
    attrs = dict(strides=list(st), pads=list(pads), dilations=list(dil), group=group,
                 pool_kernel=list(pk), pool_strides=list(ps), pool_pads=list(pp))
    acc = np_conv(x, w, lut, x_zp, st, pads, dil, group)
    mult = _multipliers(rng, acc, co, mkind)
    ref = np_pool(np_requant(acc, bias, mult, y_zp, 1), pk, ps, pp)
    assert len(np.unique(ref)) > 10 or mkind == "zero", "the case must exercise the code range"
    feeds = {"X": x, "W": w, "lut": lut, "bias": bias, "multiplier": mult,
             "x_zero_point": np.array(x_zp, np.uint8), "y_zero_point": np.array(y_zp, np.uint8)}
    model = qconv_model(**attrs)
    assert_bitexact(run_steport(model, feeds)[0], ref, f"kernel[{isa}]")
    if isa != "portable":
        return
    assert_bitexact(pyops.approx_q_linear_conv(**{k.lower(): v for k, v in feeds.items()},
                                               **attrs), ref, "numpy kernel")
    if x.size * co < 40_000:
        assert_bitexact(run_fallback(model, feeds)[0], ref, "fallback")


@pytest.mark.parametrize("xs,pool", [((1, 500, 32, 32), True), ((1, 500, 32, 30), False)])
def test_qconv_fused_row_blocks(xs, pool, isa):
    """500 input channels: the conv runs in blocks of output rows (29 rounded to 28 pooled: whole
    64-pixel panels; 31 unpooled: a partial panel at each block's end), each block's codes
    at their place."""
    rng = np.random.default_rng(xs[3])
    lut = LUTS["trunc"]()
    x = rng.integers(0, 256, xs, dtype=np.uint8)
    w = rng.integers(-127, 128, (3, xs[1], 3, 3), dtype=np.int8)
    bias = rng.integers(-40000, 40000, 3, dtype=np.int32)
    acc = np_conv(x, w, lut, 9, (1, 1), (1, 1, 1, 1))
    mult = _multipliers(rng, acc, 3, "signed")
    pk = [2, 2] if pool else [1, 1]
    ref = np_pool(np_requant(acc, bias, mult, 60, 1), pk, pk, [0, 0, 0, 0])
    feeds = {"X": x, "W": w, "lut": lut, "bias": bias, "multiplier": mult,
             "x_zero_point": np.array(9, np.uint8), "y_zero_point": np.array(60, np.uint8)}
    model = qconv_model(pads=[1, 1, 1, 1], pool_kernel=pk, pool_strides=pk)
    for threads in (1, 2):
        assert_bitexact(run_steport(model, feeds, threads)[0], ref, f"kernel[{isa}] {threads} threads")


@pytest.mark.parametrize("lut_name", sorted(LUTS))
@pytest.mark.parametrize("a_shape,n", [((1, 1), 1), ((3, 70), 33), ((2, 5, 40), 17), ((65, 20), 300)])
@pytest.mark.parametrize("mkind", ["channel", "signed", "tensor"])
def test_qmatmul_bitexact(lut_name, a_shape, n, mkind, isa):
    rng = np.random.default_rng(a_shape[-1] + n)
    lut = LUTS[lut_name]()
    a = rng.integers(0, 256, a_shape, dtype=np.uint8)
    b = rng.integers(-128, 128, (a_shape[-1], n), dtype=np.int8)
    bias = rng.integers(-3000, 3000, n, dtype=np.int32)
    a_zp, y_zp = 3, 128
    acc = np_matmul(a, b, lut, a_zp)
    mult = _multipliers(rng, acc, n, mkind)
    ref = np_requant(acc, bias, mult, y_zp, acc.ndim - 1)
    feeds = {"A": a, "B": b, "lut": lut, "bias": bias, "multiplier": mult,
             "a_zero_point": np.array(a_zp, np.uint8), "y_zero_point": np.array(y_zp, np.uint8)}
    model = qmm_model(rank=a.ndim)
    assert_bitexact(run_steport(model, feeds)[0], ref, f"kernel[{isa}]")
    if isa != "portable":
        return
    assert_bitexact(pyops.approx_q_linear_matmul(a, b, lut, bias, mult, feeds["a_zero_point"],
                                                 feeds["y_zero_point"]), ref, "numpy kernel")
    assert_bitexact(run_fallback(model, feeds)[0], ref, "fallback")


def test_requant_rounding_and_saturation(isa):
    """Sums placed on the halfway points, the saturation edges and past them (a 1x1 conv with
    the exact LUT: acc = x * w), including a bias that wraps int32."""
    x = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16)
    w = np.array([1, -1, 1, 1], np.int8).reshape(4, 1, 1, 1)
    bias = np.array([0, 0, 2**31 - 100, -7], np.int32)
    mult = np.array([0.5, 0.5, 1.0, 2.5], np.float32)  # .5 ties at odd sums
    feeds = {"X": x, "W": w, "lut": LUTS["exact"](), "bias": bias, "multiplier": mult,
             "x_zero_point": np.array(0, np.uint8), "y_zero_point": np.array(3, np.uint8)}
    acc = np_conv(x, w, feeds["lut"])
    ref = np_requant(acc, bias, mult, 3, 1)
    assert {0, 255} <= set(np.unique(ref).tolist())
    for pool in ({}, dict(pool_kernel=[2, 2], pool_strides=[2, 2])):
        model = qconv_model(**pool)
        want = np_pool(ref, [2, 2], [2, 2], [0, 0, 0, 0]) if pool else ref
        assert_bitexact(run_steport(model, feeds)[0], want, f"kernel[{isa}] {pool}")
        if isa == "portable":
            assert_bitexact(run_fallback(model, feeds)[0], want, f"fallback {pool}")


def test_omitted_zero_points():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (1, 2, 6, 6), dtype=np.uint8)
    w = rng.integers(-128, 128, (3, 2, 3, 3), dtype=np.int8)
    bias = np.zeros(3, np.int32)
    mult = np.full(1, 3e-4, np.float32)
    lut = LUTS["asym"]()
    ins = {"X": x, "W": w, "lut": lut, "bias": bias, "multiplier": mult}
    model = single_node_model(QCONV, ins, out_types=[TensorProto.UINT8], out_ranks=[4])
    ref = np_requant(np_conv(x, w, lut), bias, mult, 0, 1)
    assert_bitexact(run_steport(model, ins)[0], ref, "kernel")
    assert_bitexact(run_fallback(model, ins)[0], ref, "fallback")


@pytest.mark.parametrize("change,match", [
    ({"multiplier": np.array([np.nan], np.float32)}, "finite"),
    ({"multiplier": np.array([1.0, np.inf, 1.0], np.float32)}, "finite"),
    ({"multiplier": np.ones(2, np.float32)}, "multiplier must be"),
    ({"multiplier": np.ones(3, np.float64)}, "multiplier"),
    ({"bias": np.zeros(2, np.int32)}, "bias must be"),
    ({"bias": np.zeros((3, 1), np.int32)}, "bias must be"),
    ({"bias": np.zeros(3, np.int64)}, "bias"),
    ({"y_zero_point": np.array([1, 2], np.uint8)}, "y_zero_point"),
])
def test_qconv_bad_inputs(change, match):
    feeds = {"X": np.zeros((1, 2, 5, 5), np.uint8), "W": np.zeros((3, 2, 3, 3), np.int8),
             "lut": LUTS["exact"](), "bias": np.zeros(3, np.int32),
             "multiplier": np.ones(3, np.float32), "y_zero_point": np.array(0, np.uint8)}
    feeds.update(change)
    ins = {k: v for k, v in feeds.items()}
    model = single_node_model(QCONV, ins, out_types=[TensorProto.UINT8], out_ranks=[4],
                              check=False)
    with pytest.raises(Exception, match=match):
        run_steport(model, feeds)


@pytest.mark.parametrize("attrs,match", [
    (dict(pool_kernel=[2, 2], pool_pads=[2, 0, 0, 0]), "pool_pads"),
    (dict(pool_kernel=[1, 1], pool_pads=[0, 0, 0, 1]), "pool_pads"),
    (dict(pool_kernel=[9, 9]), "pool_kernel larger"),
    (dict(pool_kernel=[0, 2]), "pool_kernel"),
    (dict(pool_strides=[2]), "pool_strides"),
])
def test_qconv_bad_pool(attrs, match):
    feeds = {"X": np.zeros((1, 2, 5, 5), np.uint8), "W": np.zeros((3, 2, 3, 3), np.int8),
             "lut": LUTS["exact"](), "bias": np.zeros(3, np.int32),
             "multiplier": np.ones(3, np.float32)}
    model = single_node_model(QCONV, dict(feeds), out_types=[TensorProto.UINT8],
                              out_ranks=[4], check=False, **attrs)
    with pytest.raises(Exception, match=match):
        run_steport(model, feeds)
