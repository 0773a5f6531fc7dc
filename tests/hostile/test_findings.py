"""Regressions for the outside probe's findings 1 and 2 (issue 19, docs/hardening.md §5):
an attribute of the wrong type must be refused, never read as its default; an unknown
steport op must be refused wherever it hides (subgraphs, model-local functions)."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import steport
from steport.registry import DOMAINS, IR_VERSION, ONNX_OPSET, OPS, check_model_ops

LOGIC = DOMAINS["logic"]
QUANT = DOMAINS["quant"]


def _model(nodes, inputs, outputs, inits=(), functions=(), extra_opsets=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = helper.make_model(graph, functions=list(functions), opset_imports=[
        helper.make_opsetid("", ONNX_OPSET), *extra_opsets])
    model.ir_version = IR_VERSION
    return model


def _logic_net(**attrs):
    """2 inputs -> 2 gates (pass A) -> GroupSum over 2 classes of 1 gate each."""
    inits = [numpy_helper.from_array(np.array([0, 1], np.int64), "ia"),
             numpy_helper.from_array(np.array([1, 0], np.int64), "ib"),
             numpy_helper.from_array(np.array([3, 3], np.uint8), "g")]
    node = helper.make_node("LogicNet", ["X", "ia", "ib", "g"], ["Y"], domain=LOGIC,
                            name="net", **attrs)
    return _model([node], [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
                  [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits,
                  extra_opsets=[helper.make_opsetid(LOGIC, 1)])


def _raw_session(model):
    """ORT + the library without steport.session's Python check: the C++ readers alone."""
    so = ort.SessionOptions()
    so.log_severity_level = 4
    so.register_custom_ops_library(steport.library_path())
    return ort.InferenceSession(model.SerializeToString(), so)


X1 = {"X": np.ones((1, 2), np.float32)}


def test_logic_net_tau_as_float_is_used():
    y = steport.session(_logic_net(layer_sizes=[2], num_classes=2, tau=10.0)).run(None, X1)[0]
    np.testing.assert_array_equal(y, np.array([[0.1, 0.1]], np.float32))


@pytest.mark.parametrize("tau", [10, "10", [10.0], [10]])
def test_logic_net_tau_of_another_type_is_refused(tau):
    """Finding 1: tau=10 (an INT attribute) used to run with the default tau = 1."""
    model = _logic_net(layer_sizes=[2], num_classes=2, tau=tau)
    with pytest.raises(ValueError, match="attribute 'tau' must be a float"):
        steport.session(model)
    with pytest.raises(Exception, match="attribute 'tau' must be a float") as e:
        _raw_session(model)
    assert type(e.value).__module__.startswith("onnxruntime")


def _wrong_value(kind: str):
    """A value of another attribute type than `kind` (onnx.helper infers the type)."""
    return {"int": 1.5, "float": 3, "ints": 4, "floats": [1, 2], "string": 7}[kind]


@pytest.mark.parametrize("spec,attr", [(s, a) for s in OPS for a in s.attrs],
                         ids=lambda v: getattr(v, "name", None))
def test_every_registry_attribute_refuses_another_type(spec, attr):
    """Finding 1 for every op: the registry's kind is checked by the Python model check
    and by the C++ reader (the hostile suite runs each through ORT as well)."""
    node = helper.make_node(spec.name, [p.name for p in spec.inputs], ["Y"],
                            domain=spec.domain, name="n",
                            **{attr.name: _wrong_value(attr.kind)})
    model = _model([node], [], [], extra_opsets=[helper.make_opsetid(spec.domain, 1)])
    with pytest.raises(ValueError, match=f"attribute '{attr.name}' must be"):
        check_model_ops(model)


def test_unknown_attribute_is_refused():
    model = _logic_net(layer_sizes=[2], num_classes=2, taus=10.0)
    with pytest.raises(ValueError, match="unknown attribute 'taus'"):
        steport.session(model)


def _pact_v2_function():
    return helper.make_function(QUANT, "PactV2", ["X", "alpha"], ["Y"],
                                [helper.make_node("Identity", ["X"], ["Y"])],
                                [helper.make_opsetid("", ONNX_OPSET)])


