"""ai.steport.approx export: onnxscript translations and fallback bodies in standard ONNX.

Fallback bodies gather from the flattened LUT at a*256 + uint8(b) and ReduceSum over K, so
stock onnxruntime reproduces the kernels bit for bit (int32 throughout). The zero point is
read through DequantizeLinear(0, 1, zp) = -zp, which also covers an omitted (optional)
zero point: DequantizeLinear treats it as 0."""
from __future__ import annotations

from typing import Sequence

import onnx
from onnx import TensorProto, helper
from onnxscript import INT8, INT32, UINT8, script

from steport.registry import get

from .domains import family_opset, op
from .onnx_utils import attr_const, const, make_function, node, ref_attr

APPROX = family_opset("approx")

MATMUL = get("approx", "ApproxMatMulInteger")
CONV = get("approx", "ApproxConvInteger")
QMATMUL = get("approx", "ApproxQLinearMatMul")
QCONV = get("approx", "ApproxQLinearConv")


@script(op)
def matmul_translation(A: UINT8, B: INT8, lut: INT32, a_zero_point: UINT8) -> INT32:
    return APPROX.ApproxMatMulInteger(A, B, lut, a_zero_point)


@script(op)
def conv_translation(X: UINT8, W: INT8, lut: INT32, x_zero_point: UINT8, strides: Sequence[int],
                     pads: Sequence[int], dilations: Sequence[int], group: int) -> INT32:
    return APPROX.ApproxConvInteger(X, W, lut, x_zero_point, strides=strides, pads=pads,
                                    dilations=dilations, group=group)


def _zero_point_nodes(zp_name: str) -> list[onnx.NodeProto]:
    """-> 'zp_i' (int32 scalar) and 'zp_u8' (uint8 scalar); 0 when the input is omitted."""
    return [
        const("u8_zero", 0, "uint8"),
        const("f_one", 1.0, "float32"),
        node("DequantizeLinear", ["u8_zero", "f_one", zp_name], ["neg_zp_f"]),
        node("Neg", ["neg_zp_f"], ["zp_f"]),
        node("Cast", ["zp_f"], ["zp_i"], to=TensorProto.INT32),
        node("Cast", ["zp_f"], ["zp_u8"], to=TensorProto.UINT8),
    ]


def _lut_sum_nodes(a: str, b: str, out: str) -> list[onnx.NodeProto]:
    """out = sum_k LUT[a[..., m, k], uint8(b[..., k, n])] - zp * sum_k b[..., k, n]
    (a: uint8 [..., M, K]; b: int8 [..., K, N], broadcasting over leading dims)."""
    return [
        const("i_256", 256, "int32"),
        const("i_255", 255, "int32"),
        const("ax_m1", [-1], "int64"),
        const("ax_m2", [-2], "int64"),
        const("flat", [-1], "int64"),
        node("Cast", [a], ["a_i"], to=TensorProto.INT32),
        node("Unsqueeze", ["a_i", "ax_m1"], ["a_col"]),        # [..., M, K, 1]
        node("Mul", ["a_col", "i_256"], ["a_row"]),
        node("Cast", [b], ["b_i"], to=TensorProto.INT32),
        node("BitwiseAnd", ["b_i", "i_255"], ["b_u"]),         # uint8 bit pattern
        node("Add", ["a_row", "b_u"], ["idx"]),                # [..., M, K, N]
        node("Reshape", ["lut", "flat"], ["lut_flat"]),
        node("Gather", ["lut_flat", "idx"], ["prod"], axis=0),
        # per-product correction (LUT[a, b] - zp*b) before the sum: one broadcast, no
        # separately shaped column-sum tensor
        node("Mul", ["zp_i", "b_i"], ["corr"]),
        node("Sub", ["prod", "corr"], ["prod_c"]),
        # Sums wrap modulo 2^32 (docs/ops.md). Stock onnxruntime's int32 ReduceSum saturates
        # instead, so sum in int64 (exact for any K an ONNX tensor can hold) and let the Cast
        # to int32 wrap.
        node("Cast", ["prod_c"], ["prod_64"], to=TensorProto.INT64),
        node("ReduceSum", ["prod_64", "ax_m2"], ["sum_64"], keepdims=0),
        node("Cast", ["sum_64"], [out], to=TensorProto.INT32),
    ]


