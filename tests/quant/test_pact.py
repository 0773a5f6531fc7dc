"""PACT: PyTorch op vs C++ kernel (each ISA) vs fallback body; gradients; bad input."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidGraph
import torch

import steport
from steport.export import export_model
from steport.registry import get
from steport.train import PACT
from steport.train.ops.quant import pact

from ..conftest import assert_bitexact, run_fallback, run_steport
from ..helpers import single_node_model

SPEC = get("quant", "Pact")
EDGE = np.array([0.0, -0.0, 1e-30, -1e-30, -1.0, -np.inf, np.inf, np.nan], np.float32)


def pact_model(alpha: float, bits: int, rank: int = 1) -> onnx.ModelProto:
    return single_node_model(SPEC, {"X": np.zeros((1,) * rank, np.float32)},
                             {"alpha": np.array(alpha, np.float32)}, bits=bits)


def torch_pact(x: np.ndarray, alpha: float, bits: int) -> np.ndarray:
    return pact(torch.from_numpy(x), torch.tensor(alpha), bits).numpy()


def inputs(alpha: float, n: int = 10007) -> np.ndarray:
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(n) * alpha).astype(np.float32)
    # exact ties: values whose scaled form is k + 0.5 (round half to even must hold)
    return np.concatenate([x, EDGE, np.float32([alpha, alpha * 0.5, alpha * 2])])


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8, 12, 16])
@pytest.mark.parametrize("alpha", [0.37, 1.0, 2.9, 6.0])
def test_kernel_fallback_torch_bitexact(bits, alpha, isa):
    x = inputs(alpha)
    ref = torch_pact(x, alpha, bits)
    model = pact_model(alpha, bits)
    assert_bitexact(run_steport(model, {"X": x})[0], ref, f"kernel[{isa}]")
    assert_bitexact(run_fallback(model, {"X": x})[0], ref, "fallback")


def test_ties_round_half_to_even():
    # alpha = levels: s = 1, so y = round(clamp(x)) exactly
    x = np.array([0.5, 1.5, 2.5, 3.5, 14.5], np.float32)
    y = torch_pact(x, 15.0, 4)
    np.testing.assert_array_equal(y, [0.0, 2.0, 2.0, 4.0, 14.0])
    assert_bitexact(run_steport(pact_model(15.0, 4), {"X": x})[0], y)


def test_edge_semantics_documented():
    alpha, bits = 2.0, 3
    y = torch_pact(EDGE, alpha, bits)
    assert np.isnan(y[-1]), "NaN propagates"
    assert y[-2] == alpha and y[-3] == 0.0, "+inf -> alpha, -inf -> 0"
    assert (y[:6] <= alpha).all() and (y[:6] >= 0).all()
    assert torch_pact(np.float32([alpha]), alpha, bits)[0] == alpha, "x = alpha is a level"


@pytest.mark.parametrize("shape", [(), (1,), (3, 1, 5), (2, 3, 4, 5), (0, 4)])
def test_shapes(shape):
    x = np.asarray(np.random.default_rng(0).standard_normal(shape) * 3, dtype=np.float32)
    model = pact_model(3.0, 4, rank=len(shape))
    ref = torch_pact(x, 3.0, 4)
    assert_bitexact(run_steport(model, {"X": x})[0], ref)
    assert_bitexact(run_fallback(model, {"X": x})[0], ref)


def test_threads_agree():
    x = inputs(3.0, 3_000_001)
    model = pact_model(3.0, 5)
    assert_bitexact(run_steport(model, {"X": x}, threads=1)[0], run_steport(model, {"X": x}, threads=2)[0])


def test_gradients_match_design_formulas():
    torch.manual_seed(0)
    x = (torch.randn(1000) * 4).requires_grad_()
    x.data[:4] = torch.tensor([0.0, 3.0, -0.5, 3.5])  # boundaries: x = 0 and x = alpha
    alpha = torch.tensor(3.0, requires_grad=True)
    g = torch.randn(1000)
    pact(x, alpha, 4).backward(g)
    inside = ((x >= 0) & (x <= alpha)).float()
    torch.testing.assert_close(x.grad, g * inside, rtol=0, atol=0)
    torch.testing.assert_close(alpha.grad, (g * (x >= alpha).float()).sum(), rtol=0, atol=0)


def test_gradcheck_alpha_with_shape_1():
    x = torch.randn(50, dtype=torch.float64) * 3
    alpha = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    y = pact(x, alpha, 8)
    y.sum().backward()
    assert alpha.grad.shape == (1,)
    assert alpha.grad.item() == float((x >= 2.0).sum())


def test_opcheck():
    x = torch.randn(4, 5)
    torch.library.opcheck(torch.ops.steport.pact.default, (x, torch.tensor(2.0), 4))


def test_module_trains_alpha():
    layer = PACT(bits=4, alpha_init=1.0)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    x = torch.rand(256) * 4
    before = layer.alpha.item()
    for _ in range(5):
        opt.zero_grad()
        ((layer(x) - x.clamp(max=3)) ** 2).mean().backward()
        opt.step()
    assert layer.alpha.item() > before  # clipping too low: gradient pushes alpha up


def test_export_end_to_end(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), PACT(4, 2.0), torch.nn.Flatten())
    x = torch.randn(3, 1, 6, 6)
    proto = export_model(model, x, tmp_path / "m.onnx")
    onnx.checker.check_model(proto, full_check=True)
    nodes = [(n.domain, n.op_type) for n in proto.graph.node]
    assert ("ai.steport.quant", "Pact") in nodes
    pact_node = next(n for n in proto.graph.node if n.op_type == "Pact")
    inits = {i.name for i in proto.graph.initializer}
    assert pact_node.input[1] in inits, "alpha is an initializer input"
    assert {(f.domain, f.name) for f in proto.functions} == {("ai.steport.quant", "Pact")}
    xb = torch.randn(7, 1, 6, 6)  # dynamic batch
    a = run_steport(proto, {"input": xb.numpy()})[0]
    b = run_fallback(proto, {"input": xb.numpy()})[0]
    assert_bitexact(a, b, "kernel vs fallback on the exported model")
    np.testing.assert_allclose(a, model(xb).detach().numpy(), atol=1e-5)


# ---- bad input ---------------------------------------------------------------------

@pytest.mark.parametrize("bits", [0, 17, -3])
def test_bits_out_of_range(bits):
    model = pact_model(2.0, 4)
    model.graph.node[0].attribute[0].i = bits
    with pytest.raises(Exception, match=r"bits.*out of range"):
        steport.session(model.SerializeToString())
    with pytest.raises(ValueError, match="bits"):
        pact(torch.ones(3), torch.tensor(2.0), bits)


def test_alpha_bad_rank_and_dtype():
    x = np.ones(4, np.float32)
    bad_rank = single_node_model(SPEC, {"X": x}, {"alpha": np.ones((2, 2), np.float32)}, bits=4,
                                 check=False)
    with pytest.raises(Exception, match=r"alpha must be a scalar"):
        run_steport(bad_rank, {"X": x})
    bad_dtype = single_node_model(SPEC, {"X": x}, {"alpha": np.array(2, np.int64)}, bits=4,
                                  check=False)
    # ORT rejects the type at session creation, from the registry's port types
    with pytest.raises(InvalidGraph, match=r"Type 'tensor\(int64\)' of input parameter \(alpha\)"):
        run_steport(bad_dtype, {"X": x})
    with pytest.raises(ValueError, match="scalar"):
        pact(torch.ones(3), torch.ones(2), 4)
    with pytest.raises(TypeError):
        pact(torch.ones(3), torch.tensor(2), 4)


@pytest.mark.parametrize("alpha", [0.0, -1.0, float("inf"), float("nan")])
def test_alpha_value(alpha):
    with pytest.raises(Exception, match="alpha must be positive"):
        run_steport(pact_model(alpha, 4), {"X": np.ones(3, np.float32)})
    with pytest.raises(ValueError, match="alpha must be positive"):
        pact(torch.ones(3), torch.tensor(alpha), 4)


def test_missing_bits_attribute():
    model = pact_model(2.0, 4)
    del model.graph.node[0].attribute[:]
    with pytest.raises(Exception, match="bits"):
        steport.session(model.SerializeToString())


def test_unknown_op_version_is_a_clear_error():
    model = pact_model(2.0, 4)
    for o in model.opset_import:
        if o.domain == SPEC.domain:
            o.version = 2
    with pytest.raises(ValueError, match=r"ai\.steport\.quant.*version 2"):
        steport.session(model.SerializeToString())
    model.graph.node[0].op_type = "Pacto"
    with pytest.raises(ValueError, match=r"Pacto"):
        steport.session(model.SerializeToString())
