"""torch.nn.Module -> ONNX with steport custom domains and model-local fallback bodies."""
from __future__ import annotations

import io
import json
import os
import warnings
from typing import Any, Sequence

import onnx
import torch

from steport import __version__
from steport.errors import ExportError  # defined there; steport.export re-exports it
from steport.registry import DOMAIN_VERSION, DOMAINS, IR_VERSION, ONNX_OPSET, OPS, get

from .graph_rewrites import fuse_quantize_chains


def translation_table() -> dict:
    """{torch OpOverload: onnxscript function} for every registry op with a torch op."""
    from steport.train.ops import torch_overload  # registers every op; imports train lazily

    table = {}
    for spec in OPS:
        if spec.torch_op and spec.translation:
            table[torch_overload(spec)] = spec.translation_fn()
    return table


def _custom_domains() -> set[str]:
    return set(DOMAINS.values())


def add_fallback_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """Attach one model-local FunctionProto per custom op used, so checker, shape inference,
    onnx.reference and stock onnxruntime (without our library) can run the model."""
    have = {(f.domain, f.name) for f in model.functions}
    for n in model.graph.node:
        if n.domain not in _custom_domains() or (n.domain, n.op_type) in have:
            continue
        spec = get(n.domain, n.op_type)
        fn = spec.fallback_fn()
        if fn is None:
            raise ExportError(f"{spec.qualname} has no fallback body in the registry")
        model.functions.append(fn(n))
        have.add((n.domain, n.op_type))
    # Functions' own standard-opset imports must be present in the model.
    present = {o.domain for o in model.opset_import}
    for f in model.functions:
        for o in f.opset_import:
            if o.domain not in present:
                model.opset_import.append(onnx.helper.make_opsetid(o.domain, o.version))
                present.add(o.domain)
    return model


def stamp_metadata(model: onnx.ModelProto, extra: dict[str, Any] | None = None) -> None:
    used = sorted({(n.domain, n.op_type) for n in model.graph.node if n.domain in _custom_domains()})
    meta = {"steport.version": __version__,
            "steport.ops": json.dumps({f"{d}::{n}": get(d, n).version for d, n in used})}
    for k, v in (extra or {}).items():
        meta[f"steport.{k}"] = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    keep = [p for p in model.metadata_props if p.key not in meta]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for k in sorted(meta):
        model.metadata_props.add(key=k, value=meta[k])


def dedupe_initializers(model: onnx.ModelProto, min_bytes: int = 1024) -> int:
    """Share identical large initializers (e.g. one multiplier LUT used by every layer, or
    tied weights): keep the first, point every use of a twin at it. Returns bytes saved."""
    graph = model.graph
    first: dict[tuple, str] = {}
    rename: dict[str, str] = {}
    keep = []
    for init in graph.initializer:
        data = onnx.numpy_helper.to_array(init).tobytes() if not init.raw_data else init.raw_data
        key = (init.data_type, tuple(init.dims), data)
        if len(data) >= min_bytes and key in first:
            rename[init.name] = first[key]
            continue
        first.setdefault(key, init.name)
        keep.append(init)
    if not rename:
        return 0
    saved = sum(len(i.raw_data) for i in graph.initializer if i.name in rename)
    del graph.initializer[:]
    graph.initializer.extend(keep)
    for n in graph.node:
        for i, name in enumerate(n.input):
            if name in rename:
                n.input[i] = rename[name]
    return saved


def finalize(model: onnx.ModelProto, metadata: dict[str, Any] | None = None,
             check: bool = True) -> onnx.ModelProto:
    """Fallback bodies, shared duplicate initializers, IR version ORT reads, metadata, then
    the full checker."""
    add_fallback_functions(model)
    dedupe_initializers(model)
    model.ir_version = min(model.ir_version, IR_VERSION) if model.ir_version else IR_VERSION
    for o in model.opset_import:
        if o.domain in _custom_domains():
            o.version = DOMAIN_VERSION
    model.producer_name, model.producer_version = "steport", __version__
    stamp_metadata(model, metadata)
    if check:
        onnx.checker.check_model(model, full_check=True)
    return model


def check_exportable(model: torch.nn.Module) -> None:
    """Each layer's check_exportable() hook; its ExportError is re-raised naming the layer."""
    for name, mod in model.named_modules():
        fn = getattr(mod, "check_exportable", None)
        if callable(fn):
            try:
                fn()
            except ExportError as e:
                raise ExportError(f"layer '{name or type(mod).__name__}' "
                                  f"({type(mod).__name__}): {e}") from None


def export_model(model: torch.nn.Module, example_inputs: Sequence[torch.Tensor] | torch.Tensor,
                 path: str | os.PathLike | None = None, *, input_names: Sequence[str] = ("input",),
                 output_names: Sequence[str] = ("output",), dynamic_batch: bool = True,
                 metadata: dict[str, Any] | None = None) -> onnx.ModelProto:
    """Export ``model`` (in eval mode) with the dynamo exporter and steport's translations.

    The batch dimension is dynamic by default. Returns the finalized ModelProto and writes it
    to ``path`` when given. Raises ExportError naming the layer for unsupported configs."""
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    example_inputs = tuple(example_inputs)
    # Layer hooks: check_exportable() raises ExportError for configurations we cannot export
    # faithfully; prepare_export() switches a layer to its deployment form (packed/int8
    # buffers, discretized gates) until finish_export().
    check_exportable(model)
    was_training = model.training
    model.eval()
    prepared = [m for m in model.modules() if callable(getattr(m, "prepare_export", None))]
    dynamic_shapes = None
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1, max=1 << 20)
        dynamic_shapes = tuple({0: batch} for _ in example_inputs)
    try:
        with torch.no_grad():
            for m in prepared:
                m.prepare_export()
        with warnings.catch_warnings(), _quiet_exporter():
            warnings.simplefilter("ignore")
            prog = torch.onnx.export(
                model, example_inputs, dynamo=True, opset_version=ONNX_OPSET,
                input_names=list(input_names), output_names=list(output_names),
                dynamic_shapes=dynamic_shapes, custom_translation_table=translation_table(),
                optimize=True, verbose=False, report=False)
    finally:
        for m in prepared:
            finish = getattr(m, "finish_export", None)
            if callable(finish):
                finish()
        model.train(was_training)
    proto = prog.model_proto  # a fresh proto per access
    fuse_quantize_chains(proto)
    proto = finalize(proto, metadata)
    if path is not None:
        save(proto, path)
    return proto


def save(model: onnx.ModelProto, path: str | os.PathLike) -> None:
    """Deterministic serialization (same model -> same bytes)."""
    data = model.SerializeToString(deterministic=True)
    with open(path, "wb") as f:
        f.write(data)


class _quiet_exporter:
    """The dynamo exporter prints progress to stdout; keep CLI/test output readable."""

    def __enter__(self):
        import contextlib
        import logging

        self._stack = contextlib.ExitStack()
        self._stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        for name in ("torch.onnx", "torch.export", "onnxscript", "torch._export"):
            lg = logging.getLogger(name)
            self._stack.callback(lg.setLevel, lg.level)
            lg.setLevel(logging.ERROR)
        return self

    def __exit__(self, *exc):
        self._stack.close()
        return False
