"""Binary: steport BinaryGemm / BinaryConv2d vs ORT fp32 MatMul / Conv on the same shapes."""
from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

import steport.train  # noqa: F401
from steport.registry import IR_VERSION, ONNX_OPSET, get
from steport.train.ops.binary import pack_conv_weight, pack_signs

from .common import Context, Row, session, time_session

GEMM, CONV = get("binary", "BinaryGemm"), get("binary", "BinaryConv2d")


def _model(nodes, x_shape, inits, domain=None) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)
    g = helper.make_graph(nodes, "g", [x], [y], [numpy_helper.from_array(v, k) for k, v in inits.items()])
    ops = [helper.make_opsetid("", ONNX_OPSET)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(g, opset_imports=ops, ir_version=IR_VERSION)


def gemm_models(k: int, n: int):
    w = torch.randn(n, k)
    s, b = np.ones(n, np.float32), np.zeros(n, np.float32)
    binm = _model([helper.make_node("BinaryGemm", ["X", "B", "s", "b"], ["Y"], domain=GEMM.domain, k=k)],
                  [None, k], {"B": pack_signs(w).numpy(), "s": s, "b": b}, GEMM.domain)
    fp = _model([helper.make_node("MatMul", ["X", "Wt"], ["Y"])], [None, k],
                {"Wt": np.ascontiguousarray(w.t().numpy())})
    return binm, fp


def conv_models(c: int):
    w = torch.randn(c, c, 3, 3)
    s, b = np.ones(c, np.float32), np.zeros(c, np.float32)
    binm = _model([helper.make_node("BinaryConv2d", ["X", "W", "s", "b"], ["Y"], domain=CONV.domain,
                                    kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
                  [None, c, None, None], {"W": pack_conv_weight(w).numpy(), "s": s, "b": b}, CONV.domain)
    fp = _model([helper.make_node("Conv", ["X", "W"], ["Y"], pads=[1, 1, 1, 1])],
                [None, c, None, None], {"W": w.numpy()})
    return binm, fp


def run(ctx: Context) -> list[Row]:
    rows = []
    rng = np.random.default_rng(0)
    sizes = [1024, 4096]
    batches = [1, 16] if ctx.quick else [1, 16, 256]
    for k in sizes:
        for n in sizes:
            binm, fp = gemm_models(k, n)
            for m in batches:
                x = rng.standard_normal((m, k)).astype(np.float32)
                case = f"gemm m={m} k={k} n={n}"
                for t in ctx.threads:
                    rows.append(Row("binary", case, "ort-fp32-matmul", t,
                                    time_session(session(fp, t, steport_ops=False), {"X": x}, ctx)))
                    rows.append(Row("binary", case, "steport", t,
                                    time_session(session(binm, t), {"X": x}, ctx),
                                    baseline="ort-fp32-matmul"))
    convs = [(64, 56), (128, 28), (256, 14)]
    for c, hw in convs:
        binm, fp = conv_models(c)
        x = rng.standard_normal((1, c, hw, hw)).astype(np.float32)
        case = f"conv3x3 c={c} {hw}x{hw}"
        for t in ctx.threads:
            rows.append(Row("binary", case, "ort-fp32-conv", t,
                            time_session(session(fp, t, steport_ops=False), {"X": x}, ctx)))
            rows.append(Row("binary", case, "steport", t,
                            time_session(session(binm, t), {"X": x}, ctx), baseline="ort-fp32-conv"))
    return rows
