"""Every registry op's fallback body runs under ``onnx.reference.ReferenceEvaluator`` (docs/ops.md:
"stock onnxruntime, onnx.checker and onnx.reference run it") and gives exactly what stock
onnxruntime gives running the same body.

Each op gets a small single-node model (``tests/helpers.single_node_model``, which attaches the
op's fallback function) with inputs that reach its corners (padding, groups, dilation, zero
points, NaN logic inputs, every gate id). The two evaluators are compared bit for bit, float
outputs included: every float op here sums small integers (±1 products, gate counts) exactly
before one scale/bias/divide, so any difference is a real disagreement about the body.

Where onnx.reference (onnx 1.23) cannot run a model as it stands, the run is an expected failure
naming the gap (strict: once onnx closes it the test fails until the entry here is removed), and
a second test fills the gap to show the rest of the body runs and agrees. Three gaps, all in
onnx.reference, none in the bodies: DequantizeLinear below opset 19 (the approx bodies read the
zero point through it; filled with a shim of its ONNX semantics), a node that omits a trailing
optional input of a function, and a function's declared attribute defaults (both filled by
writing out what the node leaves implicit).

The approx bodies are also checked against the PyTorch op on LUTs whose sums overflow int32:
onnx.reference wraps as docs/ops.md says; stock onnxruntime's int32 ReduceSum saturates instead
(an expected failure that names the fix)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

from steport.registry import IR_VERSION, ONNX_OPSET, OPS, OpSpec
from steport.train.ops.binary import pack_conv_weight, pack_signs

from .conftest import assert_bitexact
from .helpers import feeds_for, single_node_model

# Standard ops onnx.reference (onnx 1.23) cannot run at ONNX_OPSET, with why.
REFERENCE_GAPS = {
    "DequantizeLinear": f"onnx.reference implements DequantizeLinear from opset 19 only (its "
                        f"_op_list has DequantizeLinear_19/21/23/25); the fallback bodies target "
                        f"opset {ONNX_OPSET}, i.e. DequantizeLinear-13, so the evaluator refuses "
                        f"the node ('No implementation for operator DequantizeLinear ... version "
                        f"{ONNX_OPSET}')",
}


class DequantizeLinear(OpRun):
    """DequantizeLinear-13 as the ONNX spec defines it: y = (x - zero_point) * scale, per tensor
    or per ``axis`` for a 1-D scale; float32 out. Only used to fill REFERENCE_GAPS."""

    op_domain = ""

    def _run(self, x, x_scale, x_zero_point=None, axis=1, block_size=None, output_dtype=None):
        # onnx.reference passes every attribute of the newest schema; v13 has only axis
        assert not block_size and not output_dtype, "not DequantizeLinear-13 attributes"
        shape = [1] * x.ndim
        if x_scale.ndim == 1 and x_scale.size > 1:
            shape[axis] = x_scale.size
        dx = x.astype(np.float32)
        if x_zero_point is not None:
            dx = dx - x_zero_point.astype(np.float32).reshape(shape if x_zero_point.size > 1 else [])
        return ((dx * x_scale.reshape(shape if x_scale.size > 1 else [])).astype(x_scale.dtype),)


SHIMS = {"DequantizeLinear": DequantizeLinear}


class ReferenceEvaluatorWithShims(ReferenceEvaluator):
    """ReferenceEvaluator with the SHIMS as extra ops, in model-local functions too: the
    evaluator builds one evaluator per function as ``self.__class__(function, ...)`` without
    passing ``new_ops`` on, so the shims ride on the class."""

    def __init__(self, proto, *args, new_ops=None, **kwargs):
        super().__init__(proto, *args, new_ops=[*(new_ops or []), *SHIMS.values()], **kwargs)


# ---- one example per registry op ---------------------------------------------------------
# qualname -> rng -> list of (inputs, initializers, attributes, out_types, out_ranks)

def _pact(rng):
    x = (rng.standard_normal((3, 17)) * 2).astype(np.float32)
    x[0, :5] = [0.25, 0.75, 1.25, -0.5, 3.0]  # halfway codes (round half to even), both clips
    return [({"X": x}, {"alpha": np.array([1.5], np.float32)}, {"bits": 2}, None, None),
            ({"X": x}, {"alpha": np.array([0.7], np.float32)}, {"bits": 8}, None, None)]


def _binary_gemm(rng):
    k, n = 130, 5  # three 64-bit words, a tail of 2 bits
    a = rng.standard_normal((2, 3, k)).astype(np.float32)
    a[0, 0, :4] = 0.0  # sign(0) = +1
    inits = {"B": pack_signs(torch.from_numpy(rng.standard_normal((n, k)))).numpy(),
             "scale": (rng.random(n) + 0.5).astype(np.float32),
             "bias": rng.standard_normal(n).astype(np.float32)}
    return [({"A": a}, inits, {"k": k}, None, None)]


def _binary_conv(rng):
    x = rng.standard_normal((2, 6, 7, 6)).astype(np.float32)
    inits = {"W": pack_conv_weight(torch.from_numpy(rng.standard_normal((4, 3, 3, 2)))).numpy(),
             "scale": (rng.random(4) + 0.5).astype(np.float32),
             "bias": rng.standard_normal(4).astype(np.float32)}
    return [({"X": x}, inits, dict(kernel_shape=[3, 2], strides=[2, 1], pads=[1, 0, 1, 1],
                                   dilations=[1, 2], group=2, pad_value=pv), None, None)
            for pv in (-1, 0, 1)]


def _lut(rng, wrapping: bool = False):
    """A random LUT; its sums over K <= 64 fit int32 unless ``wrapping`` (then they wrap)."""
    lim = 2**31 if wrapping else 2**24
    return rng.integers(-lim, lim, (256, 256), dtype=np.int64).astype(np.int32)


def _approx_matmul(rng, wrapping: bool = False):
    a = rng.integers(0, 256, (2, 3, 40), dtype=np.uint8)
    b = rng.integers(-128, 128, (40, 5), dtype=np.int8)
    out = ([TensorProto.INT32], [3])
    zp = {"a_zero_point": np.array(7, np.uint8)}
    return [({"A": a}, {"B": b, "lut": _lut(rng, wrapping), **zp}, {}, *out),
            ({"A": a}, {"B": b, "lut": _lut(rng, wrapping)}, {}, *out)]  # zero point omitted: 0


def _approx_conv(rng, wrapping: bool = False):
    x = rng.integers(0, 256, (2, 4, 6, 5), dtype=np.uint8)
    w = rng.integers(-128, 128, (6, 2, 3, 3), dtype=np.int8)
    attrs = dict(strides=[1, 2], pads=[1, 1, 0, 2], dilations=[2, 1], group=2)
    out = ([TensorProto.INT32], [4])
    zp = {"x_zero_point": np.array(9, np.uint8)}
    return [({"X": x}, {"W": w, "lut": _lut(rng, wrapping), **zp}, attrs, *out),
            ({"X": x}, {"W": w, "lut": _lut(rng, wrapping)}, {"group": 2}, *out)]  # defaults, zp 0


def _requant(rng, c: int, per_channel: bool = True) -> dict:
    mult = (rng.random(c if per_channel else 1) * 2e-6 + 1e-7) * rng.choice([-1, 1], c if per_channel else 1)
    return {"bias": rng.integers(-10**6, 10**6, c, dtype=np.int32),
            "multiplier": mult.astype(np.float32)}


def _approx_qmatmul(rng):
    a = rng.integers(0, 256, (2, 3, 40), dtype=np.uint8)
    b = rng.integers(-128, 128, (40, 5), dtype=np.int8)
    out = ([TensorProto.UINT8], [3])
    zps = {"a_zero_point": np.array(7, np.uint8), "y_zero_point": np.array(120, np.uint8)}
    return [({"A": a}, {"B": b, "lut": _lut(rng), **_requant(rng, 5), **zps}, {}, *out),
            ({"A": a}, {"B": b, "lut": _lut(rng), **_requant(rng, 5, False)}, {}, *out)]


def _approx_qconv(rng):
    x = rng.integers(0, 256, (2, 4, 8, 7), dtype=np.uint8)
    w = rng.integers(-128, 128, (6, 2, 3, 3), dtype=np.int8)
    attrs = dict(strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=2,
                 pool_kernel=[3, 2], pool_strides=[2, 2], pool_pads=[1, 0, 1, 1])
    out = ([TensorProto.UINT8], [4])
    zps = {"x_zero_point": np.array(9, np.uint8), "y_zero_point": np.array(30, np.uint8)}
    return [({"X": x}, {"W": w, "lut": _lut(rng), **_requant(rng, 6), **zps}, attrs, *out),
            ({"X": x}, {"W": w, "lut": _lut(rng), **_requant(rng, 6, False)}, {"group": 2}, *out)]


def _logic_x(rng):
    x = rng.standard_normal((5, 12)).astype(np.float32)
    x[x < 0] = 0.0
    x[0, 0], x[1, 1] = np.nan, -0.0  # NaN counts as 1, -0.0 as 0
    return x


def _logic_layer(rng):
    x = _logic_x(rng)
    idx = {"idx_a": rng.integers(0, 12, 16), "idx_b": rng.integers(0, 12, 16)}
    return [({"X": x}, {**idx, "gate_ids": np.arange(16, dtype=dt)}, {}, None, [2])
            for dt in (np.uint8, np.int64)]


def _logic_net(rng):
    x, sizes = _logic_x(rng), [16, 9, 6]
    widths = [12, 16, 9]
    ia = np.concatenate([rng.integers(0, w, s) for w, s in zip(widths, sizes)])
    ib = np.concatenate([rng.integers(0, w, s) for w, s in zip(widths, sizes)])
    g = rng.integers(0, 16, sum(sizes))
    return [({"X": x}, {"idx_a": ia, "idx_b": ib, "gate_ids": g.astype(dt)},
             dict(layer_sizes=sizes, num_classes=3, tau=tau), None, [2])
            for dt, tau in ((np.uint8, 2.0), (np.int64, 0.3))]


EXAMPLES: dict[str, Callable] = {
    "ai.steport.quant::Pact": _pact,
    "ai.steport.binary::BinaryGemm": _binary_gemm,
    "ai.steport.binary::BinaryConv2d": _binary_conv,
    "ai.steport.approx::ApproxMatMulInteger": _approx_matmul,
    "ai.steport.approx::ApproxConvInteger": _approx_conv,
    "ai.steport.approx::ApproxQLinearMatMul": _approx_qmatmul,
    "ai.steport.approx::ApproxQLinearConv": _approx_qconv,
    "ai.steport.logic::LogicLayer": _logic_layer,
    "ai.steport.logic::LogicNet": _logic_net,
}


def _examples(spec: OpSpec, seed: int = 0, **kwargs) -> list[tuple[onnx.ModelProto, dict]]:
    out = []
    for inputs, inits, attrs, out_types, out_ranks in EXAMPLES[spec.qualname](
            np.random.default_rng(seed), **kwargs):
        model = single_node_model(spec, inputs, inits, out_types=out_types, out_ranks=out_ranks,
                                  **attrs)
        out.append((model, feeds_for(inputs)))
    return out


def _body_op_types(model: onnx.ModelProto) -> set[str]:
    """Standard op types the model-local functions use, in subgraphs (Loop bodies) too."""
    found: set[str] = set()

    def walk(nodes):
        for n in nodes:
            if n.domain in ("", "ai.onnx"):
                found.add(n.op_type)
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g.node)
                for g in a.graphs:
                    walk(g.node)

    for f in model.functions:
        walk(f.node)
    return found


OMITTED_INPUT_GAP = (
    "onnx.reference calls a model-local function only when the node passes every function "
    "input: a node that leaves out a trailing optional input, as ONNX allows (here the zero "
    "point), is refused ('Mismatch lengths between the number of inputs 3 and the expected "
    "number of inputs 4'); stock onnxruntime runs it, and an explicit '' input works in both")


DEFAULTED_ATTRIBUTE_GAP = (
    "onnx.reference ignores the attribute defaults a model-local function declares "
    "(FunctionProto.attribute_proto, IR >= 9): a node that leaves out an attribute with a "
    "default (here strides/pads/dilations) fails ('Unable to find a value for linked attribute "
    "value_ints'); stock onnxruntime applies the default")


def _omitted_inputs(model: onnx.ModelProto) -> int:
    return len(model.functions[0].input) - len(model.graph.node[0].input)


def _defaulted_attributes(model: onnx.ModelProto) -> list[onnx.AttributeProto]:
    given = {a.name for a in model.graph.node[0].attribute}
    return [a for a in model.functions[0].attribute_proto if a.name not in given]


def _gaps(model: onnx.ModelProto) -> list[str]:
    """Why onnx.reference cannot run this model as it is (empty: it can)."""
    gaps = [f"{op}: {why}" for op, why in REFERENCE_GAPS.items() if op in _body_op_types(model)]
    gaps += [OMITTED_INPUT_GAP] if _omitted_inputs(model) > 0 else []
    return gaps + ([DEFAULTED_ATTRIBUTE_GAP] if _defaulted_attributes(model) else [])


def _with_gaps_filled(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same model with what it leaves implicit written out: omitted trailing optional
    inputs as '', omitted attributes as the function's declared defaults."""
    filled = onnx.ModelProto()
    filled.CopyFrom(model)
    node = filled.graph.node[0]
    node.input.extend([""] * _omitted_inputs(model))
    node.attribute.extend(_defaulted_attributes(model))
    return filled


