"""The hostile-model suite's cases: hand-written models a hostile but realistic user could
hand to ORT + libsteport_ops, for every registry op (docs/hardening.md §5).

Each case starts from one small valid single-node model of its op and changes one thing:
an index out of range or negative, an attribute of another type or out of bounds, a size
that overflows int32 / int64 / size_t, a zero size, an input shorter than declared, a node
moved into a subgraph or shadowed by a model-local function, an initializer pointing at
external data outside the model. Each states what must happen:

  error     onnxruntime raises (session creation or run) - a clear error, not a crash
  refused   steport.session() raises ValueError (the registry check) before ORT sees it
  oracle    runs and equals, bit for bit, stock onnxruntime on `oracle` (the fallback body)
  either    a clean ORT error, or a run equal to the oracle (where both are correct)
  runs      a clean ORT error or a run (no oracle exists, e.g. 2^40-row declared shapes)

Built in the pytest process (onnx, steport.export); the children (run.py) get plain bytes
and arrays, so they import only numpy and onnxruntime."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from steport.registry import DOMAIN_VERSION, IR_VERSION, ONNX_OPSET, OPS, OpSpec, get

from ..approx.common import np_pool, np_requant
from ..helpers import NP_TO_ONNX

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


@dataclass
class HostileCase:
    op: str
    name: str
    model: bytes
    feeds: dict[str, np.ndarray]
    expect: str                       # error | refused | oracle | either | runs
    runner: str = "raw"               # raw: ORT + library; steport: steport.session()
    oracle: bytes | None = None       # model stock ORT runs for the expected output
    match: str = ""                   # substring the error message must contain
    expected: list | None = None      # outputs from a numpy reference, where no oracle is
    files: dict | None = None         # given: the model is loaded from a file in a fresh
    #                                   folder holding these files (external data)

    @property
    def label(self) -> str:
        return f"{self.op}/{self.name}"


@dataclass
class Base:
    """One valid node: graph inputs (fed), initializers, attributes, output rank/type."""
    spec: OpSpec
    feeds: dict[str, np.ndarray]
    inits: dict[str, object] = field(default_factory=dict)  # ndarray or raw TensorProto
    attrs: dict = field(default_factory=dict)
    out_type: int = TensorProto.FLOAT
    declared: dict[str, list] = field(default_factory=dict)

    def copy(self) -> "Base":
        return Base(self.spec, dict(self.feeds), dict(self.inits), copy.deepcopy(self.attrs),
                    self.out_type, dict(self.declared))


def _rng():
    return np.random.default_rng(19)


def _pack_signs(w: np.ndarray) -> np.ndarray:
    """[..., K] of +-1 -> [..., ceil(K/64)] uint64, bit k%64 of word k//64 = (w >= 0)."""
    bits = (w >= 0).astype(np.uint64)
    k = bits.shape[-1]
    kw = (k + 63) // 64
    padded = np.zeros(bits.shape[:-1] + (kw * 64,), np.uint64)
    padded[..., :k] = bits
    words = padded.reshape(bits.shape[:-1] + (kw, 64))
    return (words << np.arange(64, dtype=np.uint64)).sum(-1, dtype=np.uint64)


