"""Hypothesis strategies: random small VALID single-node models for every registry op (with a
PyTorch/numpy reference), and MALFORMED variants of them (one mutation each).

A case is plain data: the node's graph inputs (fed at run time), initializers, attributes, and
for valid cases the expected output. Building the ONNX model is `build_model` (no checker for
malformed cases: ORT must be the one that rejects them)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from steport.export import finalize
from steport.registry import DOMAIN_VERSION, IR_VERSION, ONNX_OPSET, OpSpec, get

from ..approx.common import np_pool, np_requant
from ..helpers import NP_TO_ONNX

HUGE = 1 << 40  # "2^40 elements" dimension used by the shape mutations


@dataclass
class Case:
    spec: OpSpec
    feeds: dict[str, np.ndarray]                 # graph inputs, fed at run time
    inits: dict[str, Any] = field(default_factory=dict)  # ndarray or a raw TensorProto
    attrs: dict[str, Any] = field(default_factory=dict)
    expected: np.ndarray | None = None           # valid cases: the reference output
    out_type: int = TensorProto.FLOAT
    out_rank: int | None = None
    declared: dict[str, list] = field(default_factory=dict)  # graph-input dims to declare
    # False: the standard-ONNX fallback body is known not to handle this valid case (see
    # docs/hardening.md "Known fallback limits"); only the library is checked.
    fallback_ok: bool = True
    what: str = "valid"

    def describe(self) -> str:
        def d(v):
            if isinstance(v, np.ndarray):
                return f"{v.dtype}{list(v.shape)}"
            if isinstance(v, TensorProto):
                return f"proto(type={v.data_type}, dims={list(v.dims)}, raw={len(v.raw_data)}B)"
            return repr(v)
        parts = [f"{k}={d(v)}" for k, v in {**self.feeds, **self.inits}.items()]
        return f"{self.spec.name}[{self.what}] {' '.join(parts)} attrs={self.attrs}"


def build_model(case: Case, check: bool) -> onnx.ModelProto:
    """One node of case.spec, port order from the registry (missing optional = "")."""
    names, graph_inputs, inits = [], [], []
    for port in case.spec.inputs:
        if port.name in case.inits:
            v = case.inits[port.name]
            t = v if isinstance(v, TensorProto) else numpy_helper.from_array(np.asarray(v), port.name)
            t.name = port.name
            inits.append(t)
            names.append(port.name)
        elif port.name in case.feeds:
            arr = case.feeds[port.name]
            dims = case.declared.get(port.name, [None] * arr.ndim)
            graph_inputs.append(helper.make_tensor_value_info(port.name, NP_TO_ONNX[arr.dtype], dims))
            names.append(port.name)
        else:
            names.append("")
    while names and names[-1] == "":
        names.pop()
    outs = [p.name for p in case.spec.outputs]
    rank = case.out_rank
    if rank is None:
        rank = case.expected.ndim if case.expected is not None else None
    out_vi = [helper.make_tensor_value_info(o, case.out_type, None if rank is None else [None] * rank)
              for o in outs]
    node = helper.make_node(case.spec.name, names, outs, domain=case.spec.domain, name="node0",
                            **case.attrs)
    graph = helper.make_graph([node], "fuzz", graph_inputs, out_vi, inits)
    model = helper.make_model(graph, opset_imports=[
        helper.make_opsetid("", ONNX_OPSET), helper.make_opsetid(case.spec.domain, DOMAIN_VERSION)],
        ir_version=IR_VERSION)
    return finalize(model, check=check)


# ---- element strategies -----------------------------------------------------------------

def _floats(draw, shape, special=True) -> np.ndarray:
    """float32 values with exact zeros, -0.0 and (optionally) NaN/Inf sprinkled in."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = np.asarray(rng.standard_normal(shape) * draw(st.sampled_from([0.5, 1.0, 4.0])),
                   np.float32).reshape(shape)
    flat = x.reshape(-1)
    if flat.size:
        flat[rng.random(flat.size) < 0.15] = 0.0
        flat[rng.random(flat.size) < 0.05] = -0.0
        if special:
            flat[rng.random(flat.size) < 0.03] = np.nan
            flat[rng.random(flat.size) < 0.03] = np.inf
            flat[rng.random(flat.size) < 0.03] = -np.inf
    return x


