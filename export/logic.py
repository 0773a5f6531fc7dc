"""ai.steport.logic export: onnxscript translations and fallback bodies (standard ONNX).

The fallback bodies evaluate gates with one Gather from the flattened 16 x 4 truth table at
``4 * gate_id + 2a + b``; LogicNet runs its layers in an ONNX Loop over ``layer_sizes``
(the activation width changes per iteration), so one function body serves every node
whatever its layer count."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper
from onnxscript import FLOAT, INT64, UINT8, script

from steport.registry import get
from steport.registry.logic import GATE_TRUTH_TABLE

from .domains import family_opset, op
from .onnx_utils import attr_const, const, make_function, node

LOGIC = family_opset("logic")

LOGIC_LAYER = get("logic", "LogicLayer")
LOGIC_NET = get("logic", "LogicNet")


@script(op)
def logic_layer_translation(x: FLOAT, idx_a: INT64, idx_b: INT64, gate_ids: UINT8) -> FLOAT:
    return LOGIC.LogicLayer(x, idx_a, idx_b, gate_ids)


@script(op)
def logic_net_translation(x: FLOAT, idx_a: INT64, idx_b: INT64, gate_ids: UINT8,
                          layer_sizes: Sequence[int], num_classes: int, tau: float) -> FLOAT:
    return LOGIC.LogicNet(x, idx_a, idx_b, gate_ids, layer_sizes=layer_sizes,
                          num_classes=num_classes, tau=tau)


def _truth_table() -> np.ndarray:
    return np.array(GATE_TRUTH_TABLE, dtype=np.float32).reshape(-1)


def _gate_nodes(h: str, ia: str, ib: str, g64: str, out: str, p: str) -> list[onnx.NodeProto]:
    """out = TT[4*g + 2*bit(h[:, ia]) + bit(h[:, ib])] (float 0/1); h holds 0/1 already."""
    return [
        node("Gather", [h, ia], [f"{p}a"], axis=1),
        node("Gather", [h, ib], [f"{p}b"], axis=1),
        node("Cast", [f"{p}a"], [f"{p}ai"], to=TensorProto.INT64),
        node("Cast", [f"{p}b"], [f"{p}bi"], to=TensorProto.INT64),
        node("Mul", [f"{p}ai", "two_i"], [f"{p}a2"]),
        node("Mul", [g64, "four_i"], [f"{p}g4"]),
        node("Add", [f"{p}a2", f"{p}bi"], [f"{p}ab"]),
        node("Add", [f"{p}ab", f"{p}g4"], [f"{p}k"]),
        node("Gather", ["tt", f"{p}k"], [out], axis=0),
    ]


def _prologue() -> list[onnx.NodeProto]:
    return [
        const("tt", _truth_table()),
        const("two_i", 2, "int64"),
        const("four_i", 4, "int64"),
        node("Cast", ["gate_ids"], ["g64"], to=TensorProto.INT64),
        node("Cast", ["X"], ["xb"], to=TensorProto.BOOL),  # x != 0 (NaN -> 1)
        node("Cast", ["xb"], ["h0"], to=TensorProto.FLOAT),
    ]


def logic_layer_function(node_proto: onnx.NodeProto | None = None) -> onnx.FunctionProto:
    nodes = _prologue() + _gate_nodes("h0", "idx_a", "idx_b", "g64", "Y", "l_")
    return make_function(LOGIC_LAYER, nodes)


def logic_net_function(node_proto: onnx.NodeProto | None = None) -> onnx.FunctionProto:
    # Loop body: iteration i slices layer i's [start, end) out of the concatenated tensors.
    body_nodes = [
        node("Gather", ["starts", "i"], ["s0"], axis=0),
        node("Gather", ["ends", "i"], ["e0"], axis=0),
        node("Unsqueeze", ["s0", "axis0"], ["s1"]),
        node("Unsqueeze", ["e0", "axis0"], ["e1"]),
        node("Slice", ["idx_a", "s1", "e1"], ["ia"]),
        node("Slice", ["idx_b", "s1", "e1"], ["ib"]),
        node("Slice", ["g64", "s1", "e1"], ["gl"]),
        *_gate_nodes("h_in", "ia", "ib", "gl", "h_out", "b_"),
        node("Identity", ["cond_in"], ["cond_out"]),
    ]
    body = helper.make_graph(
        body_nodes, "logic_layer_step",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("h_in", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("h_out", TensorProto.FLOAT, None)])
    nodes = _prologue() + [
        attr_const("sizes", "layer_sizes", "ints"),
        attr_const("k", "num_classes", "int"),
        attr_const("tau", "tau", "float"),
        const("axis0", [0], "int64"),
        const("true", True, "bool"),
        node("CumSum", ["sizes", "axis0_s"], ["ends"]),
        node("Sub", ["ends", "sizes"], ["starts"]),
        node("Size", ["sizes"], ["n_layers"]),
        node("Loop", ["n_layers", "true", "h0"], ["h_last"], body=body),
        # GroupSum: [N, k*g] -> [N, k, g] -> sum -> / tau. g comes from the attributes, not
        # -1 (Reshape cannot infer a -1 when N = 0; 0 = copy N) nor from Shape(h_last),
        # which ORT's ReshapeFusion turns back into -1.
        node("Unsqueeze", ["k", "axis0"], ["k1"]),
        const("zero1", [0], "int64"),
        const("last1", [-1], "int64"),
        node("Gather", ["sizes", "last1"], ["width1"], axis=0),
        node("Div", ["width1", "k1"], ["g1"]),
        node("Concat", ["zero1", "k1", "g1"], ["gshape"], axis=0),
        node("Reshape", ["h_last", "gshape"], ["grouped"]),
        const("axis2", [2], "int64"),
        node("ReduceSum", ["grouped", "axis2"], ["counts"], keepdims=0),
        node("Div", ["counts", "tau"], ["Y"]),
    ]
    nodes.insert(len(_prologue()) + 5, const("axis0_s", 0, "int64"))
    # tau has a default (1.0): declared as an attribute_proto so a node may omit it
    fn = make_function(LOGIC_NET, nodes, attrs=[a.name for a in LOGIC_NET.attrs if a.required])
    for a in LOGIC_NET.attrs:
        if not a.required:
            fn.attribute_proto.append(helper.make_attribute(a.name, a.default))
    return fn