def bases() -> dict[str, Base]:
    r = _rng()
    lut = r.integers(-300, 300, (256, 256)).astype(np.int32)  # asymmetric, signed
    b = {}
    b["Pact"] = Base(get("quant", "Pact"),
                     {"X": r.standard_normal((2, 3)).astype(np.float32) * 3},
                     {"alpha": np.array([2.0], np.float32)}, {"bits": 4})
    b["BinaryGemm"] = Base(get("binary", "BinaryGemm"),
                           {"A": r.standard_normal((2, 70)).astype(np.float32)},
                           {"B": _pack_signs(r.standard_normal((3, 70))),
                            "scale": np.array([1.0, 0.5, 2.0], np.float32),
                            "bias": np.array([0.0, 1.0, -1.0], np.float32)}, {"k": 70})
    b["BinaryConv2d"] = Base(get("binary", "BinaryConv2d"),
                             {"X": r.standard_normal((1, 3, 5, 5)).astype(np.float32)},
                             {"W": _pack_signs(r.standard_normal((4, 3, 3, 3))),
                              "scale": np.ones(4, np.float32), "bias": np.zeros(4, np.float32)},
                             {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1],
                              "dilations": [1, 1], "group": 1, "pad_value": 0})
    b["ApproxMatMulInteger"] = Base(get("approx", "ApproxMatMulInteger"),
                                    {"A": r.integers(0, 256, (2, 5)).astype(np.uint8)},
                                    {"B": r.integers(-128, 128, (5, 3)).astype(np.int8), "lut": lut,
                                     "a_zero_point": np.array(3, np.uint8)},
                                    out_type=TensorProto.INT32)
    b["ApproxConvInteger"] = Base(get("approx", "ApproxConvInteger"),
                                  {"X": r.integers(0, 256, (1, 2, 5, 5)).astype(np.uint8)},
                                  {"W": r.integers(-128, 128, (3, 2, 3, 3)).astype(np.int8),
                                   "lut": lut, "x_zero_point": np.array(7, np.uint8)},
                                  {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1],
                                   "group": 1}, out_type=TensorProto.INT32)
    requant = {"bias": np.array([-9000, 0, 2**31 - 50], np.int32),  # the last one wraps
               "multiplier": np.array([0.004, -0.003, 0.0025], np.float32)}  # a BN sign flip
    # the int32 ops' nodes plus the requantization inputs (and the conv's max-pool)
    mm, conv = b["ApproxMatMulInteger"], b["ApproxConvInteger"]
    b["ApproxQLinearMatMul"] = Base(get("approx", "ApproxQLinearMatMul"), dict(mm.feeds),
                                    {**mm.inits, **requant, "y_zero_point": np.array(100, np.uint8)},
                                    out_type=TensorProto.UINT8)
    b["ApproxQLinearConv"] = Base(get("approx", "ApproxQLinearConv"), dict(conv.feeds),
                                  {**conv.inits, **requant, "y_zero_point": np.array(50, np.uint8)},
                                  {**conv.attrs, "pool_kernel": [2, 2], "pool_strides": [2, 2],
                                   "pool_pads": [0, 0, 0, 0]}, out_type=TensorProto.UINT8)
    b["LogicLayer"] = Base(get("logic", "LogicLayer"),
                           {"X": (r.random((4, 6)) > 0.5).astype(np.float32)},
                           {"idx_a": np.array([0, 1, 2, 3, 5], np.int64),
                            "idx_b": np.array([5, 4, 3, 2, 0], np.int64),
                            "gate_ids": np.array([1, 6, 7, 14, 9], np.uint8)})
    b["LogicNet"] = Base(get("logic", "LogicNet"),
                         {"X": (r.random((4, 6)) > 0.5).astype(np.float32)},
                         {"idx_a": np.array([0, 1, 2, 3, 5, 0, 1, 2, 3], np.int64),
                          "idx_b": np.array([5, 4, 3, 2, 0, 4, 3, 2, 1], np.int64),
                          "gate_ids": np.array([1, 6, 7, 14, 9, 8, 7, 6, 1], np.uint8)},
                         {"layer_sizes": [5, 4], "num_classes": 2, "tau": 2.0})
    assert sorted(b) == sorted(op.name for op in OPS), "a registry op has no hostile base case"
    return b


def _tensor(name: str, v) -> TensorProto:
    if isinstance(v, TensorProto):
        t = copy.deepcopy(v)
        t.name = name
        return t
    return numpy_helper.from_array(np.asarray(v), name)


def node_of(base: Base, name: str = "node0", **override) -> onnx.NodeProto:
    names = []
    for p in base.spec.inputs:
        names.append(p.name if (p.name in base.inits or p.name in base.feeds) else "")
    while names and names[-1] == "":
        names.pop()
    attrs = {**base.attrs, **override}
    attrs = {k: v for k, v in attrs.items() if v is not None}
    return helper.make_node(base.spec.name, names, [p.name for p in base.spec.outputs],
                            domain=base.spec.domain, name=name, **attrs)


def graph_io(base: Base):
    ins = []
    for k, v in base.feeds.items():
        dims = base.declared.get(k, [None] * v.ndim)
        ins.append(helper.make_tensor_value_info(k, NP_TO_ONNX[v.dtype], dims))
    outs = [helper.make_tensor_value_info(p.name, base.out_type, None) for p in base.spec.outputs]
    return ins, outs