def _dim(draw, hi: int, zero_every: int = 6) -> int:
    """A size in [0, hi], 0 about once in `zero_every` draws (empties are edge cases, not
    the common case; hypothesis alone would favour them)."""
    return draw(st.sampled_from(list(range(1, hi + 1)) * max(1, zero_every // hi + 1) + [0]))


def _rng(draw) -> np.random.Generator:
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1)))


def _torch():
    import torch

    import steport.train  # noqa: F401  (registers the custom ops)

    return torch


# ---- valid cases, one strategy per op ---------------------------------------------------

@st.composite
def pact_case(draw) -> Case:
    torch = _torch()
    spec = get("quant", "Pact")
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=0, max_size=4)))
    x = _floats(draw, shape)
    alpha = np.float32(draw(st.floats(0.0625, 100.0, width=32)))
    alpha_arr = np.array(alpha, np.float32).reshape(draw(st.sampled_from([(), (1,)])))
    bits = draw(st.integers(1, 16))
    ref = torch.ops.steport.pact(torch.from_numpy(x), torch.from_numpy(alpha_arr), bits).numpy()
    return Case(spec, {"X": x}, {"alpha": alpha_arr}, {"bits": bits}, ref)


@st.composite
def binary_gemm_case(draw) -> Case:
    torch = _torch()
    spec = get("binary", "BinaryGemm")
    lead = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=2)))
    k = draw(st.one_of(st.integers(1, 70), st.sampled_from([63, 64, 65, 128, 129, 200])))
    n = _dim(draw, 6)
    rng = _rng(draw)
    a = _floats(draw, lead + (k,), special=False)
    b = rng.integers(0, 2**64, (n, (k + 63) // 64), dtype=np.uint64)  # stray tail bits too
    scale = (rng.random(n) + 0.1).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    ref = torch.ops.steport.binary_gemm(*map(torch.from_numpy, (a, b, scale, bias)), k).numpy()
    # N = 0: the fallback body fails onnx shape inference (Reshape of a 0-element target
    # with -1); the kernel handles it.
    return Case(spec, {"A": a}, {"B": b, "scale": scale, "bias": bias}, {"k": k}, ref,
                fallback_ok=n > 0)


def _conv_geometry(draw, max_c: int):
    group = draw(st.sampled_from([1, 1, 2, 3]))
    cg = draw(st.one_of(st.integers(1, 5), st.sampled_from([63, 64, 65])) if max_c > 8
              else st.integers(1, 4))
    og = draw(st.integers(1, 3))
    n = _dim(draw, 2, 8)
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    strides = draw(st.one_of(st.just([1, 1]), st.lists(st.integers(1, 3), min_size=2, max_size=2)))
    dil = draw(st.one_of(st.just([1, 1]), st.lists(st.integers(1, 2), min_size=2, max_size=2)))
    pads = draw(st.one_of(st.just([0] * 4), st.lists(st.integers(0, 2), min_size=4, max_size=4)))
    eh, ew = dil[0] * (kh - 1) + 1, dil[1] * (kw - 1) + 1
    # input at least as large as the dilated kernel minus the padding (possibly 0 wide)
    h = draw(st.integers(max(0, eh - pads[0] - pads[2]), 7))
    w = draw(st.integers(max(0, ew - pads[1] - pads[3]), 7))
    return dict(group=group, cg=cg, co=og * group, n=n, h=h, w=w, kh=kh, kw=kw,
                strides=strides, pads=pads, dilations=dil)


@st.composite
def binary_conv_case(draw) -> Case:
    torch = _torch()
    from steport.train.ops.binary import pack_conv_weight

    spec = get("binary", "BinaryConv2d")
    g = _conv_geometry(draw, max_c=70)
    rng = _rng(draw)
    x = _floats(draw, (g["n"], g["cg"] * g["group"], g["h"], g["w"]), special=False)
    wf = torch.from_numpy(rng.standard_normal((g["co"], g["cg"], g["kh"], g["kw"])).astype(np.float32))
    w = pack_conv_weight(wf).numpy()
    scale = (rng.random(g["co"]) + 0.1).astype(np.float32)
    bias = rng.standard_normal(g["co"]).astype(np.float32)
    pad_value = draw(st.integers(-1, 1))
    attrs = dict(strides=g["strides"], pads=g["pads"], dilations=g["dilations"],
                 group=g["group"], pad_value=pad_value)
    if draw(st.booleans()):
        attrs["kernel_shape"] = [g["kh"], g["kw"]]
    ref = torch.ops.steport.binary_conv2d(
        *map(torch.from_numpy, (x, w, scale, bias)), [g["kh"], g["kw"]], g["strides"], g["pads"],
        g["dilations"], g["group"], pad_value).numpy()
    return Case(spec, {"X": x}, {"W": w, "scale": scale, "bias": bias}, attrs, ref)


def _lut(draw) -> np.ndarray:
    from ..approx.common import exact_lut, random_lut, trunc_lut

    kind = draw(st.sampled_from(["asym", "exact", "trunc"]))
    lut = {"asym": lambda: random_lut(draw(st.integers(0, 9))), "exact": exact_lut,
           "trunc": lambda: trunc_lut(draw(st.integers(1, 4)))}[kind]()
    return lut if draw(st.booleans()) else lut.reshape(-1)


def _zp(draw, name: str) -> dict:
    form = draw(st.sampled_from(["absent", "scalar", "one"]))
    if form == "absent":
        return {}
    v = draw(st.integers(0, 255))
    return {name: np.array(v, np.uint8).reshape(() if form == "scalar" else (1,))}


@st.composite
def approx_matmul_case(draw) -> Case:
    from ..approx.common import np_matmul

    spec = get("approx", "ApproxMatMulInteger")
    rng = _rng(draw)
    lead = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=1)))
    m, k, n = _dim(draw, 9, 20), _dim(draw, 20, 30), _dim(draw, 6, 20)
    a = rng.integers(0, 256, lead + (m, k), dtype=np.uint8)
    b = rng.integers(-128, 128, (k, n), dtype=np.int8)
    lut = _lut(draw)
    zp = _zp(draw, "a_zero_point")
    zpv = int(zp["a_zero_point"].reshape(-1)[0]) if zp else 0
    ref = np_matmul(a, b, lut.reshape(256, 256), zpv)
    inits = {"B": b, "lut": lut, **zp}
    feeds = {"A": a}
    if draw(st.booleans()):  # the LUT as a run-time input instead of an initializer
        feeds["lut"] = inits.pop("lut")
    # Any 0-sized dim: ORT 1.31's ReduceSum ignores keepdims=0 on empty inputs, so the
    # fallback body returns the wrong rank; the kernel is right.
    return Case(spec, feeds, inits, {}, ref, TensorProto.INT32, fallback_ok=a.size > 0 and b.size > 0)


