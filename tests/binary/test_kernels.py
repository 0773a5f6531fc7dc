"""BinaryGemm / BinaryConv2d: PyTorch reference vs ORT kernel (each ISA) vs fallback body,
bit-exact, over odd shapes; bad input gives clear ORT errors."""
from __future__ import annotations

import numpy as np
import pytest
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidGraph
import torch
import torch.nn.functional as F

import steport
import steport.ort_ops
from steport.registry import get
from steport.train.ops.binary import (binary_conv2d, binary_gemm, pack_conv_weight, pack_signs,
                                      unpack_signs)

from ..conftest import assert_bitexact, run_fallback, run_steport
from ..helpers import single_node_model

GEMM, CONV = get("binary", "BinaryGemm"), get("binary", "BinaryConv2d")


def sgn(t):
    return torch.where(t >= 0, 1.0, -1.0)


def rand_with_zeros(*shape):
    t = torch.randn(*shape)
    t.view(-1)[::7] = 0.0  # sign(0) = +1 must hold everywhere
    t.view(-1)[1::11] = -0.0
    return t


def gemm_model(pw, s, b, k, rank=2):
    return single_node_model(GEMM, {"A": np.zeros((1,) * rank, np.float32)},
                             {"B": pw.numpy(), "scale": s.numpy(), "bias": b.numpy()}, k=k)


def test_pack_roundtrip_and_layout():
    w = rand_with_zeros(3, 130)
    p = pack_signs(w)
    assert p.dtype == torch.uint64 and p.shape == (3, 3)
    assert torch.equal(unpack_signs(p, 130), sgn(w))
    # bit j of word i is element 64 i + j, 1 = +1, tail bits 0
    w1 = -torch.ones(1, 70)
    w1[0, 0] = w1[0, 65] = 1
    assert pack_signs(w1).view(torch.int64).tolist() == [[1, 2]]


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (1, 64, 1), (3, 70, 5), (16, 200, 33),
                                   (5, 129, 17), (2, 640, 9), (37, 1000, 70),
                                   (8, 64, 3), (100, 300, 130)])  # batched (transposed) path
def test_gemm_bitexact(m, k, n, isa):
    a, w = rand_with_zeros(m, k), torch.randn(n, k)
    s, b = torch.rand(n) + 0.1, torch.randn(n)
    ref = (F.linear(sgn(a), sgn(w)) * s + b).numpy()
    pw = pack_signs(w)
    assert_bitexact(binary_gemm(a, pw, s, b, k).numpy(), ref, "torch deploy op")
    model = gemm_model(pw, s, b, k)
    assert_bitexact(run_steport(model, {"A": a.numpy()})[0], ref, f"kernel[{isa}]")
    assert_bitexact(run_fallback(model, {"A": a.numpy()})[0], ref, "fallback")


@pytest.fixture(params=["amx", "xnor"])
def gemm_path(request, monkeypatch):
    """Batched GEMMs with constant weights run on AMX-INT8 tiles where the CPU and OS allow
    (and enough rows share the weights); STEPORT_BINARY_AMX=0 keeps them on XNOR-popcount."""
    if request.param == "amx" and not steport.ort_ops.build_info()["amx_int8"]:
        pytest.skip("no AMX-INT8 here")
    monkeypatch.setenv("STEPORT_BINARY_AMX", "1" if request.param == "amx" else "0")
    return request.param


@pytest.mark.parametrize("m,k,n", [(32, 1, 1), (33, 64, 31), (40, 65, 33), (70, 127, 64),
                                   (128, 1000, 70), (130, 4100, 40), (200, 129, 257)])
def test_gemm_amx_and_xnor_paths(m, k, n, gemm_path):
    """Row / column / k tails around the 32 x 32 x 64 tile blocks, NaN and -0.0 inputs, and
    stray bits in the weights' last word: both paths equal the PyTorch reference."""
    gen = torch.Generator().manual_seed(m * k + n)
    a, w = rand_with_zeros(m, k), torch.randn(n, k, generator=gen)
    a.view(-1)[3::13] = float("nan")  # NaN -> -1, like sign(NaN >= 0)
    s, b = torch.rand(n, generator=gen) + 0.1, torch.randn(n, generator=gen)
    ref = (F.linear(sgn(a), sgn(w)) * s + b).numpy()
    pw = pack_signs(w).view(torch.int64)
    if k % 64:
        pw[:, -1] |= torch.tensor(-1 << (k % 64))  # garbage tail bits must be ignored
    model = gemm_model(pw.view(torch.uint64), s, b, k)
    for threads in (1, 2):
        assert_bitexact(run_steport(model, {"A": a.numpy()}, threads=threads)[0], ref,
                        f"{gemm_path} {m}x{k}x{n} threads={threads}")


