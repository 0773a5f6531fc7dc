"""Rewrites of exported graphs into the standard ops ONNX Runtime runs fastest, each one exact
(the same numbers bit for bit, checked by tests/export/test_graph_rewrites.py).

``fuse_quantize_chains``: the deploy form of a quantizing layer is written in PyTorch as
``clamp(round(x / scale) + zero_point, 0, 255).to(uint8)`` (the approximate-multiplier layers,
docs/ops.md "ai.steport.approx"); the exporter turns it into Div, Round, (Add,) Clip and Cast:
four or five passes over the activation. ONNX's QuantizeLinear is defined as exactly that
(division, round half to even, zero point, saturation to uint8) and runs as one vectorized
pass."""
from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["fuse_quantize_chains"]


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    out = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and len(n.output) == 1:
            for a in n.attribute:
                if a.name == "value" and a.type == onnx.AttributeProto.TENSOR:
                    out[n.output[0]] = numpy_helper.to_array(a.t)
    return out


def _scalar(consts: dict, name: str, dtype) -> float | None:
    v = consts.get(name)
    if v is None or v.size != 1 or v.dtype != dtype:
        return None
    return float(v.reshape(()))


def fuse_quantize_chains(model: onnx.ModelProto) -> int:
    """Replace every Div(x, s) -> Round -> [Add(z)] -> Clip(0, 255) -> Cast(uint8) chain with
    constant fp32 scalars s > 0 and integral z in [0, 255], whose intermediate values feed
    nothing else, by QuantizeLinear(x, s, uint8(z)). Returns the number of chains replaced.
    Main graph only (the exporter writes these chains there)."""
    g = model.graph
    consts = _constants(g)
    uses = Counter(i for n in g.node for i in n.input)
    uses.update(o.name for o in g.output)
    by_input: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input[:1]:
            by_input.setdefault(i, []).append(n)

    def only_consumer(name: str, op: str) -> onnx.NodeProto | None:
        if uses[name] != 1:
            return None
        nxt = by_input.get(name, [])
        return nxt[0] if len(nxt) == 1 and nxt[0].op_type == op and nxt[0].domain in ("", "ai.onnx") else None

    remove: set[int] = set()
    new_nodes: dict[int, onnx.NodeProto] = {}
    new_inits: list[onnx.TensorProto] = []
    count = 0
    for div in g.node:
        if div.op_type != "Div" or div.domain not in ("", "ai.onnx") or len(div.input) != 2:
            continue
        s = _scalar(consts, div.input[1], np.float32)
        if s is None or not (s > 0 and np.isfinite(s)):
            continue
        rnd = only_consumer(div.output[0], "Round")
        if rnd is None:
            continue
        zp, nxt = 0.0, only_consumer(rnd.output[0], "Add") or only_consumer(rnd.output[0], "Clip")
        chain = [div, rnd]
        if nxt is not None and nxt.op_type == "Add":
            if len(nxt.input) != 2 or nxt.input[0] != rnd.output[0]:
                continue
            z = _scalar(consts, nxt.input[1], np.float32)
            if z is None or z != round(z) or not 0 <= z <= 255:
                continue
            zp, chain = z, chain + [nxt]
            nxt = only_consumer(nxt.output[0], "Clip")
        if nxt is None or len(nxt.input) != 3:
            continue
        if (_scalar(consts, nxt.input[1], np.float32), _scalar(consts, nxt.input[2], np.float32)) != (0.0, 255.0):
            continue
        cast = only_consumer(nxt.output[0], "Cast")
        to = next((a.i for a in cast.attribute if a.name == "to"), None) if cast is not None else None
        if to != TensorProto.UINT8:
            continue
        chain += [nxt, cast]
        base = cast.output[0]
        s_name, z_name = f"{base}__qscale", f"{base}__qzp"
        new_inits += [numpy_helper.from_array(np.array(s, np.float32), s_name),
                      numpy_helper.from_array(np.array(int(zp), np.uint8), z_name)]
        idx = [i for i, n in enumerate(g.node) if any(n is c for c in chain)]
        remove.update(idx)
        new_nodes[min(idx)] = helper.make_node("QuantizeLinear", [div.input[0], s_name, z_name],
                                               [base], name=f"{base}__quantize")
        count += 1
    if not count:
        return 0
    nodes = []
    for i, n in enumerate(g.node):
        if i in new_nodes:
            nodes.append(new_nodes[i])
        elif i not in remove:
            nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(new_inits)
    # initializers / Constant nodes the chains alone used (scales, zero points, clip bounds)
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    keep_nodes = [n for n in g.node if n.op_type != "Constant" or n.output[0] in used]
    del g.node[:]
    g.node.extend(keep_nodes)
    produced = {o for n in g.node for o in n.output} | {i.name for i in g.input}
    keep_vi = [v for v in g.value_info if v.name in produced]
    del g.value_info[:]
    g.value_info.extend(keep_vi)
    return count