@st.composite
def approx_conv_case(draw) -> Case:
    from ..approx.common import np_conv

    spec = get("approx", "ApproxConvInteger")
    g = _conv_geometry(draw, max_c=6)
    rng = _rng(draw)
    if draw(st.booleans()):  # depthwise has its own kernel path
        g.update(cg=1, co=g["group"])
    x = rng.integers(0, 256, (g["n"], g["cg"] * g["group"], g["h"], g["w"]), dtype=np.uint8)
    w = rng.integers(-128, 128, (g["co"], g["cg"], g["kh"], g["kw"]), dtype=np.int8)
    lut = _lut(draw)
    zp = _zp(draw, "x_zero_point")
    zpv = int(zp["x_zero_point"].reshape(-1)[0]) if zp else 0
    attrs = dict(strides=g["strides"], pads=g["pads"], dilations=g["dilations"], group=g["group"])
    ref = np_conv(x, w, lut.reshape(256, 256), zpv, g["strides"], g["pads"], g["dilations"],
                  g["group"])
    # N = 0: the fallback body's Reshape(…, [0, -1, …]) fails in ORT; the kernel is right.
    return Case(spec, {"X": x}, {"W": w, "lut": lut, **zp}, attrs, ref, TensorProto.INT32,
                fallback_ok=g["n"] > 0)


def _requant_inputs(draw, c: int) -> dict:
    """bias (any int32: sums may wrap), multipliers of both signs (or one per tensor, or 0),
    and the output zero point in its three forms."""
    rng = _rng(draw)
    bias = rng.integers(-2**31, 2**31, c, dtype=np.int64).astype(np.int32) \
        if draw(st.booleans()) else rng.integers(-5000, 5000, c).astype(np.int32)
    n = c if draw(st.booleans()) else 1
    mult = (10.0 ** rng.uniform(-6, 0, n) * rng.choice([-1.0, 1.0, 0.0], n, p=[.3, .6, .1]))
    return {"bias": bias, "multiplier": mult.astype(np.float32), **_zp(draw, "y_zero_point")}


