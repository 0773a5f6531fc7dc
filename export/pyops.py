"""Python debug kernels: steport custom ops as numpy functions that run *inside* ONNX Runtime
through onnxruntime-extensions' Python custom-op mechanism (``onnx_op`` / ``PyCustomOpDef``).

A third, independent implementation of every op (next to the C++ kernel and the standard-ONNX
fallback body), used by ``steport verify --backend python`` and by :func:`localize_mismatch`
to find the first node where two backends disagree.

Adding a kernel for a new op: write a numpy function next to the others below and decorate it
with ``@numpy_kernel("ai.steport.<family>", "<OpName>")``. It receives the node's inputs as
numpy arrays (omitted optional inputs as ``None``) and its attributes as keyword arguments
(already decoded to Python values, defaults filled in from the registry), and returns one
array per output (a tuple when the op has several). Types, attribute kinds and the rewrite of
the model are derived from the OpSpec; nothing else needs registering.

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

import contextlib
import copy
import json
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import onnx
from onnx import TensorProto

from steport.registry import DOMAINS, OPS, get

PY_DOMAIN = "ai.onnx.contrib"  # the only domain onnxruntime-extensions serves Python ops in
_PREFIX = "Steport_"

_ONNX_TO_NP = {TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64,
               TensorProto.FLOAT16: np.float16, TensorProto.UINT8: np.uint8,
               TensorProto.INT8: np.int8, TensorProto.UINT16: np.uint16,
               TensorProto.INT16: np.int16, TensorProto.INT32: np.int32,
               TensorProto.INT64: np.int64, TensorProto.UINT32: np.uint32,
               TensorProto.UINT64: np.uint64, TensorProto.BOOL: np.bool_}
_TYPE_NAMES = {"float": TensorProto.FLOAT, "double": TensorProto.DOUBLE,
               "float16": TensorProto.FLOAT16, "uint8": TensorProto.UINT8,
               "int8": TensorProto.INT8, "uint16": TensorProto.UINT16, "int16": TensorProto.INT16,
               "int32": TensorProto.INT32, "int64": TensorProto.INT64,
               "uint32": TensorProto.UINT32, "uint64": TensorProto.UINT64,
               "bool": TensorProto.BOOL}


class PythonBackendError(RuntimeError):
    """The python backend cannot run this model (missing kernel, unsupported type...)."""


@dataclass(frozen=True)
class Kernel:
    domain: str
    name: str
    fn: Callable[..., Any]


_KERNELS: dict[tuple[str, str], Kernel] = {}


def numpy_kernel(domain_or_family: str, name: str):
    """Decorator: register ``fn`` as the numpy kernel of a registry op."""
    spec = get(domain_or_family, name)  # KeyError for ops the registry does not know

    def deco(fn):
        _KERNELS[(spec.domain, spec.name)] = Kernel(spec.domain, spec.name, fn)
        return fn
    return deco


def kernel_for(domain: str, name: str) -> Kernel:
    try:
        return _KERNELS[(domain, name)]
    except KeyError:
        have = sorted(f"{d}::{n}" for d, n in _KERNELS)
        raise PythonBackendError(f"no python kernel for {domain}::{name} (have: {have}); add "
                                 "one with @numpy_kernel in steport/export/pyops.py") from None


@contextlib.contextmanager
def override_kernel(domain_or_family: str, name: str, fn: Callable[..., Any]):
    """Temporarily replace an op's numpy kernel (e.g. to try a fix, or to plant a bug in a
    test); sessions already created pick it up too, since kernels are looked up per call."""
    spec = get(domain_or_family, name)
    key = (spec.domain, spec.name)
    old = _KERNELS.get(key)
    _KERNELS[key] = Kernel(spec.domain, spec.name, fn)
    try:
        yield
    finally:
        if old is None:
            _KERNELS.pop(key, None)
        else:
            _KERNELS[key] = old


def registered_kernels() -> list[str]:
    return sorted(f"{d}::{n}" for d, n in _KERNELS)


# --------------------------------------------------------------------------------------------
# Kernels. One function per op, mirroring the C++ kernel's float32 arithmetic exactly.

@numpy_kernel("quant", "Pact")
def pact(x: np.ndarray, alpha: np.ndarray, *, bits: int) -> np.ndarray:
    if not 1 <= bits <= 16:
        raise ValueError(f"Pact: bits must be in [1, 16], got {bits}")
    a = np.asarray(alpha, np.float32)
    if a.size != 1 or a.ndim > 1:
        raise ValueError(f"Pact: alpha must be a scalar (shape [] or [1]), got {a.shape}")
    a = np.float32(a.reshape(()))
    if not (np.isfinite(a) and a > 0):
        raise ValueError(f"Pact: alpha must be positive and finite, got {a}")
    s = np.float32((1 << bits) - 1) / a  # float32 / float32, as the C++ MakePactParams
    x = np.asarray(x, np.float32)
    v = np.where(x < 0, np.float32(0), x)  # -0.0 stays -0.0, NaN passes (comparisons false)
    v = np.where(v > a, a, v)
    with np.errstate(invalid="ignore"):
        return (np.round(v * s) / s).astype(np.float32)  # np.round: half to even


# Add the other families' kernels here (ai.steport.binary / approx / logic), e.g.
#   @numpy_kernel("binary", "BinaryDense")
#   def binary_dense(x, w_packed, scale=None, *, k: int): ...


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
    P = _ext().PyCustomOpDef
    table = {TensorProto.FLOAT: P.dt_float, TensorProto.DOUBLE: P.dt_double,
             TensorProto.FLOAT16: P.dt_float16, TensorProto.UINT8: P.dt_uint8,
             TensorProto.INT8: P.dt_int8, TensorProto.UINT16: P.dt_uint16,
             TensorProto.INT16: P.dt_int16, TensorProto.INT32: P.dt_int32,
             TensorProto.INT64: P.dt_int64, TensorProto.UINT32: P.dt_uint32,
             TensorProto.UINT64: P.dt_uint64, TensorProto.BOOL: P.dt_bool}
    if onnx_type not in table:
        raise PythonBackendError(f"element type {TensorProto.DataType.Name(onnx_type)} is not "
                                 "supported by onnxruntime-extensions Python ops")
    return table[onnx_type]


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

def _value_types(model: onnx.ModelProto) -> dict[str, int]:
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


def _attr_value(spec_attr, proto: onnx.AttributeProto | None):
    if proto is None:
        v = spec_attr.default
    else:
        v = onnx.helper.get_attribute_value(proto)
        if isinstance(v, bytes):
            v = v.decode()
    if spec_attr.kind in ("ints", "floats"):
        return json.dumps(list(v))
    return v


def to_python_backend(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose steport nodes run as Python ops (names of values kept, so
    intermediate outputs can be compared with the original). Registers the Python ops."""
    out = copy.deepcopy(model)
    ours = set(DOMAINS.values())
    types = _value_types(model)
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
                in_types.append(types.get(name, _TYPE_NAMES[port.types[0]]))
        for name, port in zip(n.output, spec.outputs):
            out_types.append(types.get(name, _TYPE_NAMES[port.types[0]]))
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
    """An ORT session that runs ``model``'s steport ops with the numpy kernels."""
    import onnxruntime as ort

    proto = _load(model)
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


