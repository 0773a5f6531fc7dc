"""Checks a model's use of steport ops against the registry before any runtime sees it
(docs/ops.md "Models steport refuses"). Walks the whole model: the main graph, every
subgraph (If/Loop/Scan bodies, at any depth) and every model-local function, because a node
hidden in a branch or a function runs like a top-level one.

Stdlib only (the C++ build imports the registry); a ModelProto is read through its fields."""
from __future__ import annotations

from typing import Iterator

from .spec import DOMAIN_VERSION, DOMAINS, OpSpec

# onnx.AttributeProto.AttributeType values (not imported: the registry stays stdlib-only)
_ATTR_TYPE = {"float": 1, "int": 2, "string": 3, "floats": 6, "ints": 7}
_TYPE_NAME = {0: "undefined", 1: "a float", 2: "an int", 3: "a string", 4: "a tensor",
              5: "a graph", 6: "a list of floats", 7: "a list of ints", 8: "a list of strings",
              9: "a list of tensors", 10: "a list of graphs", 11: "a sparse tensor",
              12: "a list of sparse tensors", 13: "a type proto", 14: "a list of type protos"}
_KIND_NAME = {"float": "a float", "int": "an int", "string": "a string",
              "floats": "a list of floats", "ints": "a list of ints"}
_GRAPH, _GRAPHS = 5, 10


def _subgraph_nodes(nodes, where: str) -> Iterator[tuple[str, object]]:
    for n in nodes:
        yield where, n
        for a in n.attribute:
            if a.type == _GRAPH or a.HasField("g"):
                yield from _subgraph_nodes(a.g.node, f"{where} > node '{n.name}' attribute {a.name}")
            for i, g in enumerate(a.graphs):
                yield from _subgraph_nodes(g.node, f"{where} > node '{n.name}' attribute {a.name}[{i}]")


def iter_nodes(model) -> Iterator[tuple[str, object]]:
    """(where, node) for every node of the model: main graph, subgraphs, functions."""
    yield from _subgraph_nodes(model.graph.node, "graph")
    for f in model.functions:
        yield from _subgraph_nodes(f.node, f"function {f.domain}::{f.name}")


def attribute_problems(spec: OpSpec, node) -> list[str]:
    """Unknown names, wrong types, missing required attributes: each would otherwise be
    ignored or read as a default. (Values out of bounds are the kernels' to refuse, with
    the op's own message, for every caller of the library.)"""
    problems = []
    known = {a.name: a for a in spec.attrs}
    present = set()
    for a in node.attribute:
        present.add(a.name)
        want = known.get(a.name)
        if want is None:
            problems.append(f"unknown attribute '{a.name}' (known: {sorted(known)})")
            continue
        if a.ref_attr_name:  # bound to the enclosing function's attribute: checked there
            continue
        if a.type != _ATTR_TYPE[want.kind]:
            problems.append(f"attribute '{a.name}' must be {_KIND_NAME[want.kind]}, got "
                            f"{_TYPE_NAME.get(a.type, a.type)}")
    for want in spec.attrs:
        if want.required and want.name not in present:
            problems.append(f"required attribute '{want.name}' is missing")
    return problems


def model_problems(model, by_key: dict[tuple[str, str], OpSpec]) -> list[str]:
    problems = []
    ours = set(DOMAINS.values())
    imports = [("model", model.opset_import)] + [
        (f"function {f.domain}::{f.name}", f.opset_import) for f in model.functions]
    for where, opsets in imports:
        for o in opsets:
            if o.domain in ours and o.version != DOMAIN_VERSION:
                problems.append(f"{where} imports domain {o.domain} version {o.version} (this "
                                f"steport has version {DOMAIN_VERSION})")
    for f in model.functions:  # a function in our domain would stand in for a missing op
        if f.domain in ours and (f.domain, f.name) not in by_key:
            problems.append(f"model-local function {f.domain}::{f.name} is not a steport op")
    for where, n in iter_nodes(model):
        if n.domain not in ours:
            continue
        label = f"{where}: node '{n.name}' ({n.domain}::{n.op_type})"
        spec = by_key.get((n.domain, n.op_type))
        if spec is None:
            known = sorted(name for (d, name) in by_key if d == n.domain)
            problems.append(f"{label}: no such op (known: {known})")
            continue
        problems += [f"{label}: {p}" for p in attribute_problems(spec, n)]
    return problems
