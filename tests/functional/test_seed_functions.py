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
    """Independent reference: numpy float32, same operation order as docs/ops.md "Pact"."""
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


# ---- torchapprox ------------------------------------------------------------------------
from steport.train.functional import (ApproxConv2dOp, ApproxDWConv2dOp, BinaryLinearForward,  # noqa: E402
                                      Conv2dArgs, FastApproxConv2dOp, FastLinearOp, _conv_bwd_ste)
from steport.train.multipliers import get_multiplier  # noqa: E402
from steport.train.ops.binary import pack_signs  # noqa: E402


def asym_lut(seed=3) -> np.ndarray:
    """Asymmetric table: LUT[a][b] != LUT[b][a] catches operand-order bugs."""
    a = np.arange(256)[:, None]
    b = np.arange(256).astype(np.uint8).astype(np.int8).astype(np.int64)[None, :]
    noise = np.random.default_rng(seed).integers(-50, 50, (256, 256))
    return (a * b + 3 * a + noise).astype(np.int32)


def codes(shape, lo, hi, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(lo, hi + 1, shape).astype(np.float32))


def numpy_lut_conv(x, w, lut, stride, pad, dil, groups):
    """Independent reference: direct loops over output pixels (padding = code 0)."""
    n, c, h, wd = x.shape
    co, cg, kh, kw = w.shape
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = (h + 2 * pad - dil * (kh - 1) - 1) // stride + 1
    ow = (wd + 2 * pad - dil * (kw - 1) - 1) // stride + 1
    y = np.zeros((n, co, oh, ow), np.int64)
    og = co // groups
    wu = w.astype(np.int64) & 255
    for o in range(co):
        g = o // og
        for i in range(oh):
            for j in range(ow):
                patch = xp[:, g * cg:(g + 1) * cg, i * stride:i * stride + dil * kh:dil,
                           j * stride:j * stride + dil * kw:dil]
                y[:, o, i, j] = lut[patch, wu[o]].reshape(n, -1).sum(1)
    return y.astype(np.float32)


def test_conv2dargs_backward_args_and_validation():
    conf = Conv2dArgs(4, 6, 3, stride=2, padding=(1, 0), dilation=1, groups=2)
    assert conf.backward_args() == {"stride": (2, 2), "padding": (1, 0), "dilation": (1, 1),
                                    "groups": 2}
    with pytest.raises(ValueError, match="groups"):
        Conv2dArgs(4, 6, 3, groups=4)


def test_conv_bwd_ste_is_exact_conv_gradient():
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    conf = Conv2dArgs(4, 6, 3, stride=2, padding=1, groups=2)
    y = torch.nn.functional.conv2d(x, w, **conf.backward_args())
    g = torch.randn_like(y)
    y.backward(g)
    gx, gw = _conv_bwd_ste(g, x.detach(), w.detach(), conf)
    torch.testing.assert_close(gx, x.grad)
    torch.testing.assert_close(gw, w.grad)


