"""steport: train, export, run and serve approximate, binary, PACT and logic-gate networks.

Subpackages: ``steport.train`` (STE ops and layers), ``steport.export`` (ONNX custom
domains), ``steport.ort_ops`` (the ONNX Runtime op library), ``steport.deploy`` (serving).
Imports are lazy: ``import steport`` pulls in neither torch nor onnxruntime."""
from __future__ import annotations

__version__ = "0.1.0"

from typing import Any, Sequence


def session(model: Any, providers: Sequence[Any] | None = None, *, sess_options: Any = None,
            threads: int | None = None, extensions: bool | None = None,
            max_bytes: int | None = None):
    """Open an ``onnxruntime.InferenceSession`` with steport's custom-op library registered.

    ``model`` is a path, bytes or ModelProto. ``providers`` as in onnxruntime (default CPU);
    with ``CUDAExecutionProvider`` the CUDA variant of the library is loaded. ``threads``
    sets intra-op threads. ``extensions``: also register onnxruntime-extensions (None = when
    the model uses its domain). ``max_bytes`` (default: the ``STEPORT_MAX_BYTES`` environment
    variable, else no limit): refuse a model whose steport nodes' declared sizes need more
    (docs/ops.md "Memory bounds")."""
    from .runtime import make_session

    return make_session(model, providers=providers, sess_options=sess_options, threads=threads,
                        extensions=extensions, max_bytes=max_bytes)


def library_path(cuda: bool = False) -> str:
    """Path of the custom-op library (``libsteport_ops.so`` or its CUDA variant)."""
    from .ort_ops import library_path as _lp

    return _lp(cuda=cuda)


__all__ = ["__version__", "session", "library_path"]
