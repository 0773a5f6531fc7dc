"""The registry is the single source of truth: every op in it has a torch op, a
translation, a fallback body that passes the checker, and a kernel in the library that
agrees with it on domain, name, version, input types and attribute bounds (checked through
onnxruntime, not by reading the generated header)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import onnx
import onnxruntime as ort
import pytest

from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidGraph, RuntimeException

import steport
from steport.registry import (DOMAINS, IR_VERSION, ONNX_OPSET, OPS, check_model_ops, families,
                              get)
from steport.registry.__main__ import ONNX_TYPES, header_text

IDS = [op.qualname for op in OPS]


@pytest.mark.parametrize("spec", OPS, ids=IDS)
def test_torch_op_and_translation_exist(spec):
    if spec.torch_op is None:
        pytest.skip("export-only op")
    from steport.train.ops import torch_overload

    assert torch_overload(spec) is not None
    assert callable(spec.translation_fn())


def _attr_value(a):
    """A valid value for a required attribute, from its registry bounds."""
    if a.kind == "int":
        return int(a.lo) if a.lo is not None else 1
    if a.kind == "float":
        return float(a.lo) if a.lo is not None and a.lo > 0 else 1.0
    return {"ints": [1], "floats": [1.0], "string": "x"}[a.kind]


def _typed_model(spec, types: dict[str, str] | None = None, fallback: bool = False,
                 **attrs) -> onnx.ModelProto:
    """One node of ``spec`` whose required inputs are graph inputs of their first declared
    element type (``types`` overrides some), required attributes set to valid values
    (``attrs`` overrides or adds), no shapes; with ``fallback`` its model-local fallback
    body is attached."""
    types = types or {}
    ins = [p for p in spec.inputs if not p.optional]
    attrs = {**{a.name: _attr_value(a) for a in spec.attrs if a.required}, **attrs}
    node = onnx.helper.make_node(spec.name, [p.name for p in ins], [p.name for p in spec.outputs],
                                 domain=spec.domain, name="node0", **attrs)

    def vi(port):
        return onnx.helper.make_tensor_value_info(
            port.name, ONNX_TYPES[types.get(port.name, port.types[0])], None)

    graph = onnx.helper.make_graph([node], "g", [vi(p) for p in ins], [vi(p) for p in spec.outputs])
    model = onnx.helper.make_model(graph, ir_version=IR_VERSION, opset_imports=[
        onnx.helper.make_opsetid("", ONNX_OPSET),
        onnx.helper.make_opsetid(spec.domain, spec.version)])
    if fallback:
        model.functions.append(spec.fallback_fn()(node))
        for o in model.functions[0].opset_import:
            if o.domain not in {x.domain for x in model.opset_import}:
                model.opset_import.append(o)
    return model


def _library_session(model: onnx.ModelProto) -> ort.InferenceSession:
    """Plain onnxruntime with the library registered (no steport.session() model checks:
    what is tested is the C++ side)."""
    so = ort.SessionOptions()
    so.register_custom_ops_library(steport.library_path())
    return ort.InferenceSession(model.SerializeToString(), so)


@pytest.mark.parametrize("spec", OPS, ids=IDS)
def test_fallback_body_passes_the_checker_and_runs_in_stock_ort(spec):
    """The fallback body of every op, attached to a node with typed inputs, passes
    onnx.checker, strict type and shape inference through the body, and builds a stock ORT
    session (no library): the path a model takes where steport's kernels are absent."""
    model = _typed_model(spec, fallback=True)
    f = model.functions[0]
    assert (f.domain, f.name) == (spec.domain, spec.name)
    ctx = onnx.checker.C.CheckerContext()
    ctx.ir_version = model.ir_version
    ctx.opset_imports = {o.domain: o.version for o in model.opset_import}
    onnx.checker.check_function(f, ctx)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    ort.InferenceSession(model.SerializeToString())  # raises if ORT cannot inline the body


CPU_OPS = [op for op in OPS if "cpu" in op.kernels]


@pytest.mark.parametrize("spec", CPU_OPS, ids=lambda s: s.qualname)
def test_cpu_kernel_registered(spec):
    """A node without a fallback body: with the library ORT builds the session (the kernel
    exists under the registry's domain, name and version and accepts the declared types);
    without it, the op is unknown."""
    model = _typed_model(spec)
    _library_session(model)
    with pytest.raises(Fail, match=r"not a registered function/op"):
        ort.InferenceSession(model.SerializeToString())


# (op, input port, element type that port accepts)
_ACCEPTED = [(op, p, t) for op in CPU_OPS for p in op.inputs
             if not p.optional for t in p.types]
