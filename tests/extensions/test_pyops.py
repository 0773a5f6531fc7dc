"""Python debug kernels inside ORT (onnxruntime-extensions PyOps) vs the C++ kernels."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

import steport
from steport.export import pyops
from steport.registry import get

from ..helpers import single_node_model

PACT = get("quant", "Pact")


def _x(n=20011, scale=3.0):
    x = (np.random.default_rng(3).standard_normal(n) * scale).astype(np.float32)
    x[:8] = [np.nan, -0.0, 0.0, np.inf, -np.inf, 1e-30, -1e-30, 2.9]
    return x


@pytest.mark.parametrize("bits", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("alpha", [0.37, 2.9])
def test_pact_python_kernel_bitexact_with_cpp(bits, alpha):
    m = single_node_model(PACT, {"X": np.zeros(1, np.float32)},
                          {"alpha": np.array(alpha, np.float32)}, bits=bits)
    x = _x(scale=alpha)
    cpp = steport.session(m.SerializeToString(), threads=1).run(None, {"X": x})[0]
    py = pyops.python_session(m).run(None, {"X": x})[0]
    assert py.dtype == np.float32 and py.shape == x.shape
    np.testing.assert_array_equal(py.view(np.uint32), cpp.view(np.uint32))  # bits, -0.0 too


def test_rewrite_moves_nodes_to_contrib_and_fills_defaults():
    m = single_node_model(PACT, {"X": np.zeros((1, 1), np.float32)},
                          {"alpha": np.array(1.0, np.float32)}, bits=3)
    py = pyops.to_python_backend(m)
    (n,) = py.graph.node
    assert n.domain == pyops.PY_DOMAIN and n.op_type.startswith("Steport_quant_Pact__")
    assert [(a.name, a.i) for a in n.attribute] == [("bits", 3)]
    assert not py.functions, "fallback body of the rewritten op dropped"
    assert m.graph.node[0].domain == "ai.steport.quant", "original untouched"


def test_bad_alpha_is_a_clear_error():
    m = single_node_model(PACT, {"X": np.zeros(1, np.float32)},
                          {"alpha": np.array(-1.0, np.float32)}, bits=3)
    with pytest.raises(Exception, match="alpha must be positive"):
        pyops.python_session(m).run(None, {"X": np.ones(3, np.float32)})


def test_missing_kernel_named():
    with pytest.raises(pyops.PythonBackendError, match="no python kernel for ai.steport.x::Y"):
        pyops.kernel_for("ai.steport.x", "Y")


def test_whole_model_agrees_and_planted_bug_is_localized(pact_onnx, digits):
    x = digits.test.x[:32].numpy()
    pact_nodes = [n.name for n in pact_onnx.graph.node if n.domain == "ai.steport.quant"]
    assert len(pact_nodes) == 3  # pact_cnn: image quantizer + two PACT activations
    rep = pyops.localize_mismatch(pact_onnx, {"input": x})
    assert rep.ok, rep.table()
    assert [d.node for d in rep.nodes] == pact_nodes

    # plant a bug that only shows for the second Pact node (its alpha differs from the first)
    alphas = {}
    for n in pact_onnx.graph.node:
        if n.domain == "ai.steport.quant":
            init = next(t for t in pact_onnx.graph.initializer if t.name == n.input[1])
            alphas[n.name] = float(onnx.numpy_helper.to_array(init).reshape(()))
    target = pact_nodes[1]

    def buggy(x, alpha, bits):
        y = pyops.pact(x, alpha, bits=bits)
        if np.isclose(float(np.asarray(alpha).reshape(())), alphas[target]):
            y = np.where(y > 0, y + np.float32(0.01), y).astype(np.float32)
        return y

    assert sum(np.isclose(a, alphas[target]) for a in alphas.values()) == 1, \
        "the target node must be distinguishable by its alpha"
    with pyops.override_kernel("quant", "Pact", buggy):
        rep = pyops.localize_mismatch(pact_onnx, {"input": x})
    assert not rep.ok
    assert rep.first_mismatch.node == target
    assert f"FIRST MISMATCH: node '{target}'" in rep.table()


def test_verify_python_backend(tmp_path, pact_onnx):
    from steport.export import save
    from steport.export.verify import verify

    p = tmp_path / "m.onnx"
    save(pact_onnx, p)
    rep = verify(p, batch=16, backends=("steport", "python"))
    assert rep.ok and {(r.a, r.b) for r in rep.pairs} == {("ort+steport", "ort+python")}


def test_python_backend_from_threads():
    import threading

    m = single_node_model(PACT, {"X": np.zeros(1, np.float32)},
                          {"alpha": np.array(2.0, np.float32)}, bits=4)
    s = pyops.python_session(m)
    x = _x(2000)
    ref = s.run(None, {"X": x})[0]
    errs = []

    def work():
        try:
            for _ in range(10):
                np.testing.assert_array_equal(s.run(None, {"X": x})[0], ref)
        except Exception as e:  # pragma: no cover - reported below
            errs.append(e)

    ts = [threading.Thread(target=work) for _ in range(3)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert not errs
