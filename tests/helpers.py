"""Builders for single-node test models (onnx.helper), shared by op tests."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from steport.export import finalize
from steport.registry import DOMAIN_VERSION, IR_VERSION, ONNX_OPSET, OpSpec

NP_TO_ONNX = {np.dtype(k): v for k, v in {
    "float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16, "float64": TensorProto.DOUBLE,
    "int8": TensorProto.INT8, "uint8": TensorProto.UINT8, "int16": TensorProto.INT16,
    "int32": TensorProto.INT32, "int64": TensorProto.INT64, "uint64": TensorProto.UINT64,
    "uint16": TensorProto.UINT16, "bool": TensorProto.BOOL}.items()}


def single_node_model(spec: OpSpec, inputs: dict[str, np.ndarray | None],
                      initializers: dict[str, np.ndarray] | None = None,
                      out_types: list[int] | None = None, out_ranks: list[int] | None = None,
                      check: bool = True,
                      version: int | None = None, **attrs) -> onnx.ModelProto:
    """One node of ``spec``: ``inputs`` become graph inputs (None = omitted optional input),
    ``initializers`` become initializers; fallback function and metadata attached."""
    initializers = initializers or {}
    names, graph_inputs = [], []
    for port in spec.inputs:
        if port.name in initializers:
            names.append(port.name)
        elif port.name in inputs and inputs[port.name] is not None:
            arr = inputs[port.name]
            names.append(port.name)
            graph_inputs.append(helper.make_tensor_value_info(
                port.name, NP_TO_ONNX[arr.dtype], [None] * arr.ndim if arr.ndim else []))
        else:
            names.append("")
    while names and names[-1] == "":
        names.pop()
    outs = [p.name for p in spec.outputs]
    out_types = out_types or [TensorProto.FLOAT] * len(outs)
    first = next((v for v in inputs.values() if v is not None), np.zeros(1))
    out_ranks = out_ranks or [np.ndim(first)] * len(outs)
    node = helper.make_node(spec.name, names, outs, domain=spec.domain, name="node0", **attrs)
    graph = helper.make_graph(
        [node], "g", graph_inputs,
        [helper.make_tensor_value_info(o, t, [None] * r) for o, t, r in zip(outs, out_types, out_ranks)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[
        helper.make_opsetid("", ONNX_OPSET),
        helper.make_opsetid(spec.domain, version or DOMAIN_VERSION)], ir_version=IR_VERSION)
    return finalize(model, check=check)


def feeds_for(inputs: dict[str, np.ndarray | None]) -> dict[str, np.ndarray]:
    return {k: v for k, v in inputs.items() if v is not None}


def calibrate_for_integer_export(model, shape=(3, 16, 16), input_scale: float = 1.0,
                                 input_shift: float = 0.0):
    """Integer-export test models: random weights, BN statistics and quantizer ranges from a
    few training-mode batches of ``randn * input_scale + input_shift``, then BN affine
    parameters of both signs, including a zero scale (a constant channel), so folding is
    exercised. Returns the model in eval mode."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(32, *shape) * input_scale + input_shift)
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.weight.uniform_(-1.5, 1.5)
                m.weight[0] = 0.0
                m.bias.uniform_(-0.5, 0.5)
    return model.eval()


def ort_session(proto: onnx.ModelProto, optimized: str | None = None):
    """Stock onnxruntime (no steport ops), 2 threads; ``optimized``: where ORT writes the
    graph it ran (to check fusions)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    if optimized:
        so.optimized_model_filepath = optimized
    return ort.InferenceSession(proto.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