def _load(model: Any) -> onnx.ModelProto:
    if isinstance(model, (str, os.PathLike)):
        return onnx.load(os.fspath(model))
    if isinstance(model, (bytes, bytearray)):
        return onnx.load_from_string(bytes(model))
    return model


# --------------------------------------------------------------------------------------------
# Per-node mismatch localization.

@dataclass
class NodeDiff:
    node: str
    op: str  # domain::name
    output: str
    max_abs_diff: float
    mismatches: int
    size: int

    @property
    def ok(self) -> bool:
        return self.mismatches == 0


@dataclass
class NodeReport:
    backends: tuple[str, str]
    nodes: list[NodeDiff]

    @property
    def first_mismatch(self) -> NodeDiff | None:
        return next((d for d in self.nodes if not d.ok), None)

    @property
    def ok(self) -> bool:
        return self.first_mismatch is None

    def table(self) -> str:
        a, b = self.backends
        lines = [f"per-node comparison {a} vs {b} (custom nodes in graph order)",
                 f"{'node':24s} {'op':28s} {'output':16s} {'max|diff|':>10s} {'mismatch':>10s}"]
        for d in self.nodes:
            lines.append(f"{d.node:24s} {d.op:28s} {d.output:16s} {d.max_abs_diff:10.3g} "
                         f"{d.mismatches:>5d}/{d.size:<5d}")
        first = self.first_mismatch
        lines.append("all custom nodes agree" if first is None else
                     f"FIRST MISMATCH: node '{first.node}' ({first.op}), output '{first.output}'")
        return "\n".join(lines)