def _if_model_with_pact_v2():
    """Finding 2: ai.steport.quant::PactV2 inside an If branch, a model-local function of
    that name: stock ORT runs the function body silently."""
    alpha = numpy_helper.from_array(np.array([2.0], np.float32), "alpha")
    branch_out = helper.make_tensor_value_info("Yb", TensorProto.FLOAT, None)
    then_g = helper.make_graph([helper.make_node("PactV2", ["X", "alpha"], ["Yb"], domain=QUANT,
                                                 name="hidden")], "then", [], [branch_out])
    else_g = helper.make_graph([helper.make_node("Identity", ["X"], ["Yb"])], "else", [],
                               [branch_out])
    node = helper.make_node("If", ["cond"], ["Y"], then_branch=then_g, else_branch=else_g)
    return _model([node], [helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
                           helper.make_tensor_value_info("X", TensorProto.FLOAT, [2])],
                  [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], [alpha],
                  functions=[_pact_v2_function()], extra_opsets=[helper.make_opsetid(QUANT, 1)])


def test_unknown_op_in_if_branch_is_refused():
    model = _if_model_with_pact_v2()
    feeds = {"cond": np.array(True), "X": np.array([5.0, -1.0], np.float32)}
    # what the check prevents: stock ORT silently runs the model-local body
    so = ort.SessionOptions()
    so.log_severity_level = 4
    np.testing.assert_array_equal(
        ort.InferenceSession(model.SerializeToString(), so).run(None, feeds)[0], feeds["X"])
    with pytest.raises(ValueError, match=r"then_branch: node 'hidden' \(ai.steport.quant::PactV2\)"):
        steport.session(model)


def test_unknown_op_in_loop_body_nested_in_if_is_refused():
    inner = helper.make_graph(
        [helper.make_node("PactV2", ["X", "alpha"], ["Yl"], domain=QUANT, name="deep"),
         helper.make_node("Identity", ["c_in"], ["c_out"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("c_in", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("Yl", TensorProto.FLOAT, None)])
    loop = helper.make_node("Loop", ["n", "cond"], ["Ys"], body=inner, name="loop")
    out = helper.make_tensor_value_info("Ys", TensorProto.FLOAT, None)
    then_g = helper.make_graph([loop], "then", [], [out])
    else_g = helper.make_graph([helper.make_node("Identity", ["X"], ["Ys"])], "else", [], [out])
    model = _model([helper.make_node("If", ["cond"], ["Y"], then_branch=then_g,
                                     else_branch=else_g)], [], [],
                   functions=[_pact_v2_function()], extra_opsets=[helper.make_opsetid(QUANT, 1)])
    with pytest.raises(ValueError, match="node 'loop' attribute body: node 'deep'"):
        check_model_ops(model)


def test_unknown_op_inside_a_model_local_function_is_refused():
    wrapper = helper.make_function(
        "user.dom", "Wrapper", ["X", "alpha"], ["Y"],
        [helper.make_node("PactV2", ["X", "alpha"], ["Y"], domain=QUANT, name="in_fn")],
        [helper.make_opsetid("", ONNX_OPSET), helper.make_opsetid(QUANT, 1)])
    model = _model([helper.make_node("Wrapper", ["X", "alpha"], ["Y"], domain="user.dom")], [],
                   [], functions=[wrapper, _pact_v2_function()],
                   extra_opsets=[helper.make_opsetid("user.dom", 1), helper.make_opsetid(QUANT, 1)])
    with pytest.raises(ValueError, match=r"function user.dom::Wrapper: node 'in_fn'"):
        check_model_ops(model)


def test_function_importing_another_domain_version_is_refused():
    fn = helper.make_function("user.dom", "F", ["X"], ["Y"],
                              [helper.make_node("Identity", ["X"], ["Y"])],
                              [helper.make_opsetid("", ONNX_OPSET), helper.make_opsetid(QUANT, 2)])
    model = _model([], [], [], functions=[fn])
    with pytest.raises(ValueError, match=r"function user.dom::F imports domain ai.steport.quant version 2"):
        check_model_ops(model)


def test_exported_style_models_still_pass():
    """The fallback bodies are model-local functions of registry ops: allowed."""
    from steport.registry import get

    model = _logic_net(layer_sizes=[2], num_classes=2)
    model.functions.append(get("logic", "LogicNet").fallback_fn()(model.graph.node[0]))
    check_model_ops(model)
    y = steport.session(model).run(None, X1)[0]
    np.testing.assert_array_equal(y, np.array([[1.0, 1.0]], np.float32))