# (op, input port, an element type the registry does not allow there)
_REFUSED = [(op, p, next(t for t in ("int32", "double", "float") if t not in p.types))
            for op in CPU_OPS for p in op.inputs
            if not p.optional and len(p.types) == 1]


@pytest.mark.parametrize("spec,port,type_name", _ACCEPTED,
                         ids=[f"{o.name}.{p.name}:{t}" for o, p, t in _ACCEPTED])
def test_kernel_accepts_every_declared_input_type(spec, port, type_name):
    _library_session(_typed_model(spec, {port.name: type_name}))


@pytest.mark.parametrize("spec,port,type_name", _REFUSED,
                         ids=[f"{o.name}.{p.name}:{t}" for o, p, t in _REFUSED])
def test_kernel_refuses_an_undeclared_input_type(spec, port, type_name):
    """A port with one declared type is typed in the C++ binding (from the generated
    header): ORT refuses another type before any kernel runs."""
    with pytest.raises(InvalidGraph, match=rf"Type 'tensor\({type_name}\)' of input parameter "
                                           rf"\({port.name}\)"):
        _library_session(_typed_model(spec, {port.name: type_name}))


# (op, int attribute, a value just outside its registry bounds, the bound itself)
_BOUNDS = [(op, a, edge + step, edge) for op in CPU_OPS for a in op.attrs
           if a.kind == "int" for edge, step in ((a.lo, -1), (a.hi, 1)) if edge is not None]


@pytest.mark.parametrize("spec,attr,outside,edge", _BOUNDS,
                         ids=[f"{o.name}.{a.name}={v}" for o, a, v, _ in _BOUNDS])
def test_kernel_attribute_bounds_are_the_registry_bounds(spec, attr, outside, edge):
    """The C++ kernels take attribute bounds from the generated header: the bound itself
    is accepted, one step outside is refused with the attribute named."""
    try:
        _library_session(_typed_model(spec, **{attr.name: int(edge)}))
    except RuntimeException as e:  # e.g. LogicNet: num_classes at its bound does not divide
        # the stand-in layer_sizes; what matters is that the bound passes the range check
        assert not re.search(rf"'{attr.name}'.*out of range", str(e)), str(e)
    with pytest.raises(RuntimeException, match=rf"'{attr.name}'.*out of range"):
        _library_session(_typed_model(spec, **{attr.name: int(outside)}))


def test_registry_cli_lists_ops():
    out = subprocess.run([sys.executable, "-m", "steport.registry"], capture_output=True,
                         text=True, check=True).stdout
    for op in OPS:
        assert op.qualname in out


def test_lookup_errors_are_clear():
    with pytest.raises(KeyError, match="no op ai.steport.quant::Nope"):
        get("quant", "Nope")
    model = onnx.helper.make_model(onnx.helper.make_graph([], "g", [], []),
                                   opset_imports=[onnx.helper.make_opsetid("ai.steport.quant", 7)])
    with pytest.raises(ValueError, match="version 7"):
        check_model_ops(model)


def test_library_loads_in_this_onnxruntime():
    so = ort.SessionOptions()
    so.register_custom_ops_library(steport.library_path())
    assert ort.__version__.startswith("1.31"), "tested pin: onnxruntime 1.31 (headers are 1.21)"


def test_onnx_type_numbering_is_onnx_own():
    """The generated header writes ONNX element type codes; they must be ONNX's numbering
    (what ORT uses), checked against onnx.TensorProto, not against our own table."""
    names = {"float16": "FLOAT16", "double": "DOUBLE"}
    for name, code in ONNX_TYPES.items():
        assert getattr(onnx.TensorProto, names.get(name, name.upper())) == code, name


def test_every_family_has_its_registry_module_sources_and_binding():
    """The family list is spec.DOMAINS alone: the registry loads steport.registry.<family>,
    CMake includes core/<family>/sources.cmake for each family `--families` prints, and
    families.cc calls Register<Family>Ops from the generated STEPORT_FAMILIES. So each family
    needs exactly these files, and the binding must define that function."""
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "steport.registry", "--families"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out.split(";") == list(DOMAINS)
    assert "#define STEPORT_FAMILIES(X) X(Quant) X(Binary) X(Approx) X(Logic)" in header_text()
    for family in DOMAINS:
        assert {op.family for op in families()[family]} == {family}
        assert (root / "src/steport/registry" / f"{family}.py").is_file()
        assert (root / "ort_ops/core" / family / "sources.cmake").is_file()
        binding = (root / "ort_ops/ort" / f"{family}.cc").read_text()
        assert f"void Register{family.capitalize()}Ops(OpSink& sink)" in binding

