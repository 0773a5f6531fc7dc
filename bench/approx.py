"""Approximate multipliers: steport LUT kernels vs ORT's exact MatMulInteger/ConvInteger on
the same shapes (goal: within 8x for a general LUT, parity for separable LUTs), and vs a
naive LUT gather (torchapprox/AdaPT-style CPU path: index tensor + gather + sum)."""
from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

import steport.train  # noqa: F401
from steport.registry import IR_VERSION, ONNX_OPSET, get

from .common import Context, Row, session, time_session, timeit, torch_threads

MM = get("approx", "ApproxMatMulInteger")
CONV = get("approx", "ApproxConvInteger")


def _luts() -> dict[str, np.ndarray]:
    a = np.arange(256, dtype=np.int64)
    b = np.arange(256, dtype=np.uint8).view(np.int8).astype(np.int64)
    rng = np.random.default_rng(0)
    general = (np.outer(a, b) + rng.integers(-200, 200, (256, 256))).astype(np.int32)
    # errors spanning < 256 values: one byte plane on the VBMI path (docs/approx.md)
    narrow = (np.outer(a, b) + rng.integers(-100, 100, (256, 256))).astype(np.int32)
    m = ~3
    trunc = np.outer(a & m, b & m).astype(np.int32)  # separable
    return {"general": general, "general-1plane": narrow, "separable": trunc}


def _model(op: str, domain: str, inputs, inits: dict, out_rank: int, **attrs) -> onnx.ModelProto:
    names = [n for n, _, _ in inputs] + list(inits)
    node = helper.make_node(op, names, ["Y"], domain=domain or None, **attrs)
    g = helper.make_graph(
        [node], op, [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [None] * out_rank)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    opsets = [helper.make_opsetid("", ONNX_OPSET)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    return helper.make_model(g, opset_imports=opsets, ir_version=IR_VERSION)


def _naive(a: torch.Tensor, b: torch.Tensor, lut_flat: torch.Tensor) -> torch.Tensor:
    """torchapprox-style: materialize [M, K, N] indices, gather, sum over K."""
    idx = a.long().unsqueeze(-1) * 256 + (b.long() & 255).unsqueeze(0)
    return lut_flat[idx].sum(1)


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    rng = np.random.default_rng(0)
    luts = _luts()
    zp = np.array(3, np.uint8)
    mm_shapes = [(256, 256, 64)] if ctx.quick else [(256, 256, 64), (1024, 512, 256)]
    for M, K, N in mm_shapes:
        a = rng.integers(0, 256, (M, K), dtype=np.uint8)
        b = rng.integers(-128, 128, (K, N), dtype=np.int8)
        case = f"matmul {M}x{K}x{N}"
        exact = _model("MatMulInteger", "", [("A", TensorProto.UINT8, [None, K])],
                       {"B": b, "a_zero_point": zp}, 2)
        for t in ctx.threads:
            rows.append(Row("approx", case, "ort-MatMulInteger", t,
                            time_session(session(exact, t, steport_ops=False), {"A": a}, ctx),
                            items=M * K * N))
            for lname, lut in luts.items():
                m = _model(MM.name, MM.domain, [("A", TensorProto.UINT8, [None, K])],
                           {"B": b, "lut": lut, "a_zero_point": zp}, 2)
                rows.append(Row("approx", case, f"steport-{lname}", t,
                                time_session(session(m, t), {"A": a}, ctx),
                                baseline="ort-MatMulInteger", items=M * K * N))
        at, bt = torch.from_numpy(a), torch.from_numpy(b)
        lf = torch.from_numpy(luts["general"]).reshape(-1)
        with torch_threads(1):
            sec = timeit(lambda: _naive(at, bt, lf), ctx)
        rows.append(Row("approx", case, "naive-torch-gather", 1, sec,
                        baseline="ort-MatMulInteger", items=M * K * N))

    conv_cases = [(1, 32, 16, 16, 32, 1)] if ctx.quick else [(1, 32, 16, 16, 32, 1),
                                                          (8, 64, 28, 28, 64, 1),
                                                          (8, 64, 28, 28, 64, 64)]
    for n, c, h, w_, co, grp in conv_cases:
        x = rng.integers(0, 256, (n, c, h, w_), dtype=np.uint8)
        w = rng.integers(-128, 128, (co, c // grp, 3, 3), dtype=np.int8)
        case = f"conv {n}x{c}x{h}x{w_} -> {co} g{grp}"
        attrs = dict(pads=[1, 1, 1, 1], group=grp)
        exact = _model("ConvInteger", "", [("X", TensorProto.UINT8, [None, c, h, w_])],
                       {"W": w.view(np.uint8) ^ np.uint8(0x80), "x_zero_point": zp,
                        "w_zero_point": np.array(128, np.uint8)}, 4, **attrs)
        items = n * co * h * w_ * (c // grp) * 9
        for t in ctx.threads:
            rows.append(Row("approx", case, "ort-ConvInteger", t,
                            time_session(session(exact, t, steport_ops=False), {"X": x}, ctx),
                            items=items))
            for lname, lut in luts.items():
                m = _model(CONV.name, CONV.domain, [("X", TensorProto.UINT8, [None, c, h, w_])],
                           {"W": w, "lut": lut, "x_zero_point": zp}, 4, **attrs)
                rows.append(Row("approx", case, f"steport-{lname}", t,
                                time_session(session(m, t), {"X": x}, ctx),
                                baseline="ort-ConvInteger", items=items))
    return rows
