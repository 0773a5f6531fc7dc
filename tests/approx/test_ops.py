"""ApproxMatMulInteger / ApproxConvInteger: numpy loops vs PyTorch op vs C++ kernel (each
ISA, general + separable + depthwise paths) vs fallback body; bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import steport.train  # noqa: F401
from steport.train.ops.approx import use_backend

from ..conftest import assert_bitexact, run_fallback, run_steport
from .common import LUTS, conv_model, mm_model, np_conv, np_matmul, random_lut

U8 = torch.uint8


def torch_mm(a, b, lut, zp):
    return torch.ops.steport.approx_matmul_integer(
        torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(lut),
        torch.tensor(zp, dtype=U8)).numpy()


def torch_conv(x, w, lut, zp, strides, pads, dilations, group):
    return torch.ops.steport.approx_conv_integer(
        torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(lut),
        torch.tensor(zp, dtype=U8), strides, pads, dilations, group).numpy()


MM_SHAPES = [((1, 1), 1), ((5, 37), 11), ((33, 64), 17), ((2, 3, 19, 9), 8), ((70, 300), 40), ((600, 20), 9),  # 600 rows: several passes/threads
             ((3, 70), 300)]  # few rows: the column-gather path, 2 column chunks


@pytest.mark.parametrize("lut_name", sorted(LUTS))
@pytest.mark.parametrize("a_shape,n", MM_SHAPES)
@pytest.mark.parametrize("zp", [0, 131])
def test_matmul_bitexact(lut_name, a_shape, n, zp, isa):
    rng = np.random.default_rng(hash((a_shape, n, zp)) % 2**32)
    lut = LUTS[lut_name]()
    a = rng.integers(0, 256, a_shape, dtype=np.uint8)
    b = rng.integers(-128, 128, (a_shape[-1], n), dtype=np.int8)
    ref = np_matmul(a, b, lut, zp)
    model = mm_model(rank=a.ndim)
    feeds = {"A": a, "B": b, "lut": lut, "a_zero_point": np.array(zp, np.uint8)}
    assert_bitexact(run_steport(model, feeds)[0], ref, f"kernel[{isa}]")
    with use_backend("kernel"):  # the training front end of the same kernels
        assert_bitexact(torch_mm(a, b, lut, zp), ref, f"torch on the kernel[{isa}]")
    if isa != "portable":  # the reference and fallback do not depend on the ISA: check once
        return
    with use_backend("reference"):
        assert_bitexact(torch_mm(a, b, lut, zp), ref, "torch reference")
    if a.size * n < 200_000:
        assert_bitexact(run_fallback(model, feeds)[0], ref, "fallback")


def test_operand_order_matters():
    """The asymmetric LUT gives a different answer with swapped operands: a transposed
    indexing bug anywhere would show."""
    lut = random_lut()
    assert (lut != lut.T).any()
    a = np.array([[5]], np.uint8)
    b = np.array([[7]], np.int8)
    assert torch_mm(a, b, lut, 0)[0, 0] == lut[5, 7]
    assert run_steport(mm_model(), {"A": a, "B": b, "lut": lut, "a_zero_point": np.array(0, np.uint8)})[0][0, 0] == lut[5, 7]
    assert lut[5, 7] != lut[7, 5]


def test_matmul_zero_point_optional():
    rng = np.random.default_rng(0)
    lut = random_lut()
    a = rng.integers(0, 256, (4, 6), dtype=np.uint8)
    b = rng.integers(-128, 128, (6, 3), dtype=np.int8)
    model = mm_model(zp=False)
    ref = np_matmul(a, b, lut, 0)
    assert_bitexact(run_steport(model, {"A": a, "B": b, "lut": lut})[0], ref, "kernel")
    assert_bitexact(run_fallback(model, {"A": a, "B": b, "lut": lut})[0], ref, "fallback")


def test_matmul_lut_flat_and_wrapping():
    """LUT [65536] is accepted; int32 sums wrap like the kernels' int32 accumulators."""
    lut = np.full((256, 256), 2**30, np.int32)
    a = np.zeros((2, 5), np.uint8)
    b = np.zeros((5, 2), np.int8)
    ref = np.full((2, 2), np.int32(np.int64(5 * 2**30) - 2**32), np.int32)
    assert_bitexact(torch_mm(a, b, lut, 0), ref, "torch wrap")
    feeds = {"A": a, "B": b, "lut": lut.reshape(-1), "a_zero_point": np.array(0, np.uint8)}
    assert_bitexact(run_steport(mm_model(), feeds)[0], ref, "kernel wrap")


