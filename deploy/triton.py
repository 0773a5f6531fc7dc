"""Triton Inference Server model repositories for steport models.

``write_repository(model.onnx, out/)`` writes out/<name>/config.pbtxt (platform
onnxruntime_onnx, the op library in model_operations, dynamic batching, instance group,
inputs/outputs from the model), out/<name>/1/model.onnx and the library next to them.
``model_config(model)`` gives the same config as a dict (also served at
/v2/models/<name>/config by ``steport serve``)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .repository import Model, Policy, load_model

V2_TO_TRITON = {"BOOL": "TYPE_BOOL", "UINT8": "TYPE_UINT8", "UINT16": "TYPE_UINT16",
                "UINT32": "TYPE_UINT32", "UINT64": "TYPE_UINT64", "INT8": "TYPE_INT8",
                "INT16": "TYPE_INT16", "INT32": "TYPE_INT32", "INT64": "TYPE_INT64",
                "FP16": "TYPE_FP16", "FP32": "TYPE_FP32", "FP64": "TYPE_FP64",
                "BYTES": "TYPE_STRING", "BF16": "TYPE_BF16"}


def model_config(model: Model, *, instances: int | None = None, kind: str = "KIND_CPU",
                 library_paths: list[str] | None = None) -> dict:
    """Triton ModelConfig fields as a dict (the JSON form of model_config.proto).

    With a batch dim (first dim dynamic everywhere) max_batch_size > 0 and dims leave the
    batch dim out, as Triton expects; otherwise max_batch_size = 0 and full shapes."""
    batch = model.batchable
    p = model.policy

    def tensors(specs):
        return [{"name": s.name, "data_type": V2_TO_TRITON[s.datatype],
                 "dims": list(s.shape[1:] if batch else s.shape)} for s in specs.values()]

    cfg: dict = {"name": model.name, "platform": "onnxruntime_onnx",
                 "max_batch_size": p.max_batch if batch else 0,
                 "input": tensors(model.inputs), "output": tensors(model.outputs),
                 "instance_group": [{"count": instances or p.instances, "kind": kind}]}
    if batch:
        cfg["dynamic_batching"] = {"max_queue_delay_microseconds": int(p.max_delay_ms * 1000),
                                   "default_queue_policy": {"max_queue_size": p.max_queue}}
    if library_paths:
        cfg["model_operations"] = {"op_library_filename": list(library_paths)}
    return cfg


def _pb_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str) and v.startswith(("TYPE_", "KIND_")):
        return v  # enum
    return json.dumps(str(v))  # a quoted, escaped string


def to_pbtxt(cfg: dict, indent: int = 0) -> str:
    """dict -> protobuf text format (lists of scalars as [a, b], messages as { })."""
    pad = "  " * indent
    lines = []
    for k, v in cfg.items():
        if isinstance(v, dict):
            lines += [f"{pad}{k} {{", to_pbtxt(v, indent + 1), f"{pad}}}"]
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            lines.append(f"{pad}{k} [")
            for i, x in enumerate(v):
                lines += [f"{pad}  {{", to_pbtxt(x, indent + 2), f"{pad}  }}{',' if i < len(v) - 1 else ''}"]
            lines.append(f"{pad}]")
        elif isinstance(v, list):
            lines.append(f"{pad}{k}: [{', '.join(_pb_value(x) for x in v)}]")
        else:
            lines.append(f"{pad}{k}: {_pb_value(v)}")
    return "\n".join(x for x in lines if x)


def write_repository(model_path: str | os.PathLike, out: str | os.PathLike, *,
                     name: str | None = None, policy: Policy | None = None,
                     instances: int = 1, kind: str = "KIND_CPU",
                     library_dir_in_server: str | None = None, cuda: bool = False) -> Path:
    """Write a Triton model repository entry; returns out/<name>.

    ``library_dir_in_server``: where Triton will see out/<name>/ (e.g. /models/<name> when
    out/ is mounted at /models); op_library_filename must be a path Triton can dlopen."""
    import steport

    model_path = Path(model_path)
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path}: no such model file")
    policy = policy or Policy()
    model = load_model(model_path, policy.updated({"instances": instances}), name=name)
    lib = Path(steport.library_path(cuda=cuda))
    root = Path(out) / model.name
    (root / "1").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_path, root / "1" / "model.onnx")
    shutil.copyfile(lib, root / lib.name)
    where = library_dir_in_server or f"/models/{model.name}"
    cfg = model_config(model, instances=instances, kind=kind,
                       library_paths=[f"{where.rstrip('/')}/{lib.name}"])
    (root / "config.pbtxt").write_text(to_pbtxt(cfg) + "\n")
    return root
