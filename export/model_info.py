"""What an exported model carries: metadata, inputs/outputs, custom ops (`steport info`)."""
from __future__ import annotations

import os


def model_info(path: str) -> dict:
    """Metadata, inputs/outputs and custom ops of an ONNX file (ValueError with one line when
    it is missing or not an ONNX model)."""
    import onnx

    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:  # protobuf DecodeError and friends: not an ONNX file
        raise ValueError(f"{path}: not an ONNX model ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:120]})") from None
    if not model.graph.node and not model.graph.input:
        raise ValueError(f"{path}: not an ONNX model (no graph)")
    opsets = {o.domain: o.version for o in model.opset_import}
    custom: dict[str, int] = {}
    for n in model.graph.node:
        if n.domain.startswith("ai.steport"):
            custom[f"{n.domain}::{n.op_type}"] = opsets.get(n.domain, 0)

    def shape(v):
        dims = v.type.tensor_type.shape.dim
        return [d.dim_param or d.dim_value for d in dims]

    return {"path": path, "bytes": os.path.getsize(path),
            "producer": f"{model.producer_name} {model.producer_version}".strip(),
            "metadata": {p.key: p.value for p in model.metadata_props},
            "inputs": {v.name: shape(v) for v in model.graph.input
                       if v.name not in {i.name for i in model.graph.initializer}},
            "outputs": {v.name: shape(v) for v in model.graph.output},
            "custom_ops": dict(sorted(custom.items()))}