@pytest.mark.parametrize("stride,pad,dil,groups", [(1, 0, 1, 1), (2, 1, 1, 2), (1, 2, 2, 1)])
def test_approxconv2dop_matches_loop_reference(stride, pad, dil, groups):
    lut = asym_lut()
    x, w = codes((2, 4, 6, 7), 0, 255), codes((6, 4 // groups, 3, 3), -128, 127, 1)
    conf = Conv2dArgs(4, 6, 3, stride, pad, dil, groups)
    ref = numpy_lut_conv(x.numpy().astype(np.int64), w.numpy().astype(np.int64), lut,
                         stride, pad, dil, groups)
    y = ApproxConv2dOp.apply(x, w, conf, ref.shape[2:], torch.from_numpy(lut))
    assert_bitexact(y.numpy(), ref)
    with pytest.raises(ValueError, match="out_dims"):
        ApproxConv2dOp.apply(x, w, conf, (99, 99), torch.from_numpy(lut))


def test_approxconv2dop_backward_is_ste():
    x = codes((1, 2, 5, 5), 0, 255).requires_grad_()
    w = codes((3, 2, 3, 3), -128, 127, 2).requires_grad_()
    conf = Conv2dArgs(2, 3, 3, padding=1)
    y = ApproxConv2dOp.apply(x, w, conf, None, torch.from_numpy(asym_lut()))
    g = torch.randn_like(y)
    y.backward(g)
    gx, gw = _conv_bwd_ste(g, x.detach(), w.detach(), conf)
    torch.testing.assert_close(x.grad, gx)
    torch.testing.assert_close(w.grad, gw)


def test_approxdwconv2dop_matches_reference():
    lut = asym_lut(5)
    x, w = codes((2, 5, 8, 8), 0, 255), codes((5, 1, 3, 3), -128, 127, 4)
    ref = numpy_lut_conv(x.numpy().astype(np.int64), w.numpy().astype(np.int64), lut, 2, 1, 1, 5)
    y = ApproxDWConv2dOp.apply(x, w, lut, {"stride": 2, "padding": 1})
    assert_bitexact(y.numpy(), ref)
    with pytest.raises(ValueError, match="depthwise"):
        ApproxDWConv2dOp.apply(x, codes((5, 2, 3, 3), -1, 1), lut, {})


@pytest.mark.parametrize("name", ["truncated_t2", "drum_k4", "mitchell", "exact"])
def test_fastlinearop_equals_lut_sum(name):
    m = get_multiplier(name)
    x, w = codes((7, 33), 0, 255), codes((5, 33), -128, 127, 1)
    lut = m.lut().astype(np.int64)
    ref = lut[x.numpy().astype(np.int64)[:, :, None],
              (w.numpy().astype(np.int64).T & 255)[None]].sum(1).astype(np.float32)
    assert_bitexact(FastLinearOp.apply(x, w, name).numpy(), ref)


def test_fastlinearop_backward_and_errors():
    x = codes((4, 6), 0, 255).requires_grad_()
    w = codes((3, 6), -128, 127).requires_grad_()
    y = FastLinearOp.apply(x, w, "truncated_t2")
    g = torch.randn_like(y)
    y.backward(g)
    torch.testing.assert_close(x.grad, g @ w.detach())
    torch.testing.assert_close(w.grad, g.t() @ x.detach())
    with pytest.raises(ValueError, match="integer codes"):
        FastLinearOp.apply(x.detach() + 0.5, w.detach(), "exact")
    with pytest.raises(ValueError, match="integer codes"):
        FastLinearOp.apply(x.detach() - 300, w.detach(), "exact")
    with pytest.raises(ValueError, match="multiplier name"):
        FastLinearOp.apply(x.detach(), w.detach(), "no_such_multiplier")


@pytest.mark.parametrize("name", ["truncated_t3", "etm_l3"])
def test_fastapproxconv2dop_equals_lut_conv(name):
    m = get_multiplier(name)
    x, w = codes((2, 4, 6, 6), 0, 255), codes((4, 2, 3, 3), -128, 127, 1)
    ref = numpy_lut_conv(x.numpy().astype(np.int64), w.numpy().astype(np.int64), m.lut(),
                         1, 1, 1, 2)
    y = FastApproxConv2dOp.apply(x, w, name, {"padding": 1, "groups": 2})
    assert_bitexact(y.numpy(), ref)


class _CodesNet(torch.nn.Module):
    """Quantize inputs to codes, run a seed Function, dequantize: what a port looks like."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        g = torch.Generator().manual_seed(0)
        if kind == "linear":
            self.w = torch.nn.Parameter(torch.randint(-128, 128, (5, 12), generator=g).float())
        else:
            self.w = torch.nn.Parameter(torch.randint(-128, 128, (4, 3, 3, 3), generator=g).float())
        self.register_buffer("lut", torch.from_numpy(asym_lut()))

    def forward(self, x):
        q = torch.clamp(torch.round(x * 40 + 128), 0, 255)
        if self.kind == "linear":
            y = FastLinearOp.apply(q, self.w, "truncated_t2")
        elif self.kind == "conv":
            y = ApproxConv2dOp.apply(q, self.w, Conv2dArgs(3, 4, 3, padding=1), None, self.lut)
        else:
            y = FastApproxConv2dOp.apply(q, self.w, "drum_k4", {"padding": 1})
        return y * 1e-4


@pytest.mark.parametrize("kind", ["linear", "conv", "fastconv"])
def test_approx_functions_export_and_run_bitexact(kind, tmp_path):
    net = _CodesNet(kind).eval()
    x = torch.randn(3, 12) if kind == "linear" else torch.randn(2, 3, 6, 6)
    proto = export_model(net, x, tmp_path / "m.onnx")
    custom = {(n.domain, n.op_type) for n in proto.graph.node if n.domain}
    assert custom == {("ai.steport.approx",
                       "ApproxMatMulInteger" if kind == "linear" else "ApproxConvInteger")}
    feeds = {"input": x.numpy()}
    with torch.no_grad():
        ref = net(x).numpy()
    out = run_steport(proto, feeds)[0]
    assert_bitexact(out, run_fallback(proto, feeds)[0])
    assert_bitexact(out, ref)


# ---- bitorch-engine ---------------------------------------------------------------------

def test_binarylinearforward_float_and_packed_weights():
    m, n, k = 5, 7, 100
    x = torch.randn(m, k)
    x[0, :3] = 0.0  # sign(0) = +1
    w = torch.randn(n, k)
    ref = (np.where(x.numpy() >= 0, 1, -1) @ np.where(w.numpy() >= 0, 1, -1).T).astype(np.float32)
    assert_bitexact(BinaryLinearForward.apply(x, w, m, n, k).numpy(), ref)
    assert_bitexact(BinaryLinearForward.apply(x, pack_signs(w), m, n, k).numpy(), ref)
    with pytest.raises(ValueError, match="input must be"):
        BinaryLinearForward.apply(x, w, m + 1, n, k)
    with pytest.raises(ValueError, match="weights must be"):
        BinaryLinearForward.apply(x, w[:, :10], m, n, k)


def test_binarylinearforward_ste_gradient_extension():
    m, n, k = 4, 3, 70
    x = (torch.randn(m, k) * 1.5).requires_grad_()
    w = (torch.randn(n, k) * 1.5).requires_grad_()
    y = BinaryLinearForward.apply(x, w, m, n, k)
    g = torch.randn_like(y)
    y.backward(g)
    sx = torch.where(x.detach() >= 0, 1.0, -1.0)
    sw = torch.where(w.detach() >= 0, 1.0, -1.0)
    torch.testing.assert_close(x.grad, (g @ sw) * (x.detach().abs() <= 1).float(), rtol=0, atol=0)
    torch.testing.assert_close(w.grad, (g.t() @ sx) * (w.detach().abs() <= 1).float(), rtol=0, atol=0)


class _BinNet(torch.nn.Module):
    def __init__(self, n=6, k=70):
        super().__init__()
        self.n, self.k = n, k
        self.register_buffer("w_packed", pack_signs(torch.randn(n, k, generator=torch.Generator().manual_seed(1))))

    def forward(self, x):
        return BinaryLinearForward.apply(x, self.w_packed, x.shape[0], self.n, self.k)


def test_binarylinearforward_exports_to_binarygemm(tmp_path):
    net = _BinNet().eval()
    x = torch.randn(4, 70)
    proto = export_model(net, x, tmp_path / "b.onnx", dynamic_batch=False)
    nodes = [(n.domain, n.op_type) for n in proto.graph.node if n.domain]
    assert nodes == [("ai.steport.binary", "BinaryGemm")]
    packed = [i for i in proto.graph.initializer if i.data_type == onnx.TensorProto.UINT64]
    assert packed and list(packed[0].dims) == [6, 2]
    feeds = {"input": x.numpy()}
    out = run_steport(proto, feeds)[0]
    assert_bitexact(out, run_fallback(proto, feeds)[0])
    assert_bitexact(out, net(x).numpy())