def _stock_ort(model: onnx.ModelProto, feeds: dict):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so).run(None, feeds)


def _compare(got, want, what=""):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert_bitexact(g, w, what)


def _cases():
    cases = []
    for spec in OPS:
        if spec.qualname in EXAMPLES:  # else test_every_registry_op_has_an_example fails
            for i, (model, feeds) in enumerate(_examples(spec)):
                cases.append(pytest.param(model, feeds, _gaps(model), id=f"{spec.qualname}-{i}"))
    return cases


CASES = _cases()


def test_every_registry_op_has_an_example():
    """A new registry op needs an example here, so its body is run under onnx.reference."""
    assert set(EXAMPLES) == {op.qualname for op in OPS}


@pytest.mark.parametrize("model, feeds, gaps", CASES)
def test_fallback_body_runs_under_reference_evaluator(model, feeds, gaps, request):
    if gaps:
        request.applymarker(pytest.mark.xfail(strict=True, raises=(RuntimeError, ValueError),
                                              reason="; ".join(gaps)))
    _compare(ReferenceEvaluator(model).run(None, feeds), _stock_ort(model, feeds))


@pytest.mark.parametrize("model, feeds, gaps", [c for c in CASES if c.values[2]] or [
    pytest.param(None, None, None, id="none")])
