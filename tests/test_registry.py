"""The registry is the single source of truth: every op in it has a torch op, a
translation, a fallback body that passes the checker, and a kernel in the library."""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import steport
from steport.registry import DOMAINS, OPS, check_model_ops, get
from steport.registry.__main__ import header_text

from .helpers import single_node_model

IDS = [op.qualname for op in OPS]


@pytest.mark.parametrize("spec", OPS, ids=IDS)
def test_torch_op_and_translation_exist(spec):
    if spec.torch_op is None:
        pytest.skip("export-only op")
    from steport.train.ops import torch_overload

    assert torch_overload(spec) is not None
    assert callable(spec.translation_fn())


@pytest.mark.parametrize("spec", OPS, ids=IDS)
def test_fallback_body_is_valid(spec):
    fn = spec.fallback_fn()
    node = onnx.helper.make_node(spec.name, [p.name for p in spec.inputs],
                                 [p.name for p in spec.outputs], domain=spec.domain)
    f = fn(node)
    assert (f.domain, f.name) == (spec.domain, spec.name)
    assert set(f.attribute) | {a.name for a in f.attribute_proto} >= {a.name for a in spec.attrs if a.required}




@pytest.mark.parametrize("spec", [op for op in OPS if "cpu" in op.kernels], ids=lambda s: s.qualname)
def test_cpu_kernel_registered(spec):
    # A node without its fallback function: only a registered kernel can run it. ORT must
    # accept the graph (kernel found); a missing kernel fails with "not a registered function/op".
    inputs = {p.name: np.zeros([1] * 2, np.float32) for p in spec.inputs if not p.optional}
    model = single_node_model(spec, inputs, check=False,
                              **{a.name: a.default if not a.required else int(a.lo or 1)
                                 for a in spec.attrs if a.kind == "int"})
    del model.functions[:]
    try:
        steport.session(model.SerializeToString())
    except Exception as e:  # attribute/shape validation errors are fine; missing kernel is not
        assert not re.search(r"not a registered function/op|no kernel", str(e)), str(e)
    with pytest.raises(Exception, match=r"not a registered function/op"):
        ort.InferenceSession(model.SerializeToString())


def test_generated_header_matches_registry():
    text = header_text()
    for fam, dom in DOMAINS.items():
        assert f'"{dom}"' in text
    for op in OPS:
        assert f'kName = "{op.name}"' in text


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


def test_header_port_types_come_from_the_registry():
    """The C++ bindings take port types and optional inputs from the generated header; a
    port that allows several types is declared 0 (checked by the kernel)."""
    from steport.registry.__main__ import ONNX_TYPES

    text = header_text()
    for op in OPS:
        codes = ", ".join(str(ONNX_TYPES[p.types[0]] if len(p.types) == 1 else 0) for p in op.inputs)
        assert f'kName = "{op.name}";\n  static constexpr int kVersion = {op.version};' in text
        assert f"kInputTypes[] = {{{codes}}};" in text
    # ONNX's own numbering is what ORT uses for element types
    assert ONNX_TYPES["float"] == onnx.TensorProto.FLOAT and ONNX_TYPES["uint64"] == onnx.TensorProto.UINT64
    names = {"float16": "FLOAT16", "double": "DOUBLE"}
    assert all(getattr(onnx.TensorProto, names.get(k, k.upper())) == v for k, v in ONNX_TYPES.items())
