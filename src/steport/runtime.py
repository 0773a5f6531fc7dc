"""ONNX Runtime sessions with steport's op library (and onnxruntime-extensions if needed)."""
from __future__ import annotations

import os
from typing import Any, Sequence

import onnxruntime as ort

from .memory import check_memory, limit_from_env
from .ort_ops import library_path
from .registry import check_model_ops

_EXTENSIONS_DOMAIN = "ai.onnx.contrib"
# DecodeImage/EncodeImage live in this second onnxruntime-extensions domain
_EXTENSIONS_DOMAINS = {_EXTENSIONS_DOMAIN, "com.microsoft.extensions"}


def _load_proto(model: Any):
    import onnx

    try:
        if isinstance(model, (str, os.PathLike)):
            return onnx.load(os.fspath(model), load_external_data=False)
        if isinstance(model, (bytes, bytearray)):
            return onnx.load_from_string(bytes(model))
    except Exception as e:  # corrupt file: say so before ORT's less specific message
        raise ValueError(f"cannot parse ONNX model {model if isinstance(model, (str, os.PathLike)) else '<bytes>'}: {e}") from e
    return model


def _wants_cuda(providers: Sequence[Any] | None) -> bool:
    for p in providers or ():
        name = p[0] if isinstance(p, (tuple, list)) else p
        if name == "CUDAExecutionProvider":
            return True
    return False


def make_session(model: Any, providers: Sequence[Any] | None = None, sess_options: Any = None,
                 threads: int | None = None, extensions: bool | None = None,
                 max_bytes: int | None = None):
    proto = _load_proto(model)
    check_model_ops(proto)  # unknown steport op versions: clear error, not a silent fallback
    limit = max_bytes if max_bytes is not None else limit_from_env()
    if limit is not None:  # declared sizes past the limit: refused before ORT allocates
        check_memory(proto, limit)
    so = sess_options or ort.SessionOptions()
    if threads is not None:
        so.intra_op_num_threads = int(threads)
    so.register_custom_ops_library(library_path(cuda=_wants_cuda(providers)))
    if extensions is None:
        extensions = bool(_EXTENSIONS_DOMAINS & {o.domain for o in proto.opset_import})
    if extensions:
        try:
            from onnxruntime_extensions import get_library_path
        except ImportError as e:  # pragma: no cover - depends on optional package
            raise RuntimeError("this model uses onnxruntime-extensions ops "
                               f"({_EXTENSIONS_DOMAIN}); pip install onnxruntime-extensions") from e
        so.register_custom_ops_library(get_library_path())
    if not isinstance(model, (str, os.PathLike, bytes, bytearray)):
        model = model.SerializeToString()
    elif isinstance(model, os.PathLike):
        model = os.fspath(model)
    return ort.InferenceSession(model, sess_options=so,
                                providers=list(providers or ["CPUExecutionProvider"]))