def model_of(base: Base, nodes=None, functions=(), fallback=True, extra_opsets=()) -> onnx.ModelProto:
    ins, outs = graph_io(base)
    graph = helper.make_graph(nodes if nodes is not None else [node_of(base)], "hostile", ins, outs,
                              [_tensor(k, v) for k, v in base.inits.items()])
    model = helper.make_model(graph, functions=list(functions), opset_imports=[
        helper.make_opsetid("", ONNX_OPSET), helper.make_opsetid(base.spec.domain, DOMAIN_VERSION),
        *extra_opsets])
    model.ir_version = IR_VERSION
    if fallback:
        _attach_fallbacks(model, base)
    return model


def _attach_fallbacks(model: onnx.ModelProto, base: Base) -> None:
    """Fallback bodies for the op, also when its node sits in a subgraph or a function."""
    have = {(f.domain, f.name) for f in model.functions}
    if (base.spec.domain, base.spec.name) in have:
        return
    fn = base.spec.fallback_fn()(node_of(base))
    model.functions.append(fn)
    present = {o.domain for o in model.opset_import}
    for o in fn.opset_import:
        if o.domain not in present:
            model.opset_import.append(helper.make_opsetid(o.domain, o.version))
            present.add(o.domain)


def _bytes(m: onnx.ModelProto) -> bytes:
    return m.SerializeToString()


class Builder:
    def __init__(self, base: Base):
        self.base = base
        self.cases: list[HostileCase] = []

    def add(self, name, base_or_model, expect, runner="raw", match="", oracle=None, feeds=None,
            expected=None, files=None):
        model = base_or_model if isinstance(base_or_model, onnx.ModelProto) else model_of(base_or_model)
        b = base_or_model if isinstance(base_or_model, Base) else self.base
        if expect in ("oracle", "either") and oracle is None:
            oracle = model
        self.cases.append(HostileCase(self.base.spec.name, name, _bytes(model),
                                      dict(feeds if feeds is not None else b.feeds), expect, runner,
                                      _bytes(oracle) if oracle is not None else None, match,
                                      expected, files))


# ---- generic mutations, per input port and per attribute -------------------------------

_OTHER_DTYPE = {np.dtype(np.float32): np.float64, np.dtype(np.uint8): np.int8,
                np.dtype(np.int8): np.uint8, np.dtype(np.int32): np.int64,
                np.dtype(np.int64): np.int32, np.dtype(np.uint64): np.int64}


def _raw(dtype: int, dims: list[int], nbytes: int) -> TensorProto:
    t = TensorProto()
    t.data_type = dtype
    t.dims.extend(dims)
    t.raw_data = b"\x01" * nbytes
    return t


def _external(dtype: int, dims: list[int], location: str, length: int | None = None,
              offset: int | None = None) -> TensorProto:
    t = TensorProto()
    t.data_type = dtype
    t.dims.extend(dims)
    t.data_location = TensorProto.EXTERNAL
    e = t.external_data.add()
    e.key, e.value = "location", location
    e = t.external_data.add()
    e.key, e.value = "length", str(length if length is not None else 4 * int(np.prod(dims)))
    if offset is not None:
        e = t.external_data.add()
        e.key, e.value = "offset", str(offset)
    return t