def matmul_function(node_proto: onnx.NodeProto | None = None) -> onnx.FunctionProto:
    """ApproxMatMulInteger in standard ONNX (Gather on the flat LUT, ReduceSum)."""
    nodes = _zero_point_nodes("a_zero_point")
    nodes += _lut_sum_nodes("A", "B", "Y")
    return make_function(MATMUL, nodes)


def _requant_nodes(acc: str, channel_shape: list[int], out: str) -> list[onnx.NodeProto]:
    """out = QuantizeLinear(fp32(acc + bias) * multiplier, 1, y_zero_point): the
    requantization of docs/ops.md "Integer models" (bias and multiplier reshaped to
    `channel_shape` to broadcast over the channel axis). QuantizeLinear divides by 1.0
    (exact), rounds half to even and saturates; an omitted y_zero_point gives uint8 codes
    with zero point 0."""
    return [
        const("rq_shape", channel_shape, "int64"),
        const("rq_one", 1.0, "float32"),
        node("Reshape", ["bias", "rq_shape"], ["rq_bias"]),
        node("Reshape", ["multiplier", "rq_shape"], ["rq_mult"]),
        node("Add", [acc, "rq_bias"], ["rq_acc"]),       # int32, wraps
        node("Cast", ["rq_acc"], ["rq_accf"], to=TensorProto.FLOAT),
        node("Mul", ["rq_accf", "rq_mult"], ["rq_y"]),
        node("QuantizeLinear", ["rq_y", "rq_one", "y_zero_point"], [out]),
    ]


def qlinear_matmul_function(node_proto: onnx.NodeProto | None = None) -> onnx.FunctionProto:
    """ApproxQLinearMatMul in standard ONNX: the ApproxMatMulInteger body, then the
    requantization per column."""
    nodes = _zero_point_nodes("a_zero_point")
    nodes += _lut_sum_nodes("A", "B", "acc")
    nodes += _requant_nodes("acc", [-1], "Y")
    return make_function(QMATMUL, nodes)


def _scalar(name: str, src: str, i: int) -> list[onnx.NodeProto]:
    return [const(f"{name}_i", i, "int64"), node("Gather", [src, f"{name}_i"], [name], axis=0)]