def _zp_value(inits: dict, name: str) -> int:
    return int(inits[name].reshape(-1)[0]) if name in inits else 0


@st.composite
def approx_qmatmul_case(draw) -> Case:
    base = draw(approx_matmul_case())
    n = base.inits["B"].shape[1]
    q = _requant_inputs(draw, n)
    ref = np_requant(base.expected, q["bias"], q["multiplier"],
                            _zp_value(q, "y_zero_point"), base.expected.ndim - 1)
    return Case(get("approx", "ApproxQLinearMatMul"), base.feeds, {**base.inits, **q}, {}, ref,
                TensorProto.UINT8, fallback_ok=base.fallback_ok)


@st.composite
def approx_qconv_case(draw) -> Case:
    base = draw(approx_conv_case())
    co, (oh, ow) = base.inits["W"].shape[0], base.expected.shape[2:]
    q = _requant_inputs(draw, co)
    codes = np_requant(base.expected, q["bias"], q["multiplier"],
                              _zp_value(q, "y_zero_point"), 1)
    k = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    s = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    p = [draw(st.integers(0, k[0] - 1)), draw(st.integers(0, k[1] - 1)),
         draw(st.integers(0, k[0] - 1)), draw(st.integers(0, k[1] - 1))]
    if oh + p[0] + p[2] < k[0] or ow + p[1] + p[3] < k[1] or not draw(st.booleans()):
        k, s, p = [1, 1], [1, 1], [0, 0, 0, 0]  # no pool
    attrs = {**base.attrs, "pool_kernel": k, "pool_strides": s, "pool_pads": p}
    return Case(get("approx", "ApproxQLinearConv"), base.feeds, {**base.inits, **q}, attrs,
                np_pool(codes, k, s, p), TensorProto.UINT8, fallback_ok=base.fallback_ok)


def _logic_x(draw, n, width) -> np.ndarray:
    rng = _rng(draw)
    x = (rng.random((n, width)) > 0.5).astype(np.float32) * rng.choice(
        np.float32([1.0, -2.0, 0.5, np.nan]), (n, width))
    return x


def _wiring(draw, widths, sizes):
    rng = _rng(draw)
    ia = np.concatenate([rng.integers(0, w, s) for w, s in zip(widths, sizes)]).astype(np.int64)
    ib = np.concatenate([rng.integers(0, w, s) for w, s in zip(widths, sizes)]).astype(np.int64)
    g = rng.integers(0, 16, sum(sizes)).astype(draw(st.sampled_from([np.uint8, np.int64])))
    return ia, ib, g


@st.composite
def logic_layer_case(draw) -> Case:
    torch = _torch()
    spec = get("logic", "LogicLayer")
    n = draw(st.one_of(st.integers(0, 5), st.sampled_from([63, 64, 65, 130])))
    width, out = draw(st.integers(1, 12)), draw(st.integers(1, 20))
    x = _logic_x(draw, n, width)
    ia, ib, g = _wiring(draw, [width], [out])
    ref = torch.ops.steport.logic_layer(*map(torch.from_numpy, (x, ia, ib, g))).numpy()
    feeds, inits = _logic_gate_tensors(draw, x, ia, ib, g)
    return Case(spec, feeds, inits, {}, ref)


def _logic_gate_tensors(draw, x, ia, ib, g) -> tuple[dict, dict]:
    """(feeds, initializers): the gate tensors as constant initializers (the kernel plans
    once per session) or as graph inputs (validated and planned on every call)."""
    gates = {"idx_a": ia, "idx_b": ib, "gate_ids": g}
    if draw(st.booleans()):
        return {"X": x, **gates}, {}
    return {"X": x}, gates