def port_cases(bld: Builder) -> None:
    base = bld.base
    for port in base.spec.inputs:
        name = port.name
        value = base.inits.get(name, base.feeds.get(name))
        if value is None:
            continue
        value = np.asarray(value)
        onnx_type = NP_TO_ONNX[value.dtype]
        as_feed = name in base.feeds

        # another element type (the registry allows one or two per port)
        if np.dtype(_OTHER_DTYPE[value.dtype]).name not in port.types:
            b = base.copy()
            (b.feeds if as_feed else b.inits)[name] = value.astype(_OTHER_DTYPE[value.dtype])
            bld.add(f"{name}:dtype-{np.dtype(_OTHER_DTYPE[value.dtype]).name}", b, "error")

        # required input left out (its name "")
        if not port.optional:
            b = base.copy()
            b.feeds.pop(name, None)
            b.inits.pop(name, None)
            bld.add(f"{name}:missing", b, "error")

        if as_feed:
            # declared dims that the fed array does not have: 2^40 rows, 2^31 (int32 wrap)
            for dim in (1 << 40, 1 << 31, INT64_MAX):
                b = base.copy()
                b.declared[name] = [dim] + [None] * (value.ndim - 1)
                bld.add(f"{name}:declared-dim0-{dim}", b, "error")
            # one more / one fewer dimension
            if base.spec.name != "Pact":  # Pact is elementwise: any rank is valid
                b = base.copy()
                b.feeds[name] = value[None]
                bld.add(f"{name}:extra-dim", b, "either")
                b = base.copy()
                b.feeds[name] = value.reshape(-1)
                bld.add(f"{name}:flattened", b, "either")
            # a zero-size batch: a correct empty output or a clean error, never garbage
            b = base.copy()
            b.feeds[name] = value[:0]
            bld.add(f"{name}:empty-batch", b, "runs")
            continue

        # initializers: data shorter than the dims claim (2^31 elements, int32 wrap), dims
        # whose product overflows int64 / size_t, a negative dim, external data outside
        for dims, what in (([value.size + 1], "one-short"),
                           ([1 << 31], "2^31-elements"),
                           ([1 << 32, 1 << 32], "product-2^64"),
                           ([1 << 62, 4], "bytes-overflow"),
                           ([INT64_MAX], "int64-max"),
                           ([-1, value.size], "negative-dim")):
            b = base.copy()
            b.inits[name] = _raw(onnx_type, dims, value.nbytes)
            bld.add(f"{name}:init-{what}", b, "error")
        for loc, what in (("../../../../etc/passwd", "parent-dirs"), ("/etc/passwd", "absolute"),
                          ("missing.bin", "missing-file")):
            b = base.copy()
            b.inits[name] = _external(onnx_type, list(value.shape), loc)
            bld.add(f"{name}:external-{what}", b, "error")
        # loaded from a file, as `steport serve model.onnx` does: data beside the model is
        # read; paths leaving the model's folder, and lengths / offsets past the file, are not
        data = {"weights.bin": value.tobytes()}
        for loc, length, offset, what, expect in (
                ("weights.bin", value.nbytes, None, "beside-model", "oracle"),
                ("../../../../../etc/passwd", value.nbytes, None, "parent-dirs", "error"),
                ("/etc/passwd", value.nbytes, None, "absolute", "error"),
                ("weights.bin", value.nbytes + 8, None, "length-past-file", "error"),
                ("weights.bin", value.nbytes, 1 << 40, "offset-past-file", "error"),
                ("weights.bin", value.nbytes, -8, "negative-offset", "error")):
            b = base.copy()
            b.inits[name] = _external(onnx_type, list(value.shape), loc, length, offset)
            bld.add(f"{name}:file-external-{what}", b, expect, files=data,
                    oracle=model_of(base) if expect == "oracle" else None)
        if value.size > 1:
            b = base.copy()
            b.inits[name] = value.reshape(-1)[:0].reshape((0,) + value.shape[1:]) if value.ndim \
                else value
            bld.add(f"{name}:init-empty", b, "either")
            b = base.copy()
            b.inits[name] = value.reshape(-1)[:-1]
            bld.add(f"{name}:init-one-element-short", b, "error")


_WRONG_TYPE = {"int": [1.5, "7", [1, 2]], "float": [3, "x", [1.0, 2.0]],
               "ints": [4, 2.5, "1,1"], "floats": [1, "x"], "string": [7, 1.0]}


def attr_cases(bld: Builder) -> None:
    base = bld.base
    for a in base.spec.attrs:
        for bad in _WRONG_TYPE[a.kind]:
            m = model_of(base, nodes=[node_of(base, **{a.name: bad})])
            bld.add(f"attr-{a.name}:type-{type(bad).__name__}", m, "error", match=f"'{a.name}'")
        present = base.attrs.get(a.name)
        if a.kind == "int" and a.lo is not None:
            for v in sorted({int(a.lo) - 1, int(a.hi) + 1, INT64_MIN, INT64_MAX}):
                m = model_of(base, nodes=[node_of(base, **{a.name: int(v)})], fallback=False)
                bld.add(f"attr-{a.name}:value-{v}", m, "error", match=a.name)
        if a.kind == "ints" and present is not None:
            for i in range(len(present)):
                edges = {int(a.lo) - 1, int(a.hi) + 1} if a.lo is not None else {0, -1}
                for v in sorted(edges | {INT64_MIN, INT64_MAX}):
                    vals = list(present)
                    vals[i] = v
                    m = model_of(base, nodes=[node_of(base, **{a.name: vals})], fallback=False)
                    bld.add(f"attr-{a.name}[{i}]:value-{v}", m, "error")
            for vals in (present[:1], present + present[:1]):
                m = model_of(base, nodes=[node_of(base, **{a.name: vals})], fallback=False)
                bld.add(f"attr-{a.name}:length-{len(vals)}", m, "error")
        if a.kind == "float":
            for v in (0.0, -1.0, float("nan"), float("inf")):
                m = model_of(base, nodes=[node_of(base, **{a.name: v})], fallback=False)
                bld.add(f"attr-{a.name}:value-{v}", m, "error")
        if a.required:
            m = model_of(base, nodes=[node_of(base, **{a.name: None})], fallback=False)
            bld.add(f"attr-{a.name}:missing", m, "error")
    m = model_of(base, nodes=[node_of(base, bogus_attribute=1)])
    bld.add("attr-unknown-name", m, "refused", runner="steport", match="unknown attribute")


