"""Binary STE gradients, layers, export (packed weights, ~32x smaller) and a trained model
whose ORT kernel and fallback outputs match PyTorch."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from steport.export import ExportError, export_model
from steport.train import BinaryConv2d, BinaryLinear
from steport.train.models import build_model
from steport.train.ops.binary import binary_conv2d_train, binary_linear

from ..conftest import assert_bitexact, run_fallback, run_steport


def sgn(t):
    return torch.where(t >= 0, 1.0, -1.0)


def test_linear_ste_gradients():
    x = (torch.randn(4, 3, 20) * 1.5).requires_grad_()
    w = (torch.randn(6, 20) * 1.5).requires_grad_()
    s, b = torch.rand(6).requires_grad_(), torch.randn(6).requires_grad_()
    g = torch.randn(4, 3, 6)
    binary_linear(x, w, s, b).backward(g)
    d = F.linear(sgn(x), sgn(w))
    gd = g * s
    torch.testing.assert_close(x.grad, (gd @ sgn(w)) * (x.abs() <= 1), rtol=0, atol=1e-6)
    gw = gd.reshape(-1, 6).t() @ sgn(x).reshape(-1, 20)
    torch.testing.assert_close(w.grad, gw * (w.abs() <= 1), rtol=0, atol=1e-5)
    torch.testing.assert_close(s.grad, (g * d).reshape(-1, 6).sum(0), rtol=0, atol=1e-4)
    torch.testing.assert_close(b.grad, g.reshape(-1, 6).sum(0), rtol=0, atol=1e-5)
    assert (x.grad[x.abs() > 1] == 0).all() and (w.grad[w.abs() > 1] == 0).all()


@pytest.mark.parametrize("pad_value", [0, -1, 1])
def test_conv_ste_gradients_match_autograd_of_clipped_surrogate(pad_value):
    # Surrogate with the same backward: sign forward, clipped identity backward, by autograd.
    torch.manual_seed(1)
    x0, w0 = torch.randn(2, 4, 6, 5) * 1.5, torch.randn(6, 2, 3, 3) * 1.5
    s0, b0 = torch.rand(6), torch.randn(6)
    args = ([2, 1], [1, 2, 0, 1], [1, 2], 2, pad_value)
    g = torch.randn(2, 6, 3, 4)

    def surrogate(t):
        c = t.clamp(-1, 1)
        return c + (sgn(t) - c).detach()

    x, w, s, b = (t.clone().requires_grad_() for t in (x0, w0, s0, b0))
    y = binary_conv2d_train(x, w, s, b, *args)
    assert y.shape == g.shape
    y.backward(g)
    x2, w2, s2, b2 = (t.clone().requires_grad_() for t in (x0, w0, s0, b0))
    xp = F.pad(surrogate(x2), (2, 1, 1, 0), value=float(pad_value))
    y2 = F.conv2d(xp, surrogate(w2), None, [2, 1], 0, [1, 2], 2) * s2.reshape(1, -1, 1, 1) \
        + b2.reshape(1, -1, 1, 1)
    torch.testing.assert_close(y, y2, rtol=0, atol=0)
    y2.backward(g)
    for a, c in [(x, x2), (w, w2), (s, s2), (b, b2)]:
        torch.testing.assert_close(a.grad, c.grad, rtol=1e-5, atol=1e-5)


def test_opcheck():
    x, w = torch.randn(3, 10), torch.randn(4, 10)
    torch.library.opcheck(torch.ops.steport.binary_linear.default, (x, w, torch.rand(4), None))
    xc, wc = torch.randn(1, 4, 5, 5), torch.randn(2, 4, 3, 3)
    torch.library.opcheck(torch.ops.steport.binary_conv2d_train.default,
                          (xc, wc, None, torch.randn(2), [1, 1], [1, 1, 1, 1], [1, 1], 1, 0))


def test_layer_scales_train():
    layer = BinaryLinear(8, 3, bias=True, weight_scale=True, act_scale=True)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    before = layer.act_scale.item()
    x = torch.randn(32, 8)
    for _ in range(3):
        opt.zero_grad()
        (layer(x) ** 2).mean().backward()
        opt.step()
    assert layer.act_scale.item() != before and layer.weight.grad is not None


def _export_and_compare(model, x, tmp_path, xs):
    model.eval()
    proto = export_model(model, x, tmp_path / "m.onnx")
    onnx.checker.check_model(proto, full_check=True)
    with torch.no_grad():
        ref = model(xs).numpy()
    k = run_steport(proto, {"input": xs.numpy()})[0]
    f = run_fallback(proto, {"input": xs.numpy()})[0]
    assert_bitexact(k, f, "kernel vs fallback on the exported model")
    np.testing.assert_allclose(k, ref, rtol=1e-5, atol=1e-4)
    return proto, k, ref


def test_export_packed_and_32x_smaller(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(BinaryLinear(1000, 512, bias=True, weight_scale=True,
                                             act_scale=True),
                                BinaryLinear(512, 10))
    x = torch.randn(3, 1000)
    proto, k, ref = _export_and_compare(model, x, tmp_path, torch.randn(5, 1000))
    ops = [(n.domain, n.op_type) for n in proto.graph.node]
    assert ops.count(("ai.steport.binary", "BinaryGemm")) == 2
    inits = {i.name: i for i in proto.graph.initializer}
    gem = [n for n in proto.graph.node if n.op_type == "BinaryGemm"]
    w0 = inits[gem[0].input[1]]
    assert w0.data_type == onnx.TensorProto.UINT64 and list(w0.dims) == [512, 16]
    fp32_bytes = 4 * (1000 * 512 + 512 * 10)
    packed = sum(len(onnx.numpy_helper.to_array(inits[n.input[1]]).tobytes()) for n in gem)
    assert fp32_bytes / packed > 30, (fp32_bytes, packed)
    # no latent float weight left in the file
    assert all(i.data_type != onnx.TensorProto.FLOAT or np.prod(i.dims) <= 512
               for i in proto.graph.initializer)
    assert model[0]._deploy is False and "packed_weight" not in dict(model[0].named_buffers())
    assert (tmp_path / "m.onnx").stat().st_size < fp32_bytes / 25


@pytest.mark.parametrize("pad_value", [0, -1, 1])
def test_export_conv_layer(tmp_path, pad_value):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        BinaryConv2d(3, 8, 3, stride=2, padding=(1, 2, 0, 1), dilation=(1, 2), bias=True,
                     pad_value=pad_value, weight_scale=True),
        BinaryConv2d(8, 8, 3, padding=1, groups=2, pad_value=pad_value))
    _export_and_compare(model, torch.randn(2, 3, 9, 11), tmp_path, torch.randn(4, 3, 9, 11))


def test_check_exportable():
    layer = BinaryLinear(10, 2)
    layer.weight = torch.nn.Parameter(torch.zeros(2, (1 << 24) + 1))
    with pytest.raises(ExportError, match="exceeds"):
        export_model(torch.nn.Sequential(layer), torch.randn(1, (1 << 24) + 1))


def test_layer_bad_config():
    with pytest.raises(ValueError, match="groups"):
        BinaryConv2d(6, 4, 3, groups=4)
    with pytest.raises(ValueError, match="pad_value"):
        BinaryConv2d(4, 4, 3, pad_value=2)


@pytest.mark.parametrize("arch", ["binary_mlp", "binary_cnn"])
def test_model_trains_exports_and_matches(arch, tmp_path):
    """Train briefly on digits; the exported model agrees with PyTorch (kernel and fallback
    bit-exact with each other, same predictions as PyTorch)."""
    from steport.train.data import load_digits
    from steport.train.loop import FitConfig, fit

    torch.manual_seed(0)
    data = load_digits()
    model = build_model(arch, in_channels=1, num_classes=10,
                        **({"hidden": 128} if arch == "binary_mlp" else {"width": 16}))
    res = fit(model, data, FitConfig(epochs=4, progress=False))
    assert res.test_accuracy > 0.85, res.test_accuracy
    xs = data.test.x[:200]
    _, k, ref = _export_and_compare(model, data.test.x[:2], tmp_path, xs)
    assert (k.argmax(1) == ref.argmax(1)).mean() > 0.99
