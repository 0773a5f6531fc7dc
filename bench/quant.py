"""PACT: steport kernel vs the same math as standard ONNX ops in ORT, vs PyTorch."""
from __future__ import annotations

import numpy as np
import onnx
import onnx.inliner
import torch

import steport.train  # noqa: F401  (registers steport::pact)
from onnx import TensorProto, helper

from steport.export.quant import pact_function
from steport.registry import IR_VERSION, ONNX_OPSET, get

from .common import Context, Row, session, time_session, timeit, torch_threads

SPEC = get("quant", "Pact")


def _model(inline_standard: bool) -> onnx.ModelProto:
    """One Pact node; with inline_standard the node is replaced by its fallback body's
    standard ONNX ops (what stock ORT runs)."""
    alpha = onnx.numpy_helper.from_array(np.array(3.0, np.float32), "alpha")
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [None])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None])
    node = helper.make_node("Pact", ["X", "alpha"], ["Y"], domain=SPEC.domain, bits=4)
    graph = helper.make_graph([node], "pact", [x], [y], [alpha])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET),
                                                helper.make_opsetid(SPEC.domain, 1)],
                          ir_version=IR_VERSION)
    if inline_standard:
        m.functions.append(pact_function(node))
        m = onnx.inliner.inline_local_functions(m)
    return m


def run(ctx: Context) -> list[Row]:
    rows = []
    sizes = [1 << 16, 1 << 20] if ctx.quick else [1 << 16, 1 << 20, 1 << 24]
    custom, standard = _model(False), _model(True)
    for n in sizes:
        x = (np.random.default_rng(0).standard_normal(n) * 3).astype(np.float32)
        xt = torch.from_numpy(x)
        alpha = torch.tensor(3.0)
        case = f"n={n}"
        for t in ctx.threads:
            rows.append(Row("pact", case, "ort-standard-ops", t,
                            time_session(session(standard, t, steport_ops=False), {"X": x}, ctx),
                            items=n))
            rows.append(Row("pact", case, "steport", t,
                            time_session(session(custom, t), {"X": x}, ctx),
                            baseline="ort-standard-ops", items=n))
            with torch_threads(t):
                sec = timeit(lambda: torch.ops.steport.pact(xt, alpha, 4), ctx)
            rows.append(Row("pact", case, "torch", t, sec, baseline="ort-standard-ops", items=n))
    return rows