def test_fallback_body_with_reference_gaps_filled(model, feeds, gaps):
    """The gaps filled (missing ops given their ONNX semantics, omitted inputs written as ''):
    the rest of the body runs under onnx.reference and agrees with stock onnxruntime on the
    model as it was, bit for bit."""
    if model is None:
        pytest.skip("every body runs under onnx.reference as it is")
    assert {op for op in REFERENCE_GAPS if op in _body_op_types(model)} <= set(SHIMS)
    _compare(ReferenceEvaluatorWithShims(_with_gaps_filled(model)).run(None, feeds),
             _stock_ort(model, feeds))


def test_dequantize_shim_matches_onnxruntime():
    """The shim is ONNX DequantizeLinear-13: same as onnxruntime on per-tensor and per-axis
    scales, with and without a zero point."""
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (2, 3, 4), dtype=np.uint8)
    cases = [(np.array(0.5, np.float32), np.array(7, np.uint8), None),
             (np.array(1.0, np.float32), None, None),
             ((rng.random(3) + 0.1).astype(np.float32), rng.integers(0, 256, 3, dtype=np.uint8), 1)]
    for scale, zp, axis in cases:
        inits = [numpy_helper.from_array(scale, "s")] + (
            [numpy_helper.from_array(zp, "zp")] if zp is not None else [])
        node = helper.make_node("DequantizeLinear", ["x", "s"] + (["zp"] if zp is not None else []),
                                ["y"], **({"axis": axis} if axis is not None else {}))
        graph = helper.make_graph([node], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.UINT8, None)],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                                  inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
                                  ir_version=IR_VERSION)
        assert_bitexact(ReferenceEvaluatorWithShims(model).run(None, {"x": x})[0],
                        _stock_ort(model, {"x": x})[0], f"scale {scale.shape}, zp {zp is not None}")