@st.composite
def logic_net_case(draw) -> Case:
    torch = _torch()
    spec = get("logic", "LogicNet")
    n = draw(st.one_of(st.integers(0, 5), st.sampled_from([63, 64, 65, 130])))
    width = draw(st.integers(1, 12))
    k = draw(st.integers(1, 4))
    # up to 40 units per class: the carry-save GroupSum folds 16 at a time
    sizes = draw(st.lists(st.integers(1, 16), min_size=0, max_size=2)) + [k * draw(st.integers(1, 40))]
    tau = float(np.float32(draw(st.one_of(st.just(1.0), st.floats(0.1, 10.0)))))
    x = _logic_x(draw, n, width)
    ia, ib, g = _wiring(draw, [width, *sizes[:-1]], sizes)
    attrs = dict(layer_sizes=sizes, num_classes=k, tau=tau)
    ref = torch.ops.steport.logic_net(*map(torch.from_numpy, (x, ia, ib, g)), sizes, k, tau).numpy()
    feeds, inits = _logic_gate_tensors(draw, x, ia, ib, g)
    return Case(spec, feeds, inits, attrs, ref)



# ---- references: the PyTorch op (numpy for approx), from a case's tensors and attributes --

def _t(case: Case) -> dict[str, np.ndarray]:
    return {**case.feeds, **{k: v for k, v in case.inits.items() if isinstance(v, np.ndarray)}}


def _ref_pact(c: Case):
    torch, t = _torch(), _t(c)
    return torch.ops.steport.pact(torch.from_numpy(t["X"]), torch.from_numpy(t["alpha"]),
                                  c.attrs["bits"]).numpy()


def _ref_gemm(c: Case):
    torch, t = _torch(), _t(c)
    return torch.ops.steport.binary_gemm(*(torch.from_numpy(t[k]) for k in ("A", "B", "scale", "bias")),
                                         c.attrs["k"]).numpy()


def _ref_bconv(c: Case):
    torch, t, a = _torch(), _t(c), c.attrs
    w = t["W"]
    return torch.ops.steport.binary_conv2d(
        *(torch.from_numpy(t[k]) for k in ("X", "W", "scale", "bias")),
        a.get("kernel_shape", list(w.shape[1:3])), a.get("strides", [1, 1]),
        a.get("pads", [0, 0, 0, 0]), a.get("dilations", [1, 1]), a.get("group", 1),
        a.get("pad_value", 0)).numpy()


def _ref_amm(c: Case):
    torch, t = _torch(), _t(c)
    zp = t.get("a_zero_point", np.zeros((), np.uint8))
    return torch.ops.steport.approx_matmul_integer(
        *(torch.from_numpy(v) for v in (t["A"], t["B"], t["lut"], zp))).numpy()


def _ref_aconv(c: Case):
    torch, t, a = _torch(), _t(c), c.attrs
    zp = t.get("x_zero_point", np.zeros((), np.uint8))
    return torch.ops.steport.approx_conv_integer(
        *(torch.from_numpy(v) for v in (t["X"], t["W"], t["lut"], zp)),
        a.get("strides", [1, 1]), a.get("pads", [0, 0, 0, 0]), a.get("dilations", [1, 1]),
        a.get("group", 1)).numpy()


def _ref_qlinear(c: Case):
    t, a = _t(c), c.attrs
    conv = c.spec.name == "ApproxQLinearConv"
    acc = (_ref_aconv if conv else _ref_amm)(c)
    codes = np_requant(acc, t["bias"], t["multiplier"], _zp_value(t, "y_zero_point"),
                              1 if conv else acc.ndim - 1)
    if not conv:
        return codes
    return np_pool(codes, a.get("pool_kernel", [1, 1]), a.get("pool_strides", [1, 1]),
                          a.get("pool_pads", [0, 0, 0, 0]))


def _ref_layer(c: Case):
    torch, t = _torch(), _t(c)
    return torch.ops.steport.logic_layer(
        *(torch.from_numpy(t[k]) for k in ("X", "idx_a", "idx_b", "gate_ids"))).numpy()


def _ref_net(c: Case):
    torch, t, a = _torch(), _t(c), c.attrs
    return torch.ops.steport.logic_net(
        *(torch.from_numpy(t[k]) for k in ("X", "idx_a", "idx_b", "gate_ids")),
        a["layer_sizes"], a["num_classes"], a.get("tau", 1.0)).numpy()


