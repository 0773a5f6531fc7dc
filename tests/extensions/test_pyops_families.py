"""Python debug kernels (numpy, inside ORT via onnxruntime-extensions PyOps) vs the C++ kernels
for the binary, approx and logic families: bit-identical on single-node models (odd shapes,
every padding mode, groups, strides, dilations, optional zero points, both gate-id dtypes)
and on one exported zoo model per family (per node, and through ``steport verify``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import TensorProto

import steport
from steport.export import pyops
from steport.registry import get
from steport.train.ops.binary import pack_conv_weight, pack_signs

from ..approx.common import exact_lut, random_lut
from ..helpers import single_node_model

GEMM, BCONV = get("binary", "BinaryGemm"), get("binary", "BinaryConv2d")
AMM, ACONV = get("approx", "ApproxMatMulInteger"), get("approx", "ApproxConvInteger")
LAYER, NET = get("logic", "LogicLayer"), get("logic", "LogicNet")


def _both(model, feeds):
    cpp = steport.session(model.SerializeToString(), threads=1).run(None, feeds)
    py = pyops.python_session(model).run(None, feeds)
    return cpp, py


def assert_bitexact(model, feeds):
    cpp, py = _both(model, feeds)
    for c, p in zip(cpp, py):
        assert c.dtype == p.dtype and c.shape == p.shape, (c.dtype, p.dtype, c.shape, p.shape)
        if c.dtype.kind == "f":  # compare bit patterns (-0.0, NaN payloads)
            c, p = c.view(f"u{c.itemsize}"), p.view(f"u{p.itemsize}")
        np.testing.assert_array_equal(p, c)
    return cpp


def _floats(rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    special = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-38, -1e-38], np.float32)
    flat[:min(flat.size, special.size)] = special[:flat.size]
    return x


def _affine(rng, n):
    return (rng.random(n).astype(np.float32) + np.float32(0.1),
            rng.standard_normal(n).astype(np.float32))


# ---- binary ---------------------------------------------------------------------------------

@pytest.mark.parametrize("lead,k,n", [((3,), 1, 1), ((4,), 64, 5), ((2, 3), 65, 3),
                                      ((9,), 130, 17), ((), 77, 6), ((8,), 200, 64)])
def test_binary_gemm(lead, k, n):
    rng = np.random.default_rng(k * 31 + n)
    s, b = _affine(rng, n)
    w = torch.from_numpy(rng.standard_normal((n, k)).astype(np.float32))
    packed = pack_signs(w).numpy()
    packed[:, -1] |= np.uint64(~((1 << (k % 64)) - 1) & (2**64 - 1)) if k % 64 else 0  # tail junk
    a = _floats(rng, lead + (k,))
    m = single_node_model(GEMM, {"A": a}, {"B": packed, "scale": s, "bias": b}, k=k)
    assert_bitexact(m, {"A": a})


# (n, c_in, h, w, c_out, kh, kw, strides, pads [t, l, b, r], dilations, group)
CONV_CASES = [
    (1, 3, 5, 5, 4, 3, 3, [1, 1], [1, 1, 1, 1], [1, 1], 1),
    (2, 6, 7, 9, 4, 3, 2, [2, 1], [1, 0, 2, 1], [1, 2], 2),
    (1, 70, 6, 5, 3, 3, 3, [1, 2], [2, 1, 0, 3], [2, 1], 1),  # 2 words per tap
    (2, 6, 8, 7, 6, 3, 3, [1, 1], [1, 2, 1, 0], [1, 1], 6),  # depthwise
    (1, 9, 4, 11, 6, 1, 5, [3, 2], [0, 2, 1, 2], [1, 1], 3),
]


@pytest.mark.parametrize("pad_value", [-1, 0, 1])
@pytest.mark.parametrize("case", CONV_CASES, ids=range(len(CONV_CASES)))
def test_binary_conv2d(case, pad_value):
    n, c_in, h, wd, c_out, kh, kw, strides, pads, dil, group = case
    rng = np.random.default_rng(hash((c_in, kh, kw, pad_value)) % 2**32)
    s, b = _affine(rng, c_out)
    w = torch.from_numpy(rng.standard_normal((c_out, c_in // group, kh, kw)).astype(np.float32))
    x = _floats(rng, (n, c_in, h, wd))
    attrs = dict(strides=strides, pads=pads, dilations=dil, group=group, pad_value=pad_value)
    if pad_value == 0:  # kernel_shape is optional: once given, once omitted
        attrs["kernel_shape"] = [kh, kw]
    m = single_node_model(BCONV, {"X": x}, {"W": pack_conv_weight(w).numpy(), "scale": s,
                                           "bias": b}, **attrs)
    assert_bitexact(m, {"X": x})


# ---- approx ---------------------------------------------------------------------------------

def _big_lut(seed=5):
    """Entries near +-2^30: sums wrap modulo 2^32 within a few terms."""
    rng = np.random.default_rng(seed)
    return rng.integers(-(2**31), 2**31 - 1, (256, 256), dtype=np.int64).astype(np.int32)


LUTS = {"asym": random_lut, "exact": exact_lut, "wrap": _big_lut}


@pytest.mark.parametrize("lut_name", sorted(LUTS))
@pytest.mark.parametrize("a_shape,n,zp", [((1, 1), 1, None), ((5, 7), 3, 0), ((13, 33), 9, 131),
                                         ((2, 3, 65), 17, 255), ((4, 200), 64, 7)])
def test_approx_matmul(lut_name, a_shape, n, zp):
    rng = np.random.default_rng(sum(a_shape) + n)
    lut = LUTS[lut_name]()
    if lut_name == "exact":
        lut = lut.reshape(65536)  # the flat form is accepted too
    a = rng.integers(0, 256, a_shape, dtype=np.uint8)
    b = rng.integers(-128, 128, (a_shape[-1], n), dtype=np.int8)
    inits = {"B": b, "lut": lut}
    if zp is not None:
        inits["a_zero_point"] = np.array(zp, np.uint8)
    m = single_node_model(AMM, {"A": a}, inits, out_types=[TensorProto.INT32])
    assert_bitexact(m, {"A": a})


# (n, c_in, h, w, c_out, kh, kw, strides, pads, dilations, group, zp)
ACONV_CASES = [
    (1, 3, 5, 5, 4, 3, 3, [1, 1], [1, 1, 1, 1], [1, 1], 1, None),
    (2, 6, 7, 9, 4, 3, 2, [2, 1], [1, 0, 2, 1], [1, 2], 2, 128),
    (1, 5, 6, 5, 3, 2, 3, [1, 3], [3, 1, 0, 2], [2, 1], 1, 17),
    (2, 6, 8, 7, 6, 3, 3, [1, 1], [1, 2, 1, 0], [1, 1], 6, 255),  # depthwise
    (1, 9, 4, 11, 6, 1, 5, [3, 2], [0, 2, 1, 2], [1, 1], 3, 0),
]


@pytest.mark.parametrize("lut_name", ["asym", "wrap"])
@pytest.mark.parametrize("case", ACONV_CASES, ids=range(len(ACONV_CASES)))
def test_approx_conv(case, lut_name):
    n, c_in, h, wd, c_out, kh, kw, strides, pads, dil, group, zp = case
    rng = np.random.default_rng(c_in * 7 + kh)
    x = rng.integers(0, 256, (n, c_in, h, wd), dtype=np.uint8)
    w = rng.integers(-128, 128, (c_out, c_in // group, kh, kw), dtype=np.int8)
    inits = {"W": w, "lut": LUTS[lut_name]()}
    if zp is not None:
        inits["x_zero_point"] = np.array([zp], np.uint8)  # [1] form
    m = single_node_model(ACONV, {"X": x}, inits, out_types=[TensorProto.INT32],
                          strides=strides, pads=pads, dilations=dil, group=group)
    assert_bitexact(m, {"X": x})


def test_approx_padding_uses_zero_point_code():
    """A LUT that is nonzero only in row zp: only padded taps (code zp) contribute."""
    zp = 9
    lut = np.zeros((256, 256), np.int32)
    lut[zp] = np.arange(256, dtype=np.int32) + 1
    x = np.full((1, 1, 3, 3), 200, np.uint8)
    w = np.ones((1, 1, 3, 3), np.int8)
    m = single_node_model(ACONV, {"X": x}, {"W": w, "lut": lut,
                                           "x_zero_point": np.array(zp, np.uint8)},
                          out_types=[TensorProto.INT32], pads=[1, 1, 1, 1])
    y = assert_bitexact(m, {"X": x})[0][0, 0]
    # padded taps add LUT[zp, 1] = 2 each; every tap subtracts zp * w = 9
    padded = np.array([[5, 3, 5], [3, 0, 3], [5, 3, 5]])
    np.testing.assert_array_equal(y, padded * 2 - 9 * 9)


# ---- logic ----------------------------------------------------------------------------------

def _net_tensors(rng, n_in, sizes, gdtype):
    ia, ib, widths = [], [], [n_in] + list(sizes[:-1])
    for w_in, size in zip(widths, sizes):
        ia.append(rng.integers(0, w_in, size))
        ib.append(rng.integers(0, w_in, size))
    g = rng.integers(0, 16, sum(sizes))
    return (np.concatenate(ia).astype(np.int64), np.concatenate(ib).astype(np.int64),
            g.astype(gdtype))


def _bits_input(rng, n, width):
    x = (rng.integers(0, 2, (n, width)) * rng.standard_normal((n, width))).astype(np.float32)
    flat = x.reshape(-1)
    special = np.array([np.nan, -0.0, np.inf, 1e-40, -3.0], np.float32)
    flat[:min(5, flat.size)] = special[:min(5, flat.size)]
    return x


@pytest.mark.parametrize("gdtype", [np.uint8, np.int64])
@pytest.mark.parametrize("n,n_in,out", [(1, 1, 1), (63, 5, 16), (65, 37, 101), (200, 64, 300)])
def test_logic_layer(gdtype, n, n_in, out):
    rng = np.random.default_rng(n + n_in + out)
    ia, ib, g = _net_tensors(rng, n_in, [out], gdtype)
    x = _bits_input(rng, n, n_in)
    m = single_node_model(LAYER, {"X": x}, {"idx_a": ia, "idx_b": ib, "gate_ids": g},
                          out_ranks=[2])
    assert_bitexact(m, {"X": x})


@pytest.mark.parametrize("gdtype", [np.uint8, np.int64])
@pytest.mark.parametrize("n,n_in,sizes,k,tau", [(1, 3, [4], 2, 1.0), (63, 20, [37, 50, 30], 3, 7.0),
                                                (65, 48, [64, 64], 8, 3.0),
                                                (200, 100, [120, 90, 100], 10, 10.0),
                                                (64, 10, [20], 2, 0.1)])
def test_logic_net(gdtype, n, n_in, sizes, k, tau):
    rng = np.random.default_rng(n + sum(sizes))
    ia, ib, g = _net_tensors(rng, n_in, sizes, gdtype)
    x = _bits_input(rng, n, n_in)
    m = single_node_model(NET, {"X": x}, {"idx_a": ia, "idx_b": ib, "gate_ids": g},
                          out_ranks=[2], layer_sizes=sizes, num_classes=k, tau=tau)
    assert_bitexact(m, {"X": x})


def test_logic_net_bad_index_is_a_clear_error():
    rng = np.random.default_rng(0)
    ia, ib, g = _net_tensors(rng, 4, [6, 4], np.uint8)
    ib[7] = 6  # layer 1 reads a width-6 layer
    m = single_node_model(NET, {"X": np.zeros((1, 1), np.float32)},
                          {"idx_a": ia, "idx_b": ib, "gate_ids": g}, out_ranks=[2], check=False,
                          layer_sizes=[6, 4], num_classes=2)
    with pytest.raises(pyops.PythonBackendError, match=r"LogicNet layer 1: idx_b out of range"):
        pyops.python_session(m).run(None, {"X": np.ones((3, 4), np.float32)})


# ---- whole exported models, one per family --------------------------------------------------

def _zoo(name, digits):
    from steport.export import export_model
    from steport.train.models import build_model

    torch.manual_seed(0)
    if name == "binary_mlp":
        model = build_model("binary_mlp", hidden=64, depth=2)
    elif name == "approx_cnn":
        model = build_model("approx_cnn", width=4, multiplier="drum_k4")
    else:
        model = build_model("logic_net", widths=[120, 100], tau=5.0)
    x = digits.train.x[:64]
    if name == "logic_net":
        x = x.reshape(len(x), -1)
    model.train()
    with torch.no_grad():  # BatchNorm statistics / observed activation ranges
        for _ in range(2):
            model(x)
    model.eval()
    return export_model(model, x[:2]), x[:32].numpy()


@pytest.mark.parametrize("name", ["binary_mlp", "approx_cnn", "logic_net"])
def test_zoo_model_python_backend(name, digits, tmp_path, capsys):
    from steport.cli import main
    from steport.export import save

    proto, x = _zoo(name, digits)
    family = {"binary_mlp": "binary", "approx_cnn": "approx", "logic_net": "logic"}[name]
    custom = [n for n in proto.graph.node if n.domain.startswith("ai.steport.")]
    expect = {"binary_mlp": {"BinaryGemm"},
              "approx_cnn": {"ApproxConvInteger", "ApproxMatMulInteger"},
              "logic_net": {"LogicNet"}}[name]
    assert all(n.domain == f"ai.steport.{family}" for n in custom)
    assert {n.op_type for n in custom} == expect
    assert not pyops.kernels_cover(proto)
    rep = pyops.localize_mismatch(proto, {proto.graph.input[0].name: x})
    assert rep.ok and len(rep.nodes) >= len(custom), rep.table()

    p = tmp_path / f"{name}.onnx"
    save(proto, p)
    assert main(["verify", str(p), "--backend", "steport", "--backend", "python",
                 "--batch", "16"]) == 0
    assert "ort+steport vs ort+python" in capsys.readouterr().out
