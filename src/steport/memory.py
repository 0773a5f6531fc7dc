"""Memory a model's steport nodes need, from the sizes the model declares, and the check that
refuses a model past a configured limit before onnxruntime allocates anything (docs/ops.md
"Memory bounds").

Every steport op needs O(inputs + output) bytes (weights, LUT and gate tables are inputs),
plus scratch that is at most a small multiple of those (packed bit copies, a prepared LUT,
a gate plan). `node_bytes` computes inputs + output from the declared shapes (graph inputs,
initializer dims, shapes onnx infers for intermediate values; a symbolic dimension counts as
`batch`): a hostile model that declares a 2^40-row input or a convolution whose padding
makes a 275 GB output is refused by `check_memory` with the node named."""
from __future__ import annotations

import math
import os

from .registry import DOMAINS
from .registry.shapes import conv_output_hw

_ELEM_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8}


class MemoryLimitError(ValueError):
    """A model whose declared sizes need more memory than the configured limit."""


def limit_from_env() -> int | None:
    """`STEPORT_MAX_BYTES` (bytes, e.g. 4e9), or None when unset."""
    env = os.environ.get("STEPORT_MAX_BYTES")
    if not env:
        return None
    try:
        value = int(float(env))
    except ValueError:
        raise ValueError(f"STEPORT_MAX_BYTES={env!r} is not a number of bytes") from None
    if value <= 0:
        raise ValueError(f"STEPORT_MAX_BYTES={env!r} must be positive")
    return value


def _dims(shape_proto, batch: int) -> list[int] | None:
    dims = []
    for d in shape_proto.dim:
        if d.HasField("dim_value"):
            dims.append(d.dim_value)
        else:
            dims.append(batch)  # symbolic (the batch) or unknown
    return dims


def _known_shapes(model, batch: int) -> dict[str, tuple[int, list[int]]]:
    """name -> (element type, dims) for every value whose shape the model states or onnx
    infers; initializers by their dims (never their data, which may be external or a lie)."""
    import onnx

    shapes: dict[str, tuple[int, list[int]]] = {}
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
        infos = list(inferred.graph.value_info) + list(inferred.graph.output)
    except Exception:  # noqa: BLE001 - inference is best effort; declared shapes remain
        infos = list(model.graph.value_info) + list(model.graph.output)
    for vi in list(model.graph.input) + infos:
        t = vi.type.tensor_type
        if t.HasField("shape"):
            shapes[vi.name] = (t.elem_type, _dims(t.shape, batch))
    for init in model.graph.initializer:
        shapes[init.name] = (init.data_type, list(init.dims))
    return shapes


def _nbytes(elem_type: int, dims: list[int]) -> int:
    return _ELEM_BYTES.get(elem_type, 8) * math.prod(max(d, 0) for d in dims)


def _conv_output(x: list[int], w: list[int], attrs: dict, packed: bool) -> list[int] | None:
    """[N, C_out, OH, OW] of a 2-D conv from X [N, C, H, W] and W's kernel size."""
    if len(x) != 4 or len(w) != 4:
        return None
    kh, kw = (w[1], w[2]) if packed else (w[2], w[3])
    s = attrs.get("strides", [1, 1])
    p = attrs.get("pads", [0, 0, 0, 0])
    d = attrs.get("dilations", [1, 1])
    if len(s) != 2 or len(p) != 4 or len(d) != 2 or min(s) < 1:
        return None
    oh, ow = conv_output_hw(x[2], x[3], kh, kw, s, p, d)
    return [x[0], w[0], max(oh, 0), max(ow, 0)]


def _output_dims(op: str, ins: list, attrs: dict) -> list[int] | None:
    """The output shape each op computes from its inputs and attributes (docs/ops.md)."""
    x = ins[0][1] if ins and ins[0] else None
    second = ins[1][1] if len(ins) > 1 and ins[1] else None
    if x is None:
        return None
    if op == "Pact":
        return x
    # The QLinear forms hold their int32 sums (the unpooled conv output) before requantizing:
    # that scratch, not the uint8 output, is what they need.
    if op in ("BinaryGemm", "ApproxMatMulInteger", "ApproxQLinearMatMul") and second \
            and len(second) == 2:
        return x[:-1] + [second[0] if op == "BinaryGemm" else second[1]]
    if op in ("BinaryConv2d", "ApproxConvInteger", "ApproxQLinearConv") and second:
        return _conv_output(x, second, attrs, packed=op == "BinaryConv2d")
    if op == "LogicLayer" and second:
        return [x[0]] + second[:1]
    if op == "LogicNet":
        return [x[0], attrs.get("num_classes", 1)]
    return None


def node_bytes(model, batch: int = 1) -> list[tuple[str, int]]:
    """(node label, bytes of its inputs + output at the declared sizes) for every steport
    node of the main graph; nodes whose input shapes are unknown are left out."""
    import onnx

    shapes = _known_shapes(model, batch)
    ours = set(DOMAINS.values())
    out = []
    for n in model.graph.node:
        if n.domain not in ours:
            continue
        ins = [shapes.get(name) if name else None for name in n.input]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        out_dims = _output_dims(n.op_type, ins, attrs)
        if ins[:1] == [None] or out_dims is None:
            continue
        elem = 6 if n.op_type.startswith("Approx") else 1  # int32 (sums) or float outputs
        total = sum(_nbytes(*i) for i in ins if i) + _nbytes(elem, out_dims)
        out.append((f"node '{n.name}' ({n.domain}::{n.op_type}), output {out_dims}", total))
    return out


def check_memory(model, max_bytes: int, batch: int = 1) -> None:
    """Raise MemoryLimitError naming the first steport node whose inputs + output, at the
    model's declared sizes (symbolic dims = `batch`), pass `max_bytes`."""
    for label, need in node_bytes(model, batch):
        if need > max_bytes:
            raise MemoryLimitError(
                f"{label} needs at least {need:,} bytes for its inputs and output at the "
                f"model's declared sizes (batch {batch}), over the limit of {max_bytes:,} bytes")