def _expose_custom_outputs(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[tuple]]:
    """Copy of ``model`` with every steport node's outputs added as graph outputs."""
    m = copy.deepcopy(model)
    ours = set(DOMAINS.values())
    types = _value_types(model)
    have = {o.name for o in m.graph.output}
    probes = []
    for i, n in enumerate(m.graph.node):
        if n.domain not in ours:
            continue
        if not n.name:
            n.name = f"{n.op_type}_{i}"
        for o in n.output:
            if not o:
                continue
            probes.append((n.name, f"{n.domain}::{n.op_type}", o))
            if o not in have:
                t = types.get(o)
                if t is None:
                    port = get(n.domain, n.op_type).outputs[list(n.output).index(o)]
                    t = _TYPE_NAMES[port.types[0]]
                m.graph.output.append(onnx.helper.make_tensor_value_info(o, t, None))
                have.add(o)
    return m, probes


def _diff(a: np.ndarray, b: np.ndarray, atol: float) -> tuple[float, int]:
    if a.shape != b.shape:
        return float("inf"), max(a.size, b.size, 1)
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        same = (np.isnan(a64) & np.isnan(b64)) | (a64 == b64)  # inf == inf counts as equal
        d = np.where(same, 0.0, np.nan_to_num(np.abs(a64 - b64), nan=np.inf))
        return (float(d.max()) if d.size else 0.0), int((d > atol).sum())
    neq = a != b
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return (float(d.max()) if d.size else 0.0), int(neq.sum())


def localize_mismatch(model: Any, feeds: dict[str, np.ndarray],
                      backends: tuple[str, str] = ("steport", "python"),
                      atol: float = 0.0) -> NodeReport:
    """Run ``model`` on two backends ("steport": C++ kernels, "python": numpy kernels,
    "fallback": stock ORT with the fallback bodies) with every custom node's outputs exposed,
    and compare node by node in graph (topological) order. The first differing node is where
    the backends part ways; later ones may only inherit its difference."""
    import onnxruntime as ort

    import steport

    proto = _load(model)
    probed, probes = _expose_custom_outputs(proto)
    names = [o.name for o in probed.graph.output]
    results = {}
    for b in backends:
        if b == "steport":
            sess = steport.session(probed.SerializeToString(), threads=1)
        elif b == "python":
            sess = python_session(probed)
        elif b == "fallback":
            sess = ort.InferenceSession(probed.SerializeToString(),
                                        providers=["CPUExecutionProvider"])
        else:
            raise ValueError(f"unknown backend {b!r} (steport, python, fallback)")
        results[b] = dict(zip(names, sess.run(None, feeds)))
    ra, rb = (results[b] for b in backends)
    diffs = []
    for node, op, out in probes:
        mad, bad = _diff(np.asarray(ra[out]), np.asarray(rb[out]), atol)
        diffs.append(NodeDiff(node, op, out, mad, bad, int(np.asarray(ra[out]).size)))
    return NodeReport(tuple(backends), diffs)


def kernels_cover(model: onnx.ModelProto) -> list[str]:
    """Steport ops of ``model`` that have no python kernel (empty list: all covered)."""
    ours = set(DOMAINS.values())
    return sorted({f"{n.domain}::{n.op_type}" for n in model.graph.node
                   if n.domain in ours and (n.domain, n.op_type) not in _KERNELS})


__all__ = ["numpy_kernel", "kernel_for", "registered_kernels", "to_python_backend",
           "python_session", "localize_mismatch", "override_kernel", "NodeReport", "NodeDiff",
           "PythonBackendError", "kernels_cover", "PY_DOMAIN", "OPS"]
