"""ai.steport.binary export: onnxscript translations and fallback bodies.

The fallback bodies unpack the weight bits with BitShift/BitwiseAnd, binarize the input
with Where(x >= 0, 1, -1) (never a bare Sign: sign(0) = +1 here), then run MatMul / Conv on
+-1 floats: integer-valued sums below 2^24 are exact in float32 whatever the summation order,
so they are bit-exact with the XNOR-popcount kernels. Scale then bias, as the kernels do."""
from __future__ import annotations

from typing import Sequence

import onnx
from onnx import AttributeProto, TensorProto, helper
from onnxscript import FLOAT, UINT64, script

from steport.registry import get

from .domains import family_opset, op
from .onnx_utils import attr_const, const, make_function, node

BINARY = family_opset("binary")

GEMM = get("binary", "BinaryGemm")
CONV = get("binary", "BinaryConv2d")


@script(op)
def binary_gemm_translation(a: FLOAT, b: UINT64, scale: FLOAT, bias: FLOAT, k: int) -> FLOAT:
    return BINARY.BinaryGemm(a, b, scale, bias, k=k)


@script(op)
def binary_conv2d_translation(x: FLOAT, w: UINT64, scale: FLOAT, bias: FLOAT,
                              kernel_shape: Sequence[int], strides: Sequence[int],
                              pads: Sequence[int], dilations: Sequence[int], group: int,
                              pad_value: int) -> FLOAT:
    return BINARY.BinaryConv2d(x, w, scale, bias, kernel_shape=kernel_shape, strides=strides,
                               pads=pads, dilations=dilations, group=group, pad_value=pad_value)


def _sign_nodes(x: str, out: str) -> list[onnx.NodeProto]:
    """out = +1 where x >= 0 else -1 (NaN -> -1, as the kernels and torch.where)."""
    return [const("zero_f", 0.0, "float32"), const("one_f", 1.0, "float32"),
            const("mone_f", -1.0, "float32"),
            node("GreaterOrEqual", [x, "zero_f"], [f"{x}_ge"]),
            node("Where", [f"{x}_ge", "one_f", "mone_f"], [out])]


def _unpack_nodes(packed: str, out: str, keep_dims: int) -> list[onnx.NodeProto]:
    """packed [..., KW] uint64 -> out [..., KW*64] float of +-1 (bit 1 = +1, LSB first).
    ``keep_dims`` leading dims are kept by Reshape (0 = copy)."""
    return [
        const("shifts", list(range(64)), "uint64"),
        const("one_u", 1, "uint64"),
        const("two_f", 2.0, "float32"),
        const("flat_shape", [0] * keep_dims + [-1], "int64"),
        const("last_axis", [-1], "int64"),
        node("Unsqueeze", [packed, "last_axis"], ["p_u"]),
        node("BitShift", ["p_u", "shifts"], ["p_s"], direction="RIGHT"),
        node("BitwiseAnd", ["p_s", "one_u"], ["p_b"]),
        node("Reshape", ["p_b", "flat_shape"], ["p_flat"]),
        node("Cast", ["p_flat"], ["p_f"], to=TensorProto.FLOAT),
        node("Mul", ["p_f", "two_f"], ["p_2"]),
        node("Sub", ["p_2", "one_f"], [out]),
    ]


def _with_defaults(f: onnx.FunctionProto, spec) -> onnx.FunctionProto:
    """Attributes with defaults become attribute_proto entries so a node may omit them."""
    defaults = {a.name: a.default for a in spec.attrs if not a.required and a.default is not None}
    keep = [a for a in f.attribute if a not in defaults]
    del f.attribute[:]
    f.attribute.extend(keep)
    for name, v in defaults.items():
        f.attribute_proto.append(helper.make_attribute(name, list(v) if isinstance(v, tuple) else v))
    return f


def binary_gemm_function(node_proto: onnx.NodeProto | None = None) -> onnx.FunctionProto:
    nodes = [
        *_sign_nodes("A", "sA"),
        *_unpack_nodes("B", "w_all", keep_dims=1),            # [N, KW*64]
        attr_const("k_i", "k", "int"),
        const("zero_i", [0], "int64"),
        node("Reshape", ["k_i", "last_axis"], ["k_v"]),
        node("Slice", ["w_all", "zero_i", "k_v", "last_axis"], ["w_pm"]),  # [N, K]
        node("Transpose", ["w_pm"], ["w_t"], perm=[1, 0]),
        node("MatMul", ["sA", "w_t"], ["dot"]),
        node("Mul", ["dot", "scale"], ["scaled"]),
        node("Add", ["scaled", "bias"], ["Y"]),
    ]
    return make_function(GEMM, nodes)


def binary_conv2d_function(node_proto: onnx.NodeProto | None = None) -> onnx.FunctionProto:
    def ref(name, kind):
        a = AttributeProto()
        a.name, a.ref_attr_name = name, name
        a.type = {"ints": AttributeProto.INTS, "int": AttributeProto.INT}[kind]
        return a

    nodes = [
        *_sign_nodes("X", "sX"),
        *_unpack_nodes("W", "w_all", keep_dims=3),            # [Co, KH, KW, CWd*64]
        # C_in per group = X.shape[1] / group: slice the unpacked channels to it.
        attr_const("group_i", "group", "int"),
        node("Shape", ["X"], ["x_shape"], start=1, end=2),
        node("Reshape", ["group_i", "last_axis"], ["group_v"]),
        node("Div", ["x_shape", "group_v"], ["cin_g"]),
        const("zero_i", [0], "int64"),
        node("Slice", ["w_all", "zero_i", "cin_g", "last_axis"], ["w_pm"]),
        node("Transpose", ["w_pm"], ["w_oihw"], perm=[0, 3, 1, 2]),
        # pads [t, l, b, r] -> Pad's [0, 0, t, l, 0, 0, b, r], padded taps = pad_value.
        attr_const("pads_i", "pads", "ints"),
        const("zero2", [0, 0], "int64"),
        const("s0", [0], "int64"), const("s2", [2], "int64"), const("s4", [4], "int64"),
        node("Slice", ["pads_i", "s0", "s2"], ["pads_begin"]),
        node("Slice", ["pads_i", "s2", "s4"], ["pads_end"]),
        node("Concat", ["zero2", "pads_begin", "zero2", "pads_end"], ["pads8"], axis=0),
        attr_const("pv_i", "pad_value", "int"),
        node("Cast", ["pv_i"], ["pv_f"], to=TensorProto.FLOAT),
        node("Pad", ["sX", "pads8", "pv_f"], ["x_pad"], mode="constant"),
        node("Conv", ["x_pad", "w_oihw"], ["dot"], strides=ref("strides", "ints"),
             dilations=ref("dilations", "ints"), group=ref("group", "int")),
        const("chan_shape", [-1, 1, 1], "int64"),
        node("Reshape", ["scale", "chan_shape"], ["scale_c"]),
        node("Reshape", ["bias", "chan_shape"], ["bias_c"]),
        node("Mul", ["dot", "scale_c"], ["scaled"]),
        node("Add", ["scaled", "bias_c"], ["Y"]),
    ]
    return _with_defaults(make_function(CONV, nodes), CONV)
