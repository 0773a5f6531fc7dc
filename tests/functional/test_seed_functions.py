"""The ported autograd Functions, called exactly as their original docs show: forward vs an
independent reference, backward vs the documented gradient, export -> ORT bit-identical."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from steport.export import export_model
from steport.train.functional import GradFactor, PactActFn

from ..conftest import assert_bitexact, run_fallback, run_steport


def numpy_pact(x: np.ndarray, alpha: float, bits: int) -> np.ndarray:
    """Independent reference: numpy float32, same operation order as DESIGN.md."""
    a = np.float32(alpha)
    s = np.float32(2**bits - 1) / a
    return (np.round(np.minimum(np.maximum(x, np.float32(0)), a) * s) / s).astype(np.float32)


class PactNet(torch.nn.Module):
    def __init__(self, bits=3):
        super().__init__()
        self.fc = torch.nn.Linear(6, 5)
        self.alpha = torch.nn.Parameter(torch.tensor(2.5))
        self.bits = bits

    def forward(self, x):
        return PactActFn.apply(self.fc(x), self.alpha, self.bits)


class GradFactorNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return GradFactor.apply(self.fc(x), 0.5)


@pytest.mark.parametrize("bits", [1, 4, 8])
def test_pactactfn_forward_matches_independent_reference(bits):
    x = torch.randn(4096) * 4
    y = PactActFn.apply(x, torch.nn.Parameter(torch.tensor(3.0)), bits)
    assert_bitexact(y.detach().numpy(), numpy_pact(x.numpy(), 3.0, bits))


def test_pactactfn_backward_is_documented_gradient():
    x = (torch.randn(500) * 4).requires_grad_()
    alpha = torch.nn.Parameter(torch.tensor(2.0))
    g = torch.randn(500)
    PactActFn.apply(x, alpha, 4).backward(g)
    xd = x.detach()
    torch.testing.assert_close(x.grad, g * ((xd >= 0) & (xd <= 2.0)).float(), rtol=0, atol=0)
    torch.testing.assert_close(alpha.grad, (g * (xd >= 2.0).float()).sum(), rtol=0, atol=0)
    # backward returns (dx, dalpha, None): exactly three entries
    ctx_out = PactActFn.backward(type("C", (), {"saved_tensors": (xd, alpha.detach())})(), g)
    assert len(ctx_out) == 3 and ctx_out[2] is None


def test_pactactfn_exports_to_custom_domain_and_runs_bitexact(tmp_path):
    net = PactNet().eval()
    x = torch.randn(8, 6) * 2
    proto = export_model(net, x, tmp_path / "pact.onnx")
    assert ("ai.steport.quant", "Pact") in {(n.domain, n.op_type) for n in proto.graph.node}
    feeds = {"input": x.numpy()}
    with torch.no_grad():
        ref = net(x).numpy()
    assert_bitexact(run_steport(proto, feeds)[0], run_fallback(proto, feeds)[0])
    np.testing.assert_allclose(run_steport(proto, feeds)[0], ref, atol=1e-6)


def test_gradfactor_forward_identity_backward_scaled():
    x = torch.randn(10, requires_grad=True)
    y = GradFactor.apply(x, 0.25)
    assert torch.equal(y, x)
    g = torch.randn(10)
    y.backward(g)
    torch.testing.assert_close(x.grad, g * 0.25, rtol=0, atol=0)
    assert GradFactor.backward(type("C", (), {"f": 3.0})(), g)[1] is None


def test_gradfactor_exports_as_nothing(tmp_path):
    net = GradFactorNet().eval()
    x = torch.randn(2, 4)
    proto = export_model(net, x)
    ops = [n.op_type for n in proto.graph.node]
    assert ops == ["Gemm"], ops
    np.testing.assert_allclose(run_steport(proto, {"input": x.numpy()})[0],
                               net(x).detach().numpy(), atol=1e-6)