# ---- subgraphs and model-local functions -----------------------------------------------

def _if_model(base: Base, inner: onnx.NodeProto) -> onnx.ModelProto:
    """The node in the then-branch of an If whose condition is a constant true."""
    out = base.spec.outputs[0].name
    then_g = helper.make_graph([inner], "then", [], [helper.make_tensor_value_info(
        out, base.out_type, None)])
    else_g = helper.make_graph([node_of(base, name="else_copy")], "else", [],
                               [helper.make_tensor_value_info(out, base.out_type, None)])
    nodes = [helper.make_node("Constant", [], ["cond"], value=numpy_helper.from_array(
                 np.array(True), "cond")),
             helper.make_node("If", ["cond"], [out], then_branch=then_g, else_branch=else_g,
                              name="if0")]
    return model_of(base, nodes=nodes)


def structure_cases(bld: Builder) -> None:
    base = bld.base
    clean = model_of(base)
    bld.add("valid", clean, "oracle")
    bld.add("in-if-branch", _if_model(base, node_of(base, name="in_then")), "oracle", oracle=clean)
    bld.add("in-if-branch:unknown-op", _if_model(
        base, helper.make_node(base.spec.name + "V2", list(node_of(base).input),
                               [base.spec.outputs[0].name], domain=base.spec.domain, name="v2")),
        "refused", runner="steport", match="V2")
    if base.spec.attrs:
        a = base.spec.attrs[-1]
        bld.add("in-if-branch:attr-wrong-type",
                _if_model(base, node_of(base, name="in_then", **{a.name: _WRONG_TYPE[a.kind][0]})),
                "error", match=f"'{a.name}'")
    # a model-local function of the op's own name with another body: the library's kernel
    # must run (the registered op wins), never the impostor body
    out = base.spec.outputs[0].name
    impostor = helper.make_function(
        base.spec.domain, base.spec.name, [p.name for p in base.spec.inputs], [out],
        [helper.make_node("Identity", [base.spec.inputs[0].name], [out])],
        [helper.make_opsetid("", ONNX_OPSET)], [a.name for a in base.spec.attrs])
    bld.add("shadowed-by-impostor-function", model_of(base, functions=[impostor]), "oracle",
            oracle=clean)
    # the op inside a user's model-local function (ORT inlines it)
    node = node_of(base, name="in_fn")
    wrapper = helper.make_function(
        "user.hostile", "Wrap", list(node.input), [out], [node],
        [helper.make_opsetid("", ONNX_OPSET), helper.make_opsetid(base.spec.domain, DOMAIN_VERSION)])
    call = helper.make_node("Wrap", list(node.input), [out], domain="user.hostile", name="call")
    bld.add("inside-user-function", model_of(base, nodes=[call], functions=[wrapper],
                                             extra_opsets=[helper.make_opsetid("user.hostile", 1)]),
            "oracle", oracle=clean)
    # a newer version of our domain imported by a function only
    fn = helper.make_function("user.hostile", "F", ["a"], ["b"],
                              [helper.make_node("Identity", ["a"], ["b"])],
                              [helper.make_opsetid("", ONNX_OPSET),
                               helper.make_opsetid(base.spec.domain, DOMAIN_VERSION + 1)])
    bld.add("function-imports-domain-v2", model_of(base, functions=[fn]), "refused",
            runner="steport", match="version 2")