# ---- approx sums that overflow int32 ------------------------------------------------------
# docs/ops.md: approx integer sums wrap modulo 2^32 like int32 accumulators, "identically in
# PyTorch, C++ and the fallback". The PyTorch op is the reference here.

def _torch_approx(spec: OpSpec, inputs: dict, inits: dict, attrs: dict) -> np.ndarray:
    from steport.train.ops import approx as ops

    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in {**inputs, **inits}.items()}
    zp = t.get("a_zero_point", t.get("x_zero_point", torch.tensor(0, dtype=torch.uint8)))
    if spec.name == "ApproxMatMulInteger":
        return ops.approx_matmul_integer(t["A"], t["B"], t["lut"], zp).numpy()
    a = {**{n: spec.attr(n).default for n in ("strides", "pads", "dilations", "group")}, **attrs}
    return ops.approx_conv_integer(t["X"], t["W"], t["lut"], zp, list(a["strides"]),
                                   list(a["pads"]), list(a["dilations"]), a["group"]).numpy()


APPROX_WRAPPING = {"ApproxMatMulInteger": _approx_matmul, "ApproxConvInteger": _approx_conv}


def _wrapping_cases(name: str):
    spec = next(op for op in OPS if op.family == "approx" and op.name == name)
    for inputs, inits, attrs, out_types, out_ranks in APPROX_WRAPPING[name](
            np.random.default_rng(1), wrapping=True):
        model = single_node_model(spec, inputs, inits, out_types=out_types, out_ranks=out_ranks,
                                  **attrs)
        yield model, feeds_for(inputs), _torch_approx(spec, inputs, inits, attrs)


