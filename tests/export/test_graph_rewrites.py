"""Exact graph rewrites at export (export/graph_rewrites.py): the deploy form's
Div/Round/Add/Clip/Cast quantizer chains become QuantizeLinear, with the same codes bit for
bit (halfway cases, saturation, zero points) and nothing else touched."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from steport.export import export_model
from steport.export.graph_rewrites import fuse_quantize_chains
from steport.train.layers.approx import ApproxConv2d, ApproxLinear


def chain_model(scale: float, zp: float | None, clip=(0.0, 255.0), extra_use=False):
    f = lambda v, n: numpy_helper.from_array(np.array(v, np.float32), n)  # noqa: E731
    nodes = [helper.make_node("Div", ["x", "s"], ["d"]), helper.make_node("Round", ["d"], ["r"])]
    last = "r"
    if zp is not None:
        nodes.append(helper.make_node("Add", ["r", "z"], ["a"]))
        last = "a"
    nodes += [helper.make_node("Clip", [last, "lo", "hi"], ["c"]),
              helper.make_node("Cast", ["c"], ["y"], to=TensorProto.UINT8)]
    outs = [helper.make_tensor_value_info("y", TensorProto.UINT8, None)]
    if extra_use:
        outs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, None))
    inits = [f(scale, "s"), f(clip[0], "lo"), f(clip[1], "hi")] + ([f(zp, "z")] if zp is not None else [])
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                          outs, inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def run(m: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]


@pytest.mark.parametrize("scale", [0.0123457, 3.1 / 255, 0.1, 7e-3])
@pytest.mark.parametrize("zp", [None, 0.0, 37.0, 255.0])
def test_chain_becomes_quantize_linear_with_the_same_codes(scale, zp):
    rng = np.random.default_rng(0)
    s = np.float32(scale)
    k = rng.integers(-300, 300, 1 << 14).astype(np.float32)
    x = np.concatenate([rng.standard_normal(1 << 14).astype(np.float32) * 3,
                        (k + np.float32(0.5)) * s,                       # halfway codes
                        np.nextafter((k + np.float32(0.5)) * s, np.float32(1e9)),
                        np.array([1e30, -1e30, 0.0, -0.0], np.float32)])
    m = chain_model(scale, zp)
    before = run(m, x)
    assert fuse_quantize_chains(m) == 1
    assert [n.op_type for n in m.graph.node] == ["QuantizeLinear"]
    np.testing.assert_array_equal(run(m, x), before)
    ref = torch.clamp(torch.round(torch.from_numpy(x) / torch.tensor(s)) + (zp or 0), 0, 255)
    np.testing.assert_array_equal(before, ref.to(torch.uint8).numpy())


@pytest.mark.parametrize("kwargs", [dict(zp=3.5), dict(zp=300.0), dict(zp=None, clip=(0.0, 15.0)),
                                    dict(zp=None, extra_use=True), dict(scale=-0.1, zp=None)])
def test_other_chains_are_left_alone(kwargs):
    m = chain_model(kwargs.pop("scale", 0.1), **kwargs)
    ops = [n.op_type for n in m.graph.node]
    assert fuse_quantize_chains(m) == 0
    assert [n.op_type for n in m.graph.node] == ops


def test_approx_export_quantizes_with_quantize_linear():
    torch.manual_seed(0)
    model = torch.nn.Sequential(ApproxConv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Flatten(), ApproxLinear(8 * 8 * 8, 5))
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 3, 8, 8))
    model.eval()
    proto = export_model(model, torch.zeros(2, 3, 8, 8))
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("QuantizeLinear") == 2 and "Round" not in ops and "Div" not in ops, ops
