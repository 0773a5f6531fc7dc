"""ai.steport.logic: discrete logic-gate networks (difflogic / torchlogix), see docs/logic.md.

Gate ids: f_id(a, b) = (id >> (3 - (2a + b))) & 1 (0 FALSE, 1 AND, 3 A, 6 XOR, 7 OR, 14 NAND,
15 TRUE). Inputs are read as bits with ``x != 0`` (NaN counts as 1, like ONNX Cast to bool)."""
from .spec import Attr, OpSpec, Port

# Largest layer width / input width the kernels accept (keeps every count an exact float
# and every index product inside int64).
MAX_WIDTH = 1 << 24

NUM_GATES = 16
# The 16 two-input gates (difflogic's order), as data: GATE_TRUTH_TABLE[id][2a + b] = f_id(a, b)
# = (id >> (3 - (2a + b))) & 1. The torch relaxation and reference, the fallback bodies and the
# numpy reference kernels all build their tables from this one (plain ints, no torch/numpy).
GATE_TRUTH_TABLE = tuple(tuple((gate >> (3 - pos)) & 1 for pos in range(4))
                         for gate in range(NUM_GATES))
# Written into the generated spec.h as spec::logic::<name> for the C++ bindings.
CPP_CONSTANTS = {"kMaxWidth": MAX_WIDTH, "kNumGates": NUM_GATES}

OPS = [
    OpSpec(
        family="logic", name="LogicLayer", version=1,
        inputs=(Port("X", ("float",), doc="[N, in]; bit = (x != 0)"),
                Port("idx_a", ("int64",), doc="[out], first operand of each gate, in [0, in)"),
                Port("idx_b", ("int64",), doc="[out], second operand of each gate, in [0, in)"),
                Port("gate_ids", ("uint8", "int64"), doc="[out], gate ids in [0, 15]")),
        outputs=(Port("Y", ("float",), doc="[N, out], values 0.0 / 1.0"),),
        torch_op="steport::logic_layer",
        translation="steport.export.logic:logic_layer_translation",
        fallback="steport.export.logic:logic_layer_function",
        kernels=("cpu", "cuda"),
        doc="Y[n, j] = f_{gate_ids[j]}(X[n, idx_a[j]] != 0, X[n, idx_b[j]] != 0)",
    ),
    OpSpec(
        family="logic", name="LogicNet", version=1,
        inputs=(Port("X", ("float",), doc="[N, in]; bit = (x != 0)"),
                Port("idx_a", ("int64",), doc="[sum(layer_sizes)], layers concatenated; "
                                              "layer l indexes the outputs of layer l-1 (X for l=0)"),
                Port("idx_b", ("int64",), doc="[sum(layer_sizes)], like idx_a"),
                Port("gate_ids", ("uint8", "int64"), doc="[sum(layer_sizes)], ids in [0, 15]")),
        outputs=(Port("Y", ("float",), doc="[N, num_classes] = GroupSum / tau"),),
        attrs=(Attr("layer_sizes", "ints", doc="gates per layer, each in [1, 2^24]; the last "
                                               "is a multiple of num_classes"),
               Attr("num_classes", "int", lo=1, hi=MAX_WIDTH, doc="GroupSum groups k"),
               Attr("tau", "float", default=1.0, doc="GroupSum divisor, finite and > 0")),
        torch_op="steport::logic_net",
        translation="steport.export.logic:logic_net_translation",
        fallback="steport.export.logic:logic_net_function",
        kernels=("cpu", "cuda"),
        doc="whole stack of LogicLayers then GroupSum: Y[n, c] = (sum of the last layer's "
            "outputs c*g .. c*g+g-1) / tau, g = layer_sizes[-1] / num_classes",
    ),
]