CONV_CASES = [
    # x shape, w shape, strides, pads, dilations, group
    ((2, 3, 8, 8), (4, 3, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),
    ((1, 4, 7, 6), (6, 2, 3, 2), [2, 1], [1, 2, 0, 1], [1, 2], 2),
    ((3, 5, 9, 11), (5, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 5),     # depthwise
    ((2, 6, 10, 23), (6, 1, 3, 5), [2, 3], [2, 0, 1, 3], [2, 1], 6),     # depthwise, strided
    ((1, 8, 13, 29), (8, 1, 3, 3), [1, 1], [0, 0, 0, 0], [1, 1], 8),     # depthwise, wide rows
    ((2, 1, 5, 5), (3, 1, 5, 5), [1, 1], [0, 0, 0, 0], [1, 1], 1),
    ((1, 16, 6, 6), (32, 16, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1], 1),   # pointwise
    ((5, 2, 4, 4), (2, 2, 2, 2), [2, 2], [3, 3, 3, 3], [1, 1], 1),       # mostly padding
    ((1, 2, 20, 20), (9, 2, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),     # 400 rows, 1 task
]


@pytest.mark.parametrize("lut_name", sorted(LUTS))
@pytest.mark.parametrize("case", CONV_CASES, ids=[str(i) for i in range(len(CONV_CASES))])
@pytest.mark.parametrize("zp", [0, 77])
def test_conv_bitexact(lut_name, case, zp, isa):
    xs, ws, strides, pads, dil, group = case
    rng = np.random.default_rng(len(xs) * 7 + zp)
    lut = LUTS[lut_name]()
    x = rng.integers(0, 256, xs, dtype=np.uint8)
    w = rng.integers(-128, 128, ws, dtype=np.int8)
    ref = np_conv(x, w, lut, zp, strides, pads, dil, group)
    model = conv_model(strides=strides, pads=pads, dilations=dil, group=group)
    feeds = {"X": x, "W": w, "lut": lut, "x_zero_point": np.array(zp, np.uint8)}
    assert_bitexact(run_steport(model, feeds)[0], ref, f"kernel[{isa}]")
    with use_backend("kernel"):
        assert_bitexact(torch_conv(x, w, lut, zp, strides, pads, dil, group), ref,
                        f"torch on the kernel[{isa}]")
    if isa != "portable":
        return
    with use_backend("reference"):
        assert_bitexact(torch_conv(x, w, lut, zp, strides, pads, dil, group), ref,
                        "torch reference")
    assert_bitexact(run_fallback(model, feeds)[0], ref, "fallback")


def test_conv_default_attributes_and_no_zero_point():
    rng = np.random.default_rng(1)
    lut = random_lut()
    x = rng.integers(0, 256, (2, 3, 5, 5), dtype=np.uint8)
    w = rng.integers(-128, 128, (2, 3, 3, 3), dtype=np.int8)
    model = conv_model(zp=False)
    ref = np_conv(x, w, lut)
    assert_bitexact(run_steport(model, {"X": x, "W": w, "lut": lut})[0], ref, "kernel")
    assert_bitexact(run_fallback(model, {"X": x, "W": w, "lut": lut})[0], ref, "fallback")


def test_exact_lut_conv_equals_integer_conv():
    """With the exact LUT the op is the integer conv of (x - zp) and w."""
    rng = np.random.default_rng(2)
    lut = LUTS["exact"]()
    x = rng.integers(0, 256, (2, 4, 6, 6), dtype=np.uint8)
    w = rng.integers(-128, 128, (4, 2, 3, 3), dtype=np.int8)
    zp = 100
    ref = torch.nn.functional.conv2d(torch.from_numpy(x).double() - zp, torch.from_numpy(w).double(),
                                     padding=1, groups=2).numpy().astype(np.int32)
    model = conv_model(pads=[1, 1, 1, 1], group=2)
    feeds = {"X": x, "W": w, "lut": lut, "x_zero_point": np.array(zp, np.uint8)}
    assert_bitexact(run_steport(model, feeds)[0], ref, "kernel")
    assert_bitexact(torch_conv(x, w, lut, zp, [1, 1], [1, 1, 1, 1], [1, 1], 2), ref, "torch")


# ---- bad input ----------------------------------------------------------------------
def _mm_feeds(**over):
    f = {"A": np.zeros((2, 3), np.uint8), "B": np.zeros((3, 2), np.int8),
         "lut": np.zeros((256, 256), np.int32), "a_zero_point": np.array(0, np.uint8)}
    f.update(over)
    return f


@pytest.mark.parametrize("over,msg", [
    ({"lut": np.zeros((256, 255), np.int32)}, r"lut must be int32 \[256, 256\]"),
    ({"lut": np.zeros((128,), np.int32)}, r"lut must be int32 \[256, 256\]"),
    ({"B": np.zeros((4, 2), np.int8)}, r"K mismatch"),
    ({"a_zero_point": np.zeros((2,), np.uint8)}, r"a_zero_point must be a scalar"),
    ({"B": np.zeros((3,), np.int8)}, r"B must be \[K, N\]"),
])
def test_matmul_bad_input_kernel(over, msg):
    with pytest.raises(Exception, match=msg):
        run_steport(mm_model(), _mm_feeds(**over))


def test_conv_bad_input_kernel():
    f = {"X": np.zeros((1, 4, 5, 5), np.uint8), "W": np.zeros((2, 3, 3, 3), np.int8),
         "lut": np.zeros((256, 256), np.int32), "x_zero_point": np.array(0, np.uint8)}
    with pytest.raises(Exception, match="channels do not fit group"):
        run_steport(conv_model(), f)
    f["W"] = np.zeros((2, 4, 9, 9), np.int8)
    with pytest.raises(Exception, match="kernel larger than the padded input"):
        run_steport(conv_model(), f)
    f["W"] = np.zeros((2, 4, 3, 3), np.int8)
    f["lut"] = np.zeros((256, 256, 1), np.int32)
    with pytest.raises(Exception, match="lut must be int32"):
        run_steport(conv_model(), f)
    with pytest.raises(Exception, match="strides values must be in"):
        run_steport(conv_model(strides=[0, 1]), {**f, "lut": np.zeros((256, 256), np.int32)})


def test_torch_bad_input():
    a = torch.zeros(2, 3, dtype=U8)
    b = torch.zeros(3, 2, dtype=torch.int8)
    lut = torch.zeros(256, 256, dtype=torch.int32)
    zp = torch.tensor(0, dtype=U8)
    mm = torch.ops.steport.approx_matmul_integer
    with pytest.raises(TypeError, match="LUT must be int32"):
        mm(a, b, lut.to(torch.int64), zp)
    with pytest.raises(ValueError, match=r"LUT must have shape \[256, 256\]"):
        mm(a, b, lut[:100], zp)
    with pytest.raises(TypeError, match="B must be int8"):
        mm(a, b.to(U8), lut, zp)
    with pytest.raises(TypeError, match="A must be uint8"):
        mm(a.to(torch.int8), b, lut, zp)
    with pytest.raises(ValueError, match="a_zero_point must be a uint8 scalar"):
        mm(a, b, lut, zp.to(torch.int8))
    with pytest.raises(ValueError, match="K mismatch"):
        mm(a, b[:2], lut, zp)
    conv = torch.ops.steport.approx_conv_integer
    x = torch.zeros(1, 4, 5, 5, dtype=U8)
    with pytest.raises(ValueError, match="channels do not fit"):
        conv(x, torch.zeros(2, 3, 3, 3, dtype=torch.int8), lut, zp, [1, 1], [0] * 4, [1, 1], 1)
    with pytest.raises(ValueError, match="pads must be 4 ints"):
        conv(x, torch.zeros(2, 4, 3, 3, dtype=torch.int8), lut, zp, [1, 1], [0, 0], [1, 1], 1)
    with pytest.raises(TypeError, match="W must be int8"):
        conv(x, torch.zeros(2, 4, 3, 3, dtype=U8), lut, zp, [1, 1], [0] * 4, [1, 1], 1)
