"""The onnxruntime-extensions bridge: steport's numpy reference kernels (reference_kernels/)
run *inside* ONNX Runtime through onnxruntime-extensions' Python custom-op mechanism
(``onnx_op`` / ``PyCustomOpDef``). Used by ``steport verify --backend python`` and by
``verify.localize_mismatch`` to find the first node where two backends disagree.

Caveats of onnxruntime-extensions 0.15.2 (see docs/extensions.md):
- Python ops live in the extensions' own domain ``ai.onnx.contrib`` (no custom domain), so a
  model runs on this backend as a rewritten *copy* whose steport nodes are renamed into that
  domain (``to_python_backend``).
- Attributes may only be int64, float or string: ``ints``/``floats`` attributes are carried
  as JSON strings and decoded here. Every declared attribute must be present on the node, so
  the rewrite fills in registry defaults.
- Each input/output has one fixed element type per Python op: ops with several type variants
  get one Python op per type signature (named after it).
- uint64 *outputs* are corrupted by the bridge (values pass through a C double and are
  written as its bit pattern), so uint64 results are returned bit-cast to float64, which the
  bridge then copies bit-exactly. uint64 inputs and int64 in/out are fine.
- Outputs travel through ``ndarray.tolist()``: slow, fine for debugging only. Every call holds
  the GIL, so Python ops never run in parallel (correct from several threads, but serialized).
"""
from __future__ import annotations

import copy
import json
import threading
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto

from steport.registry import DOMAINS, get

from .onnx_utils import TENSOR_TYPES, load_proto, value_types
from .reference_kernels import PythonBackendError, kernel_for

PY_DOMAIN = "ai.onnx.contrib"  # the only domain onnxruntime-extensions serves Python ops in
_PREFIX = "Steport_"

# The element types onnxruntime-extensions Python ops take (PyCustomOpDef.dt_<name>).
_ONNX_TO_NP = {t: onnx.helper.tensor_dtype_to_np_dtype(t)
               for t in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16,
                         TensorProto.UINT8, TensorProto.INT8, TensorProto.UINT16,
                         TensorProto.INT16, TensorProto.INT32, TensorProto.INT64,
                         TensorProto.UINT32, TensorProto.UINT64, TensorProto.BOOL)}

# --------------------------------------------------------------------------------------------
# Python-op registration with onnxruntime-extensions (process-wide, once per signature).

_REGISTERED: set[str] = set()
_ERRORS: list[str] = []  # kernel exceptions of the current run (see PythonSession)
_RUN_LOCK = threading.Lock()  # _ERRORS is process-wide: one python-backend run at a time


def _ext():
    try:
        import onnxruntime_extensions as ext
    except ImportError as e:  # pragma: no cover - optional dependency
        raise PythonBackendError("the python backend needs onnxruntime-extensions: "
                                 "pip install 'steport[extensions]'") from e
    return ext


def _dt(onnx_type: int) -> int:
    if onnx_type not in _ONNX_TO_NP:
        raise PythonBackendError(f"element type {TensorProto.DataType.Name(onnx_type)} is not "
                                 "supported by onnxruntime-extensions Python ops")
    return getattr(_ext().PyCustomOpDef, "dt_" + TensorProto.DataType.Name(onnx_type).lower())


def _attr_dt(kind: str) -> int:
    P = _ext().PyCustomOpDef
    # int -> int64, float -> float; everything else (ints, floats, string) travels as string
    return {"int": P.dt_int64, "float": P.dt_float}.get(kind, P.dt_string)


def _py_op_type(domain: str, name: str, in_types: list[int], out_types: list[int]) -> str:
    family = next(f for f, d in DOMAINS.items() if d == domain)
    sig = "_".join(TensorProto.DataType.Name(t).lower() for t in in_types + out_types)
    return f"{_PREFIX}{family}_{name}__{sig}"


def _register(op_type: str, domain: str, name: str, in_types: list[int], out_types: list[int],
              present: list[bool]) -> None:
    """Register one Python op (idempotent). ``present[i]`` is False for an omitted optional
    input: the rewritten node drops it, and the wrapper passes None in its place."""
    if op_type in _REGISTERED:
        return
    ext = _ext()
    spec = get(domain, name)
    kinds = {a.name: a.kind for a in spec.attrs}

    def call(*args, **attrs):
        # An exception escaping a Python op aborts the whole process (0.15.2), so errors are
        # caught, recorded, and raised by PythonSession.run after ORT returns.
        try:
            return compute(*args, **attrs)
        except Exception as e:  # noqa: BLE001 - re-raised by PythonSession.run
            _ERRORS.append(f"{spec.qualname}: {type(e).__name__}: {e}")
            empty = tuple(np.zeros(0, _ONNX_TO_NP[t]) if t != TensorProto.UINT64
                          else np.zeros(0, np.float64) for t in out_types)
            return empty if len(empty) > 1 else empty[0]

    def compute(*args, **attrs):
        it = iter(args)
        full = [next(it) if p else None for p in present]
        kw = {k: (json.loads(v) if kinds[k] in ("ints", "floats") else v) for k, v in attrs.items()}
        out = kernel_for(domain, name).fn(*full, **kw)  # looked up per call: overridable
        outs = out if isinstance(out, tuple) else (out,)
        if len(outs) != len(out_types):
            raise PythonBackendError(f"python kernel {spec.qualname} returned {len(outs)} "
                                     f"outputs, the node has {len(out_types)}")
        fixed = []
        for arr, t in zip(outs, out_types):
            arr = np.ascontiguousarray(arr, dtype=_ONNX_TO_NP[t])
            # the bridge writes each uint64 result as a C double's bit pattern: hand it the
            # double whose bits *are* the value (copied bit-exactly, NaN payloads included)
            fixed.append(arr.view(np.float64) if t == TensorProto.UINT64 else arr)
        return tuple(fixed) if len(fixed) > 1 else fixed[0]

    call.__name__ = op_type
    ext.onnx_op(op_type=op_type, inputs=[_dt(t) for t in in_types],
                outputs=[_dt(t) for t in out_types],
                attrs={a.name: _attr_dt(a.kind) for a in spec.attrs})(call)
    _REGISTERED.add(op_type)