REFERENCE: dict[str, Callable[[Case], np.ndarray]] = {
    "Pact": _ref_pact, "BinaryGemm": _ref_gemm, "BinaryConv2d": _ref_bconv,
    "ApproxMatMulInteger": _ref_amm, "ApproxConvInteger": _ref_aconv,
    "ApproxQLinearMatMul": _ref_qlinear, "ApproxQLinearConv": _ref_qlinear,
    "LogicLayer": _ref_layer, "LogicNet": _ref_net,
}


@st.composite
def drop_defaults(draw, case: Case) -> Case:
    """Attributes equal to their registry default may be left out of the node: the kernel
    and the fallback body must both apply the default."""
    for a in case.spec.attrs:
        if a.required or a.default is None or a.name not in case.attrs:
            continue
        v, d = case.attrs[a.name], a.default
        same = list(v) == list(d) if isinstance(d, (list, tuple)) else v == d
        if same and draw(st.booleans()):
            del case.attrs[a.name]
    return case


def _with_defaults(strategy) -> Callable[[], st.SearchStrategy[Case]]:
    return lambda: strategy().flatmap(drop_defaults)


VALID: dict[str, Callable[[], st.SearchStrategy[Case]]] = {
    "Pact": pact_case, "BinaryGemm": binary_gemm_case,
    "BinaryConv2d": _with_defaults(binary_conv_case),
    "ApproxMatMulInteger": approx_matmul_case, "ApproxConvInteger": _with_defaults(approx_conv_case),
    "ApproxQLinearMatMul": approx_qmatmul_case,
    "ApproxQLinearConv": _with_defaults(approx_qconv_case),
    "LogicLayer": logic_layer_case, "LogicNet": _with_defaults(logic_net_case),
}


# ---- malformed: one mutation applied to a valid case -----------------------------------

def _lying_tensor(arr: np.ndarray, dims: list[int]) -> TensorProto:
    """A TensorProto whose dims claim far more elements than its raw bytes hold."""
    t = numpy_helper.from_array(np.ascontiguousarray(arr))
    del t.dims[:]
    t.dims.extend(dims)
    return t


def _all_tensors(case: Case) -> dict[str, tuple[str, np.ndarray]]:
    out = {k: ("feeds", v) for k, v in case.feeds.items()}
    out.update({k: ("inits", v) for k, v in case.inits.items() if isinstance(v, np.ndarray)})
    return out


def _put(case: Case, name: str, value) -> None:
    where = "feeds" if name in case.feeds else "inits"
    if isinstance(value, TensorProto) and where == "feeds":
        case.feeds.pop(name)
        where = "inits"
    getattr(case, where)[name] = value


# Attribute values that are out of range or of the wrong form, per attribute kind.
BAD_INTS = [0, -1, -(1 << 62), 1 << 40, (1 << 24) + 1, 17, 16, 65537, 1 << 20]
BAD_FLOATS = [0.0, -1.0, float("nan"), float("inf"), -float("inf"), 1e-45, 3.4e38]