def test_gemm_batched_rank3_and_stray_tail_bits(isa):
    k, n = 100, 7
    a, w = rand_with_zeros(2, 3, k), torch.randn(n, k)
    s, b = torch.rand(n), torch.randn(n)
    ref = (F.linear(sgn(a), sgn(w)) * s + b).numpy()
    pw = pack_signs(w).view(torch.int64)
    pw[:, -1] |= torch.tensor(-1 << 40)  # garbage in the tail bits must be ignored
    pw = pw.view(torch.uint64)
    model = gemm_model(pw, s, b, k, rank=3)
    assert_bitexact(run_steport(model, {"A": a.numpy()})[0], ref, f"kernel[{isa}]")
    assert_bitexact(run_fallback(model, {"A": a.numpy()})[0], ref, "fallback")


def test_gemm_threads_agree():
    k, n = 1000, 300
    a, w = torch.randn(64, k), torch.randn(n, k)
    model = gemm_model(pack_signs(w), torch.rand(n), torch.randn(n), k)
    assert_bitexact(run_steport(model, {"A": a.numpy()}, threads=1)[0],
                    run_steport(model, {"A": a.numpy()}, threads=2)[0])


CONV_CASES = [  # cin, cout, group, kernel, stride, dilation, pads (t, l, b, r), h, w
    (3, 4, 1, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 9, 7),
    (1, 1, 1, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0), 1, 1),
    (70, 6, 2, (3, 3), (2, 2), (2, 2), (2, 1, 0, 3), 11, 10),
    (130, 8, 1, (3, 2), (1, 2), (1, 1), (1, 0, 2, 1), 6, 7),
    (8, 8, 8, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 5, 5),   # depthwise
    (64, 16, 1, (5, 5), (3, 1), (1, 2), (2, 2, 2, 2), 8, 9),
    # several pixel chunks (uneven), output-channel blocks, row tails of the register tiles
    (64, 96, 1, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 10, 13),
    (16, 9, 1, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 12, 12),
    (130, 43, 1, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1), 15, 17),  # strided copies, 3 words
    # > 256 zero-padding patterns: per-(pixel, tap) corrections instead of the table
    (3, 2, 1, (17, 17), (1, 1), (1, 1), (16, 16, 16, 16), 2, 2),
]


