"""Small helpers for building fallback function bodies with onnx.helper."""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper, numpy_helper

from steport.registry import ONNX_OPSET, OpSpec

_REF_TYPES = {"int": AttributeProto.INT, "float": AttributeProto.FLOAT,
              "ints": AttributeProto.INTS, "floats": AttributeProto.FLOATS,
              "string": AttributeProto.STRING}


def ref_attr(name: str, ref: str, kind: str) -> AttributeProto:
    """An attribute whose value is the calling node's attribute ``ref`` (functions only)."""
    a = AttributeProto()
    a.name, a.ref_attr_name, a.type = name, ref, _REF_TYPES[kind]
    return a


def node(op: str, inputs, outputs, domain: str = "", **attrs) -> onnx.NodeProto:
    """make_node that also accepts AttributeProto values (e.g. from ref_attr)."""
    refs = {k: v for k, v in attrs.items() if isinstance(v, AttributeProto)}
    plain = {k: v for k, v in attrs.items() if not isinstance(v, AttributeProto)}
    n = helper.make_node(op, list(inputs), list(outputs), domain=domain or None, **plain)
    for k, v in refs.items():
        v = AttributeProto.FromString(v.SerializeToString())
        v.name = k
        n.attribute.append(v)
    return n


def const(name: str, value, dtype=None) -> onnx.NodeProto:
    arr = np.asarray(value, dtype=dtype)
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(arr, name))


def attr_const(name: str, ref: str, kind: str) -> onnx.NodeProto:
    """Constant node holding the value of the calling node's attribute ``ref``."""
    key = {"int": "value_int", "float": "value_float", "ints": "value_ints",
           "floats": "value_floats", "string": "value_string"}[kind]
    return node("Constant", [], [name], **{key: ref_attr(key, ref, kind)})


def make_function(spec: OpSpec, nodes, inputs=None, outputs=None, attrs=None,
                  extra_opsets: dict[str, int] | None = None) -> onnx.FunctionProto:
    """FunctionProto with the op's own domain/name/ports/attributes from the registry."""
    opsets = {"": ONNX_OPSET, **(extra_opsets or {})}
    return helper.make_function(
        spec.domain, spec.name,
        inputs if inputs is not None else [p.name for p in spec.inputs],
        outputs if outputs is not None else [p.name for p in spec.outputs],
        list(nodes),
        [helper.make_opsetid(d, v) for d, v in opsets.items()],
        attributes=attrs if attrs is not None else [a.name for a in spec.attrs],
        doc_string=f"steport fallback body for {spec.qualname} v{spec.version}: {spec.doc}",
    )


# Registry port type names (OpSpec Port.types) -> ONNX element types.
TENSOR_TYPES = {"float": TensorProto.FLOAT, "double": TensorProto.DOUBLE,
                "float16": TensorProto.FLOAT16, "uint8": TensorProto.UINT8,
                "int8": TensorProto.INT8, "uint16": TensorProto.UINT16, "int16": TensorProto.INT16,
                "int32": TensorProto.INT32, "int64": TensorProto.INT64,
                "uint32": TensorProto.UINT32, "uint64": TensorProto.UINT64,
                "bool": TensorProto.BOOL}


def value_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every value name we can find (inputs, outputs, initializers, inferred)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # inference is a best effort; spec types fill the gaps
        inferred = model
    g = inferred.graph
    types = {vi.name: vi.type.tensor_type.elem_type
             for vi in list(g.input) + list(g.output) + list(g.value_info)
             if vi.type.HasField("tensor_type")}
    types.update({t.name: t.data_type for t in g.initializer})
    return {k: v for k, v in types.items() if v}


def load_proto(model: Any) -> onnx.ModelProto:
    """A path, serialized bytes or ModelProto -> ModelProto."""
    if isinstance(model, (str, os.PathLike)):
        return onnx.load(os.fspath(model))
    if isinstance(model, (bytes, bytearray)):
        return onnx.load_from_string(bytes(model))
    return model