@st.composite
def mutate(draw, case: Case) -> Case:
    """One random mutation: tensor dtype/shape/size/content, attribute values, huge dims."""
    case.expected = None
    spec = case.spec
    tensors = _all_tensors(case)
    kinds = ["dtype", "shape", "truncate", "empty", "values", "lying_dims", "drop",
             "huge_declared", "huge_zero_size"]
    if spec.attrs:
        kinds += ["attr", "attr", "attr_list"]
    kind = draw(st.sampled_from(kinds))
    name = draw(st.sampled_from(sorted(tensors)))
    _, arr = tensors[name]
    rng = _rng(draw)
    if kind == "dtype":
        dt = draw(st.sampled_from(["float32", "float64", "int8", "uint8", "int32", "int64",
                                   "uint64", "bool"]))
        _put(case, name, arr.astype(dt) if arr.size else np.zeros(arr.shape, dt))
    elif kind == "shape":
        op = draw(st.sampled_from(["add_dim", "drop_dim", "grow", "shrink", "scalar"]))
        if op == "add_dim":
            new = arr.reshape((1,) + arr.shape)
        elif op == "drop_dim" and arr.ndim:
            new = arr.reshape(arr.shape[1:]) if arr.shape[0] == 1 else arr.reshape(-1)
        elif op in ("grow", "shrink") and arr.ndim:
            ax = draw(st.integers(0, arr.ndim - 1))
            shape = list(arr.shape)
            shape[ax] = max(0, shape[ax] + (draw(st.integers(1, 65)) * (1 if op == "grow" else -1)))
            new = np.resize(arr, shape) if all(shape) else np.zeros(shape, arr.dtype)
        else:
            new = arr.reshape(-1)[:1].reshape(()) if arr.size else np.zeros((), arr.dtype)
        _put(case, name, new.astype(arr.dtype))
    elif kind == "truncate":  # e.g. packed weights or a LUT cut short, flattened
        flat = arr.reshape(-1)
        cut = draw(st.integers(0, max(0, flat.size - 1)))
        _put(case, name, np.ascontiguousarray(flat[:cut]))
    elif kind == "empty":
        shape = list(arr.shape) or [0]
        shape[draw(st.integers(0, len(shape) - 1))] = 0
        _put(case, name, np.zeros(shape, arr.dtype))
    elif kind == "values":
        new = arr.copy()
        if new.size:
            flat = new.reshape(-1)
            if new.dtype.kind == "f":
                flat[rng.integers(0, flat.size)] = draw(st.sampled_from(
                    [np.nan, np.inf, -np.inf, 0.0, -1.0, 3.4e38]))
            else:
                info = np.iinfo(new.dtype)
                flat[rng.integers(0, flat.size)] = draw(st.sampled_from(
                    sorted({info.min, info.max, 0, min(info.max, 16), min(info.max, 255),
                            max(info.min, -1)})))
        _put(case, name, new)
    elif kind == "lying_dims":
        dims = draw(st.sampled_from([[1 << 20, 1 << 20], [HUGE], [2, HUGE, 3], [-1, 4],
                                     list(arr.shape) + [2]]))
        _put(case, name, _lying_tensor(arr, dims))
    elif kind == "drop":
        case.feeds.pop(name, None)
        case.inits.pop(name, None)
    elif kind == "huge_declared" and name in case.feeds:
        case.declared[name] = [HUGE] * max(1, arr.ndim)
    elif kind in ("huge_declared", "huge_zero_size"):
        # zero elements but one 2^40 dimension: costs no memory, stresses size arithmetic
        shape = list(arr.shape)
        if len(shape) < 2:
            shape = [0, HUGE] if draw(st.booleans()) else [HUGE, 0]
        else:
            i, j = draw(st.permutations(range(len(shape))))[:2]
            shape[i], shape[j] = 0, HUGE
        z = np.zeros(shape, arr.dtype)
        if name in case.feeds:
            case.feeds[name] = z
        else:
            case.inits[name] = z
    elif kind == "attr":
        a = draw(st.sampled_from(spec.attrs))
        if a.kind == "int":
            case.attrs[a.name] = draw(st.sampled_from(BAD_INTS))
        elif a.kind == "float":
            case.attrs[a.name] = draw(st.sampled_from(BAD_FLOATS))
        elif a.kind == "ints":
            cur = list(case.attrs.get(a.name) or [1, 1])
            i = draw(st.integers(0, len(cur) - 1))
            cur[i] = draw(st.sampled_from(BAD_INTS))
            case.attrs[a.name] = cur
    else:  # attr_list: wrong number of values for list attributes (or a list where a scalar goes)
        a = draw(st.sampled_from(spec.attrs))
        if a.kind == "ints":
            case.attrs[a.name] = draw(st.sampled_from([[], [1], [1, 1, 1], [1] * 5, [HUGE, HUGE]]))
        else:
            case.attrs.pop(a.name, None)  # a required attribute missing
    case.what = f"malformed:{kind}:{name}"
    return case


def malformed_case(op: str) -> st.SearchStrategy[Case]:
    return VALID[op]().flatmap(mutate)


def has_empty(case: Case) -> bool:
    """Any 0-element tensor: the fallback body is no oracle there (ORT 1.31's ReduceSum
    ignores keepdims=0 on empty inputs; Reshape with -1 fails on 0 elements)."""
    return any(v.size == 0 for v in _t(case).values())