@pytest.mark.parametrize("pad_value", [0, -1, 1])
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"c{c[0]}o{c[1]}g{c[2]}k{c[3]}s{c[4]}d{c[5]}")
def test_conv_bitexact(case, pad_value, isa):
    cin, cout, g, ks, st, dl, pads, h, w_ = case
    x, w = rand_with_zeros(2, cin, h, w_), torch.randn(cout, cin // g, *ks)
    s, b = torch.rand(cout), torch.randn(cout)
    # PyTorch reference, written out: pad sign(x) with pad_value, then conv2d.
    xp = F.pad(sgn(x), (pads[1], pads[3], pads[0], pads[2]), value=float(pad_value))
    ref = F.conv2d(xp, sgn(w), None, st, 0, dl, g) * s.reshape(1, -1, 1, 1) + b.reshape(1, -1, 1, 1)
    if pad_value == 0 and pads[0] == pads[2] and pads[1] == pads[3]:
        ref0 = F.conv2d(sgn(x), sgn(w), None, st, (pads[0], pads[1]), dl, g)
        torch.testing.assert_close(ref, ref0 * s.reshape(1, -1, 1, 1) + b.reshape(1, -1, 1, 1),
                                   rtol=0, atol=0)
    ref = ref.numpy()
    pw = pack_conv_weight(w)
    attrs = dict(kernel_shape=list(ks), strides=list(st), pads=list(pads), dilations=list(dl),
                 group=g, pad_value=pad_value)
    assert_bitexact(binary_conv2d(x, pw, s, b, **attrs).numpy(), ref, "torch deploy op")
    model = single_node_model(CONV, {"X": x.numpy()},
                              {"W": pw.numpy(), "scale": s.numpy(), "bias": b.numpy()}, **attrs)
    assert_bitexact(run_steport(model, {"X": x.numpy()})[0], ref, f"kernel[{isa}]")
    assert_bitexact(run_fallback(model, {"X": x.numpy()})[0], ref, "fallback")


def test_conv_default_attributes():
    x, w = torch.randn(1, 5, 6, 6), torch.randn(3, 5, 3, 3)
    s, b = torch.ones(3), torch.zeros(3)
    ref = F.conv2d(sgn(x), sgn(w)).numpy()
    model = single_node_model(CONV, {"X": x.numpy()},
                              {"W": pack_conv_weight(w).numpy(), "scale": s.numpy(), "bias": b.numpy()})
    assert_bitexact(run_steport(model, {"X": x.numpy()})[0], ref)
    assert_bitexact(run_fallback(model, {"X": x.numpy()})[0], ref)


# ---- bad input ---------------------------------------------------------------------

def test_gemm_bad_inputs():
    k, n = 100, 4
    a = np.ones((2, k), np.float32)
    s, b = np.ones(n, np.float32), np.zeros(n, np.float32)
    ok = pack_signs(torch.randn(n, k)).numpy()
    bad_words = single_node_model(GEMM, {"A": a}, {"B": ok[:, :1], "scale": s, "bias": b}, k=k,
                                  check=False)
    with pytest.raises(Exception, match=r"B \(packed weights\) must have shape \[N, 2\]"):
        run_steport(bad_words, {"A": a})
    with pytest.raises(Exception, match=r"last dimension k = 100"):
        run_steport(single_node_model(GEMM, {"A": a}, {"B": ok, "scale": s, "bias": b}, k=k),
                    {"A": np.ones((2, 99), np.float32)})
    with pytest.raises(Exception, match=r"scale must have shape \[4\]"):
        run_steport(single_node_model(GEMM, {"A": a}, {"B": ok, "scale": s[:3], "bias": b}, k=k,
                                      check=False),
                    {"A": a})
    # int64 weights: ORT rejects the type at session creation, from the registry's port types
    with pytest.raises(InvalidGraph, match=r"Type 'tensor\(int64\)' of input parameter \(B\)"):
        run_steport(single_node_model(GEMM, {"A": a}, {"B": ok.view(np.int64), "scale": s,
                                                       "bias": b}, k=k, check=False), {"A": a})
    for kk in (0, -1, (1 << 24) + 1):
        with pytest.raises(Exception, match=r"'k'.*out of range"):
            steport.session(single_node_model(GEMM, {"A": a}, {"B": ok, "scale": s, "bias": b},
                                              k=kk, check=False).SerializeToString())
    with pytest.raises(ValueError, match="BinaryGemm"):
        binary_gemm(torch.from_numpy(a), torch.from_numpy(ok[:, :1]), torch.ones(n),
                    torch.zeros(n), k)


def conv_model(x, w, cout, **attrs):
    return single_node_model(CONV, {"X": x}, {"W": w, "scale": np.ones(cout, np.float32),
                                              "bias": np.zeros(cout, np.float32)},
                             check=False, **attrs)


def test_conv_bad_inputs():
    x = np.ones((1, 6, 5, 5), np.float32)
    w = pack_conv_weight(torch.randn(4, 3, 3, 3)).numpy()  # for group = 2
    with pytest.raises(Exception, match=r"group 4 must divide C_in 6"):
        run_steport(conv_model(x, w, 4, group=4), {"X": x})
    with pytest.raises(Exception, match=r"group 3 must divide C_out 4"):
        run_steport(conv_model(x, w, 4, group=3), {"X": x})
    with pytest.raises(Exception, match=r"kernel_shape .* does not match W"):
        run_steport(conv_model(x, w, 4, group=2, kernel_shape=[2, 2]), {"X": x})
    with pytest.raises(Exception, match=r"smaller than the dilated kernel"):
        run_steport(conv_model(x, w, 4, group=2, dilations=[3, 3]), {"X": x})
    w2 = np.zeros((4, 3, 3, 2), np.uint64)
    with pytest.raises(Exception, match=r"W last dimension must be ceil"):
        run_steport(conv_model(x, w2, 4, group=2), {"X": x})
    with pytest.raises(Exception, match=r"X must be NCHW"):
        run_steport(conv_model(x[0], w, 4, group=2), {"X": x[0]})
    for attrs, what in [({"pad_value": 2}, "pad_value"), ({"strides": [0, 1]}, "strides"),
                        ({"pads": [1, 1]}, "pads"), ({"dilations": [1, -1]}, "dilations"),
                        ({"group": 0}, "group")]:
        with pytest.raises(Exception, match=what):
            steport.session(conv_model(x, w, 4, **attrs).SerializeToString())