# ---- op-specific: indices, gate ids, GroupSum, huge outputs ----------------------------

def logic_cases(bld: Builder) -> None:
    base = bld.base
    width = base.feeds["X"].shape[1]
    n_gates = base.inits["idx_a"].size
    for port in ("idx_a", "idx_b"):
        for pos, bad in ((0, -1), (0, width), (n_gates - 1, INT64_MAX), (n_gates - 1, INT64_MIN),
                         (2, 1 << 31), (2, 1 << 32)):
            for as_feed in (False, True):
                b = base.copy()
                v = np.array(base.inits[port])
                v[pos] = bad
                del b.inits[port]
                (b.feeds if as_feed else b.inits)[port] = v
                where = "input" if as_feed else "init"
                bld.add(f"{port}[{pos}]={bad}:{where}", b, "error", match="out of range")
    for bad in (16, 255):
        b = base.copy()
        g = np.array(base.inits["gate_ids"])
        g[1] = bad
        b.inits["gate_ids"] = g
        bld.add(f"gate_ids[1]={bad}:uint8", b, "error", match="gate id")
    for bad in (-1, 16, 1 << 40, INT64_MIN):
        b = base.copy()
        g = np.array(base.inits["gate_ids"]).astype(np.int64)
        g[2] = bad
        b.inits["gate_ids"] = g
        bld.add(f"gate_ids[2]={bad}:int64", b, "error", match="gate id")
    b = base.copy()
    b.inits["gate_ids"] = np.array(base.inits["gate_ids"]).astype(np.int64)
    bld.add("gate_ids:int64-valid", b, "oracle")
    if base.spec.name == "LogicNet":
        for sizes, what in (([5, 5], "sum-too-big"), ([4, 4], "sum-too-small"),
                            ([5, 3, 1], "last-not-multiple"), ([9], "one-layer-width-mismatch"),
                            ([1 << 62, 4], "huge-layer"), ([0, 9], "zero-layer")):
            m = model_of(base, nodes=[node_of(base, layer_sizes=sizes)], fallback=False)
            bld.add(f"layer_sizes={what}", m, "error")
        # layer 1 indexes layer 0's outputs (width 5): 5 is out of range there only
        b = base.copy()
        v = np.array(base.inits["idx_a"])
        v[6] = 5
        b.inits["idx_a"] = v
        bld.add("idx_a[layer1]=layer0-width", b, "error", match="layer 1")


def binary_cases(bld: Builder) -> None:
    base = bld.base
    if base.spec.name == "BinaryGemm":
        for k in (69, 71, 128, 1):
            m = model_of(base, nodes=[node_of(base, k=k)], fallback=False)
            bld.add(f"k={k}-vs-A-width-70", m, "error")
        b = base.copy()
        w = np.array(base.inits["B"])
        w[:, -1] |= np.uint64(0xFFFF_FFFF_FFFF_FFC0)  # stray tail bits past k = 70: ignored
        b.inits["B"] = w
        bld.add("B:stray-tail-bits", b, "oracle", oracle=model_of(base))
        for scale in (np.float32("nan"), np.float32("inf")):
            b = base.copy()
            s = np.array(base.inits["scale"])
            s[0] = scale
            b.inits["scale"] = s
            bld.add(f"scale[0]={scale}", b, "oracle")
    else:
        # pads at the registry maximum on a 5x5 input: a 131077^2 x 4 float output (275 GB)
        m = model_of(base, nodes=[node_of(base, pads=[1 << 16] * 4)], fallback=False)
        bld.add("pads=2^16:output-275GB", m, "error")
        m = model_of(base, nodes=[node_of(base, kernel_shape=[5, 5])], fallback=False)
        bld.add("kernel_shape-vs-W", m, "error", match="kernel_shape")
        m = model_of(base, nodes=[node_of(base, group=3, kernel_shape=None)], fallback=False)
        bld.add("group=3-C_out-4", m, "error", match="group")
        m = model_of(base, nodes=[node_of(base, dilations=[3, 3], pads=[0, 0, 0, 0])], fallback=False)
        bld.add("dilated-kernel-larger-than-input", m, "error")
        for pv in (-1, 1):
            b = base.copy()
            b.attrs["pad_value"] = pv
            bld.add(f"pad_value={pv}", b, "oracle")