def _conv_nodes(out: str) -> list[onnx.NodeProto]:
    """ApproxConvInteger's sums into `out` from the inputs X, W, lut, x_zero_point and the
    attributes strides, pads, dilations, group."""
    n = _zero_point_nodes("x_zero_point")
    n += [
        attr_const("strides", "strides", "ints"),
        attr_const("pads", "pads", "ints"),
        attr_const("dilations", "dilations", "ints"),
        attr_const("group_s", "group", "int"),
        const("c0", 0, "int64"), const("c1", 1, "int64"),
        const("v00", [0, 0], "int64"), const("v0", [0], "int64"), const("v2", [2], "int64"),
        const("v4", [4], "int64"), const("vm1", [-1], "int64"), const("ax0", [0], "int64"),
        const("ax1", [1], "int64"),
        node("Slice", ["pads", "v0", "v2"], ["pads_begin"]),
        node("Slice", ["pads", "v2", "v4"], ["pads_end"]),
        node("Concat", ["v00", "pads_begin", "v00", "pads_end"], ["pads8"], axis=0),
        node("Pad", ["X", "pads8", "zp_u8"], ["Xp"], mode="constant"),
        node("Shape", ["Xp"], ["xs"]), node("Shape", ["W"], ["ws"]),
    ]
    n += _scalar("n_b", "xs", 0) + _scalar("hp", "xs", 2) + _scalar("wp", "xs", 3)
    n += _scalar("kh", "ws", 2) + _scalar("kw", "ws", 3) + _scalar("cout", "ws", 0)
    n += _scalar("sh", "strides", 0) + _scalar("sw", "strides", 1)
    n += _scalar("dh", "dilations", 0) + _scalar("dw", "dilations", 1)
    for o, p, k, s, d in (("oh", "hp", "kh", "sh", "dh"), ("ow", "wp", "kw", "sw", "dw")):
        # o = (p - d*(k-1) - 1) / s + 1 ; index grid [o, k] = o_i*s + k_i*d
        n += [
            node("Sub", [k, "c1"], [f"{o}_k1"]), node("Mul", [d, f"{o}_k1"], [f"{o}_ext"]),
            node("Sub", [p, f"{o}_ext"], [f"{o}_t0"]), node("Sub", [f"{o}_t0", "c1"], [f"{o}_t1"]),
            node("Div", [f"{o}_t1", s], [f"{o}_t2"]), node("Add", [f"{o}_t2", "c1"], [o]),
            node("Range", ["c0", o, "c1"], [f"{o}_r"]), node("Mul", [f"{o}_r", s], [f"{o}_rs"]),
            node("Range", ["c0", k, "c1"], [f"{o}_kr"]), node("Mul", [f"{o}_kr", d], [f"{o}_kd"]),
            node("Unsqueeze", [f"{o}_rs", "ax1"], [f"{o}_col"]),
            node("Unsqueeze", [f"{o}_kd", "ax0"], [f"{o}_row"]),
            node("Add", [f"{o}_col", f"{o}_row"], [f"{o}_grid"]),
        ]
    n += [
        node("Gather", ["Xp", "oh_grid"], ["P1"], axis=2),      # [N, C, OH, KH, Wp]
        node("Gather", ["P1", "ow_grid"], ["P2"], axis=4),      # [N, C, OH, KH, OW, KW]
        node("Transpose", ["P2"], ["P3"], perm=[0, 2, 4, 1, 3, 5]),  # [N, OH, OW, C, KH, KW]
        node("Reshape", ["group_s", "vm1"], ["group_v"]),
        node("Reshape", ["n_b", "vm1"], ["n_v"]),
        node("Concat", ["n_v", "vm1", "group_v"], ["p_head"], axis=0),
        node("ReduceProd", ["ws"], ["w_numel"], keepdims=1),
        node("Reshape", ["cout", "vm1"], ["cout_v"]),
        node("Div", ["w_numel", "cout_v"], ["kg_v"]),            # Cg*KH*KW, [1]
        node("Concat", ["p_head", "kg_v"], ["p_shape"], axis=0),
        node("Reshape", ["P3", "p_shape"], ["P4"]),               # [N, L, G, Kg]
        node("Transpose", ["P4"], ["A_p"], perm=[0, 2, 1, 3]),    # [N, G, L, Kg]
        node("Concat", ["group_v", "vm1", "kg_v"], ["w_shape"], axis=0),
        node("Reshape", ["W", "w_shape"], ["W3"]),                # [G, Og, Kg]
        node("Transpose", ["W3"], ["W4"], perm=[0, 2, 1]),        # [G, Kg, Og]
        node("Unsqueeze", ["W4", "ax1"], ["B_p"]),                # [G, 1, Kg, Og]
    ]
    n += _lut_sum_nodes("A_p", "B_p", "Y4")                    # [N, G, L, Og]
    n += [
        node("Transpose", ["Y4"], ["Y5"], perm=[0, 1, 3, 2]),     # [N, G, Og, L]
        node("Reshape", ["oh", "vm1"], ["oh_v"]), node("Reshape", ["ow", "vm1"], ["ow_v"]),
        node("Concat", ["n_v", "cout_v", "oh_v", "ow_v"], ["y_shape"], axis=0),
        node("Reshape", ["Y5", "y_shape"], [out]),
    ]
    return n


def _with_defaults(spec, nodes) -> onnx.FunctionProto:
    """The function with every attribute declared with its registry default."""
    fn = make_function(spec, nodes, attrs=[])
    for a in spec.attrs:
        fn.attribute_proto.append(helper.make_attribute(a.name, a.default))
    return fn


def conv_function(node_proto: onnx.NodeProto | None = None) -> onnx.FunctionProto:
    """ApproxConvInteger in standard ONNX: Pad with the zero-point code, patches by two
    Gathers with index grids built from Range, then the matmul body per group."""
    return _with_defaults(CONV, _conv_nodes("Y"))


def qlinear_conv_function(node_proto: onnx.NodeProto | None = None) -> onnx.FunctionProto:
    """ApproxQLinearConv in standard ONNX: the ApproxConvInteger body, the requantization
    per channel, then MaxPool on the uint8 codes (floor mode; an identity for the default
    1x1 window)."""
    n = _conv_nodes("acc")
    n += _requant_nodes("acc", [-1, 1, 1], "codes")
    n.append(node("MaxPool", ["codes"], ["Y"],
                  kernel_shape=ref_attr("kernel_shape", "pool_kernel", "ints"),
                  strides=ref_attr("strides", "pool_strides", "ints"),
                  pads=ref_attr("pads", "pool_pads", "ints")))
    return _with_defaults(QCONV, n)