# --------------------------------------------------------------------------------------------
# Model rewrite: steport nodes -> ai.onnx.contrib Python ops (on a copy).

def _attr_value(spec_attr, proto: onnx.AttributeProto | None):
    if proto is None:
        v = spec_attr.default
    else:
        v = onnx.helper.get_attribute_value(proto)
        if isinstance(v, bytes):
            v = v.decode()
    if spec_attr.kind in ("ints", "floats"):
        return json.dumps(None if v is None else list(v))  # None: optional, absent (null)
    return v


def to_python_backend(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose steport nodes run as Python ops (names of values kept, so
    intermediate outputs can be compared with the original). Registers the Python ops."""
    out = copy.deepcopy(model)
    ours = set(DOMAINS.values())
    types = value_types(model)
    rewritten = set()
    for n in out.graph.node:
        if n.domain not in ours:
            continue
        spec = get(n.domain, n.op_type)
        kernel_for(spec.domain, spec.name)  # fail early, naming the op
        present = [i < len(n.input) and n.input[i] != "" for i in range(len(spec.inputs))]
        ins = [x for x in n.input if x != ""]
        in_types, out_types = [], []
        for name, port in zip([x for x in n.input], spec.inputs):
            if name:
                in_types.append(types.get(name, TENSOR_TYPES[port.types[0]]))
        for name, port in zip(n.output, spec.outputs):
            out_types.append(types.get(name, TENSOR_TYPES[port.types[0]]))
        if len(n.output) != len(spec.outputs) or any(o == "" for o in n.output):
            raise PythonBackendError(f"node '{n.name}': python backend needs every output of "
                                     f"{spec.qualname} named")
        op_type = _py_op_type(spec.domain, spec.name, in_types, out_types)
        _register(op_type, spec.domain, spec.name, in_types, out_types, present)
        given = {a.name: a for a in n.attribute}
        unknown = set(given) - {a.name for a in spec.attrs}
        if unknown:
            raise PythonBackendError(f"node '{n.name}': unknown attributes {sorted(unknown)} "
                                     f"for {spec.qualname}")
        attrs = []
        for a in spec.attrs:
            if a.name not in given and a.required:
                raise PythonBackendError(f"node '{n.name}': required attribute {a.name!r} "
                                         f"of {spec.qualname} missing")
            attrs.append(onnx.helper.make_attribute(a.name, _attr_value(a, given.get(a.name))))
        del n.input[:]
        n.input.extend(ins)
        del n.attribute[:]
        n.attribute.extend(attrs)
        n.op_type, n.domain = op_type, PY_DOMAIN
        rewritten.add((spec.domain, spec.name))
    keep = [f for f in out.functions if (f.domain, f.name) not in rewritten]
    del out.functions[:]
    out.functions.extend(keep)
    if PY_DOMAIN not in {o.domain for o in out.opset_import}:
        out.opset_import.append(onnx.helper.make_opsetid(PY_DOMAIN, 1))
    return out


def python_session(model: Any, threads: int | None = 1):
    """An ORT session that runs ``model``'s steport ops with the numpy reference kernels."""
    import onnxruntime as ort

    proto = load_proto(model)
    py_model = to_python_backend(proto)
    so = ort.SessionOptions()
    if threads is not None:
        so.intra_op_num_threads = int(threads)
    # registered after the Python ops: the library collects them when it is loaded
    so.register_custom_ops_library(_ext().get_library_path())
    return PythonSession(ort.InferenceSession(py_model.SerializeToString(), so,
                                              providers=["CPUExecutionProvider"]))


class PythonSession:
    """An InferenceSession whose run() raises the numpy kernels' exceptions (which the
    extensions bridge cannot propagate) as PythonBackendError."""

    def __init__(self, sess):
        self.sess = sess

    def __getattr__(self, name):
        return getattr(self.sess, name)

    def run(self, output_names, feeds, *args, **kwargs):
        with _RUN_LOCK:
            del _ERRORS[:]
            try:
                out = self.sess.run(output_names, feeds, *args, **kwargs)
            except Exception as e:
                if _ERRORS:  # ORT failed on the placeholder we returned: report the cause
                    raise PythonBackendError("python kernel failed: " + "; ".join(_ERRORS)) from e
                raise
            if _ERRORS:
                raise PythonBackendError("python kernel failed: " + "; ".join(_ERRORS))
            return out


__all__ = ["PY_DOMAIN", "PythonSession", "python_session", "to_python_backend"]