def approx_reference(b: Base) -> np.ndarray:
    """Independent numpy reference of both approx ops (int64 sums, then wrapped to int32):
    each tap adds LUT[a, uint8(w)] - zp * w; padded conv taps read a = zp."""
    lut = np.asarray(b.inits["lut"]).reshape(256, 256).astype(np.int64)
    if b.spec.name in ("ApproxMatMulInteger", "ApproxQLinearMatMul"):
        a = b.feeds["A"].astype(np.int64)
        w = np.asarray(b.inits["B"]).astype(np.int64)
        zp = int(np.asarray(b.inits["a_zero_point"]))
        y = lut[a[:, :, None], (w & 0xFF)[None]].sum(1) - zp * w.sum(0)[None]
    else:
        x = b.feeds["X"].astype(np.int64)
        w = np.asarray(b.inits["W"]).astype(np.int64)
        zp = int(np.asarray(b.inits["x_zero_point"]))
        p = b.attrs["pads"]
        assert b.attrs["strides"] == [1, 1] and b.attrs["dilations"] == [1, 1] and b.attrs["group"] == 1
        xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[2]), (p[1], p[3])), constant_values=zp)
        n, _, hp, wp = xp.shape
        co, ci, kh, kw = w.shape
        oh, ow = hp - kh + 1, wp - kw + 1
        y = np.zeros((n, co, oh, ow), np.int64)
        for i in range(oh):
            for j in range(ow):
                patch = xp[:, :, i:i + kh, j:j + kw]                      # [n, ci, kh, kw]
                prod = lut[patch[:, None], (w & 0xFF)[None]] - zp * w[None]  # [n, co, ci, kh, kw]
                y[:, :, i, j] = prod.reshape(n, co, -1).sum(-1)
    y = ((y + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)
    return y if "QLinear" not in b.spec.name else qlinear_output(b, y)


def qlinear_output(b: Base, acc: np.ndarray) -> np.ndarray:
    """The QLinear ops' output stage on int32 sums (tests/approx/common.py), then the conv's
    max-pool."""
    conv = b.spec.name == "ApproxQLinearConv"
    zp = int(np.asarray(b.inits.get("y_zero_point", np.uint8(0))))
    y = np_requant(acc, np.asarray(b.inits["bias"]), np.asarray(b.inits["multiplier"]), zp,
                   1 if conv else acc.ndim - 1)
    if not conv:
        return y
    return np_pool(y, b.attrs.get("pool_kernel", [1, 1]), b.attrs.get("pool_strides", [1, 1]),
                   b.attrs.get("pool_pads", [0, 0, 0, 0]))


def approx_cases(bld: Builder) -> None:
    base = bld.base
    for shape, what in (((256, 255), "lut-256x255"), ((65535,), "lut-65535"),
                        ((256, 256, 1), "lut-rank3"), ((0,), "lut-empty")):
        b = base.copy()
        b.inits["lut"] = np.zeros(shape, np.int32)
        bld.add(what, b, "error")
    b = base.copy()
    b.inits["lut"] = np.asarray(base.inits["lut"]).reshape(-1)
    bld.add("lut-flat-65536", b, "oracle")
    conv = base.spec.name in ("ApproxConvInteger", "ApproxQLinearConv")
    zp = "x_zero_point" if conv else "a_zero_point"
    for v, what in ((np.array([1, 2], np.uint8), "zp-two-values"),
                    (np.zeros((1, 1), np.uint8), "zp-rank2"),
                    (np.zeros((0,), np.uint8), "zp-empty")):
        b = base.copy()
        b.inits[zp] = v
        bld.add(what, b, "either")
    # sums past int32 wrap modulo 2^32 (docs/ops.md); stock ORT's int32 ReduceSum in the
    # fallback body saturates instead, so a numpy reference is the oracle here
    for fill in (np.iinfo(np.int32).max, np.iinfo(np.int32).min):
        b = base.copy()
        b.inits["lut"] = np.full((256, 256), fill, np.int32)
        bld.add(f"lut-all-{fill}:wraps", b, "oracle", expected=[approx_reference(b)])
    if conv:
        m = model_of(base, nodes=[node_of(base, group=2)], fallback=False)
        bld.add("group=2-C_out-3", m, "error")
        m = model_of(base, nodes=[node_of(base, dilations=[4, 4], pads=[0, 0, 0, 0])], fallback=False)
        bld.add("dilated-kernel-larger-than-input", m, "error")
    else:
        b = base.copy()
        b.inits["B"] = np.asarray(base.inits["B"])[:4]
        bld.add("B-K-4-vs-A-K-5", b, "error")


def qlinear_cases(bld: Builder) -> None:
    """The LUT cases, then the requantization's inputs and the pool's attributes."""
    approx_cases(bld)
    base = bld.base
    c = np.asarray(base.inits["bias"]).size
    for v in (np.nan, np.inf, -np.inf):
        b = base.copy()
        b.inits["multiplier"] = np.array([0.01, v, 0.01], np.float32)
        bld.add(f"multiplier-{v}", b, "error", match="finite")
    for name, arr, what in (
            ("multiplier", np.ones(c - 1, np.float32), "multiplier-short"),
            ("multiplier", np.ones((c, 1), np.float32), "multiplier-rank2"),
            ("multiplier", np.zeros(0, np.float32), "multiplier-empty"),
            ("bias", np.zeros(c + 1, np.int32), "bias-long"),
            ("bias", np.zeros(0, np.int32), "bias-empty"),
            ("bias", np.zeros((c, 1), np.int32), "bias-rank2")):
        b = base.copy()
        b.inits[name] = arr
        bld.add(what, b, "error", match=name)
    for v, what in ((np.array([1, 2], np.uint8), "y-zp-two-values"),
                    (np.zeros((1, 1), np.uint8), "y-zp-rank2")):
        b = base.copy()
        b.inits["y_zero_point"] = v
        bld.add(what, b, "either")
    b = base.copy()
    b.inits["multiplier"] = np.array([0.004], np.float32)
    bld.add("multiplier-per-tensor", b, "oracle")
    b = base.copy()
    del b.inits["y_zero_point"]
    bld.add("y-zp-omitted", b, "oracle")
    if base.spec.name == "ApproxQLinearConv":
        for attrs, what in ((dict(pool_pads=[2, 0, 0, 0]), "pool-pad-equals-window"),
                            (dict(pool_pads=[0, 0, 0, 5]), "pool-pad-past-window"),
                            (dict(pool_kernel=[9, 9], pool_strides=[1, 1]), "pool-larger-than-output"),
                            (dict(pool_kernel=[2, 2, 2]), "pool-kernel-3-values"),
                            (dict(pool_strides=[0, 1]), "pool-stride-0"),
                            (dict(pool_kernel=[1 << 40, 2]), "pool-kernel-2^40")):
            m = model_of(base, nodes=[node_of(base, **attrs)], fallback=False)
            bld.add(what, m, "error")


def pact_cases(bld: Builder) -> None:
    base = bld.base
    for v in (0.0, -1.0, float("nan"), float("inf"), float("-inf")):
        b = base.copy()
        b.inits["alpha"] = np.array([v], np.float32)
        bld.add(f"alpha={v}", b, "error", match="alpha")
    for shape in ((2,), (1, 1), (0,)):
        b = base.copy()
        b.inits["alpha"] = np.full(shape, 2.0, np.float32)
        bld.add(f"alpha-shape-{list(shape)}", b, "error", match="alpha")
    b = base.copy()
    b.feeds["X"] = np.array([np.nan, np.inf, -np.inf, -0.0, 1e38, -1e38, 2.0, 1.0], np.float32)
    bld.add("X-specials", b, "oracle")
    b = base.copy()
    b.inits["alpha"] = np.array(2.0, np.float32)
    bld.add("alpha-rank0", b, "oracle")


SPECIFIC = {"Pact": pact_cases, "BinaryGemm": binary_cases, "BinaryConv2d": binary_cases,
            "ApproxMatMulInteger": approx_cases, "ApproxConvInteger": approx_cases,
            "ApproxQLinearMatMul": qlinear_cases, "ApproxQLinearConv": qlinear_cases,
            "LogicLayer": logic_cases, "LogicNet": logic_cases}


def cases_for(op: str) -> list[HostileCase]:
    bld = Builder(bases()[op])
    structure_cases(bld)
    port_cases(bld)
    attr_cases(bld)
    SPECIFIC[op](bld)
    names = [c.name for c in bld.cases]
    assert len(names) == len(set(names)), f"{op}: duplicate case names"
    return bld.cases


def all_cases() -> dict[str, list[HostileCase]]:
    return {op.name: cases_for(op.name) for op in OPS}