def explicit_cases(op: str) -> list[Case]:
    """Hand-written extremes run before the random ones: outputs far beyond memory (the
    allocation must fail as a clean error, never crash) and 2^40-row zero-size inputs."""
    from ..approx.common import exact_lut

    f32, one = np.float32, np.ones(1, np.float32)
    gemm_w = {"B": np.ones((1, 1), np.uint64), "scale": one, "bias": np.zeros(1, f32)}
    conv_w = {"W": np.ones((1, 1, 1, 1), np.uint64), "scale": one, "bias": np.zeros(1, f32)}
    table = {
        "Pact": [Case(get("quant", "Pact"), {"X": np.zeros((HUGE, 0, 3), f32)},
                      {"alpha": one}, {"bits": 4}, out_rank=3)],
        "BinaryGemm": [Case(get("binary", "BinaryGemm"), {"A": np.zeros((HUGE, 0, 5), f32)},
                            gemm_w, {"k": 5}, out_rank=3)],
        "BinaryConv2d": [  # max pads: a 131073 x 131073 output plane (69 GB)
            Case(get("binary", "BinaryConv2d"), {"X": np.ones((1, 1, 1, 1), f32)}, conv_w,
                 {"pads": [65536] * 4}, out_rank=4),
            Case(get("binary", "BinaryConv2d"), {"X": np.zeros((HUGE, 1, 0, 0), f32)}, conv_w,
                 {"pads": [1] * 4}, out_rank=4)],
        "ApproxMatMulInteger": [  # [2^40, 2^40] output overflows int64 byte counts
            Case(get("approx", "ApproxMatMulInteger"), {"A": np.zeros((HUGE, 0), np.uint8)},
                 {"B": np.zeros((0, HUGE), np.int8), "lut": exact_lut()}, {},
                 out_type=TensorProto.INT32, out_rank=2),
            Case(get("approx", "ApproxMatMulInteger"), {"A": np.zeros((HUGE, 0), np.uint8)},
                 {"B": np.zeros((0, 3), np.int8), "lut": exact_lut()}, {},
                 out_type=TensorProto.INT32, out_rank=2)],
        "ApproxConvInteger": [
            Case(get("approx", "ApproxConvInteger"), {"X": np.zeros((HUGE, 1, 0, 0), np.uint8)},
                 {"W": np.ones((1, 1, 1, 1), np.int8), "lut": exact_lut()}, {"pads": [1] * 4},
                 out_type=TensorProto.INT32, out_rank=4)],
        "ApproxQLinearMatMul": [  # [2^40, 3] codes and their int32 sums
            Case(get("approx", "ApproxQLinearMatMul"), {"A": np.zeros((HUGE, 0), np.uint8)},
                 {"B": np.zeros((0, 3), np.int8), "lut": exact_lut(),
                  "bias": np.zeros(3, np.int32), "multiplier": one},
                 {}, out_type=TensorProto.UINT8, out_rank=2)],
        "ApproxQLinearConv": [
            Case(get("approx", "ApproxQLinearConv"), {"X": np.zeros((HUGE, 1, 0, 0), np.uint8)},
                 {"W": np.ones((1, 1, 1, 1), np.int8), "lut": exact_lut(),
                  "bias": np.zeros(1, np.int32), "multiplier": one},
                 {"pads": [1] * 4, "pool_kernel": [2, 2], "pool_strides": [2, 2]},
                 out_type=TensorProto.UINT8, out_rank=4)],
        "LogicLayer": [
            Case(get("logic", "LogicLayer"), {"X": np.zeros((0, HUGE), f32)},
                 {"idx_a": np.zeros(1, np.int64), "idx_b": np.zeros(1, np.int64),
                  "gate_ids": np.ones(1, np.uint8)}, {}, out_rank=2)],
        "LogicNet": [
            Case(get("logic", "LogicNet"), {"X": np.zeros((HUGE, 0), f32)},
                 {"idx_a": np.zeros(1, np.int64), "idx_b": np.zeros(1, np.int64),
                  "gate_ids": np.ones(1, np.uint8)},
                 {"layer_sizes": [1], "num_classes": 1}, out_rank=2),
            Case(get("logic", "LogicNet"), {"X": np.ones((2, 3), f32)},
                 {"idx_a": np.zeros(2, np.int64), "idx_b": np.zeros(2, np.int64),
                  "gate_ids": np.ones(2, np.uint8)},
                 {"layer_sizes": [1, HUGE], "num_classes": 1}, out_rank=2)],
    }
    for c in table[op]:
        c.what = "explicit"
    return table[op]
