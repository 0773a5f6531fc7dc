"""ai.steport.quant export: onnxscript translations and fallback bodies."""
from __future__ import annotations

import onnx
from onnxscript import FLOAT, script

from steport.registry import get

from .domains import family_opset, op
from .onnx_utils import attr_const, const, make_function, node

QUANT = family_opset("quant")

PACT = get("quant", "Pact")


@script(op)
def pact_translation(x: FLOAT, alpha: FLOAT, bits: int) -> FLOAT:
    return QUANT.Pact(x, alpha, bits=bits)


def pact_function(node_proto: onnx.NodeProto | None = None) -> onnx.FunctionProto:
    """Pact in standard ONNX: Clip, Mul, Round (half to even), Div; NaN passes through
    (Where/IsNaN, since Clip's NaN behaviour is not specified)."""
    nodes = [
        attr_const("bits_i", "bits", "int"),
        node("Cast", ["bits_i"], ["bits_f"], to=onnx.TensorProto.FLOAT),
        const("two", 2.0, "float32"),
        const("one", 1.0, "float32"),
        const("zero", 0.0, "float32"),
        const("scalar_shape", [], "int64"),
        node("Pow", ["two", "bits_f"], ["pow2"]),
        node("Sub", ["pow2", "one"], ["levels"]),
        node("Reshape", ["alpha", "scalar_shape"], ["a"]),
        node("Div", ["levels", "a"], ["s"]),
        node("Clip", ["X", "zero", "a"], ["clipped"]),
        node("Mul", ["clipped", "s"], ["scaled"]),
        node("Round", ["scaled"], ["rounded"]),
        node("Div", ["rounded", "s"], ["q"]),
        node("IsNaN", ["X"], ["nan"]),
        node("Where", ["nan", "X", "q"], ["Y"]),
    ]
    return make_function(PACT, nodes)