@pytest.mark.parametrize("name", sorted(APPROX_WRAPPING))
def test_reference_evaluator_wraps_approx_sums_like_the_spec(name):
    """Under onnx.reference (gaps filled) the approx bodies wrap their int32 sums, bit for bit
    with the PyTorch op, on a LUT whose sums overflow."""
    for i, (model, feeds, want) in enumerate(_wrapping_cases(name)):
        got = ReferenceEvaluatorWithShims(_with_gaps_filled(model)).run(None, feeds)[0]
        assert_bitexact(got, want, f"{name} example {i}")


@pytest.mark.parametrize("name", sorted(APPROX_WRAPPING))
def test_stock_onnxruntime_wraps_approx_sums_like_the_spec(name):
    """Stock onnxruntime's int32 ReduceSum saturates (3 * 2^30 -> 2147483647): the bodies sum
    in int64 and wrap in the final Cast, as the kernels and docs/ops.md do."""
    for i, (model, feeds, want) in enumerate(_wrapping_cases(name)):
        assert_bitexact(_stock_ort(model, feeds)[0], want, f"{name} example {i}")


@pytest.mark.parametrize("spec", OPS, ids=lambda s: s.qualname)
def test_numpy_reference_kernels_as_onnx_reference_ops_match_the_library(spec):
    """steport.export.reference_kernels.reference_evaluator(): the numpy kernels as
    onnx.reference ops replace the fallback bodies (so no body gap applies) and give the C++
    kernels' outputs bit for bit."""
    from steport.export.reference_kernels import reference_evaluator

    from .conftest import run_steport

    for model, feeds in _examples(spec, seed=2):
        got = reference_evaluator(model).run(None, feeds)
        for y, want in zip(got, run_steport(model, feeds)):
            assert_bitexact(np.asarray(y), want)
