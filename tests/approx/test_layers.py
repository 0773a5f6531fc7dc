"""ApproxLinear / ApproxConv2d: modes, STE gradients, LUT parity, export round trip."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from steport.export import ExportError, export_model
from steport.train import ApproxConv2d, ApproxLinear, build_model
from steport.train.ops.approx import approx_conv2d_ste, approx_linear_ste

from ..conftest import run_fallback, run_steport
from .common import exact_lut, random_lut, trunc_lut


def _quantized(layer, x):
    layer.train()
    layer(x)  # observe the range once
    layer.eval()
    return layer


@pytest.mark.parametrize("groups,cin,cout", [(1, 3, 4), (2, 4, 6), (5, 5, 5)])
def test_exact_lut_equals_quant_mode(groups, cin, cout):
    x = torch.randn(2, cin, 7, 7)
    conv = _quantized(ApproxConv2d(cin, cout, 3, padding=1, stride=1, groups=groups,
                                   multiplier=exact_lut(), mode="lut"), x)
    y_lut = conv(x)
    conv.mode = "quant"
    y_q = conv(x)
    torch.testing.assert_close(y_lut, y_q, rtol=1e-5, atol=1e-5)


def test_linear_exact_lut_equals_quant_mode():
    x = torch.randn(5, 3, 12)
    lin = _quantized(ApproxLinear(12, 7, multiplier=exact_lut()), x)
    y = lin(x)
    lin.mode = "quant"
    torch.testing.assert_close(y, lin(x), rtol=1e-5, atol=1e-5)


def test_approx_lut_changes_output_and_accepts_objects():
    class Mult:  # the steport.train.multipliers interface: .lut(), .name
        name = "rand"

        def lut(self):
            return random_lut()

    x = torch.randn(2, 3, 6, 6)
    a = _quantized(ApproxConv2d(3, 4, 3, multiplier=Mult()), x)
    b = ApproxConv2d(3, 4, 3, multiplier=exact_lut())
    b.load_state_dict({k: v for k, v in a.state_dict().items() if k != "lut"}, strict=False)
    b.eval()
    assert not torch.allclose(a(x), b(x))
    assert "rand" in repr(a)


def test_behavioural_model_is_bitexact_for_truncation():
    t = 2
    m = ~((1 << t) - 1)

    def trunc_model(a, b):  # (a & m) * (b & m), summed over k
        return (a & m) @ (b & m)

    x = torch.randn(3, 4, 6, 6)
    conv = _quantized(ApproxConv2d(4, 5, 3, padding=1, multiplier=trunc_lut(t), mode="lut"), x)
    y_lut = conv(x)
    conv.mode, conv._model_id = "model", __import__(
        "steport.train.ops.approx", fromlist=["x"]).register_behavioural_model(trunc_model)
    torch.testing.assert_close(conv(x), y_lut, rtol=0, atol=0)


def test_ste_gradients_are_exact_product_gradients():
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    lut = torch.from_numpy(random_lut())
    y = approx_conv2d_ste(x, w, lut, torch.tensor(0.1, dtype=torch.float64), 3,
                          torch.full((4,), 0.01, dtype=torch.float64), [2, 1], [1, 0], [1, 2], 1)
    g = torch.randn_like(y)
    dx, dw = torch.autograd.grad(y, (x, w), g)
    x2, w2 = x.detach().requires_grad_(), w.detach().requires_grad_()
    y2 = F.conv2d(x2, w2, stride=(2, 1), padding=(1, 0), dilation=(1, 2))
    ex, ew = torch.autograd.grad(y2, (x2, w2), g)
    torch.testing.assert_close(dx, ex)
    torch.testing.assert_close(dw, ew)
    xl = torch.randn(5, 8, dtype=torch.float64, requires_grad=True)
    wl = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    yl = approx_linear_ste(xl, wl, lut, torch.tensor(0.1, dtype=torch.float64), 0,
                           torch.tensor([0.02], dtype=torch.float64))
    gl = torch.randn_like(yl)
    dxl, dwl = torch.autograd.grad(yl, (xl, wl), gl)
    torch.testing.assert_close(dxl, gl @ wl)
    torch.testing.assert_close(dwl, gl.t() @ xl)


def test_layer_gradients_flow_and_training_step():
    torch.manual_seed(0)
    model = build_model("approx_cnn", in_channels=1, num_classes=10, width=4,
                        multiplier=random_lut())
    x = torch.randn(8, 1, 8, 8)
    loss = F.cross_entropy(model(x), torch.randint(0, 10, (8,)))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


def test_learned_range_gets_gradient():
    lin = ApproxLinear(6, 3, multiplier=random_lut(), act_range="learned")
    x = torch.randn(10, 6)
    lin(x).sum().backward()
    assert lin.act.lo.grad is not None and lin.act.hi.grad is not None
    assert float(lin.act.hi.grad.abs() + lin.act.lo.grad.abs()) > 0


@pytest.mark.parametrize("depthwise", [False, True])
def test_export_roundtrip_bitexact(depthwise):
    torch.manual_seed(0)
    model = build_model("approx_cnn", in_channels=1, num_classes=10, width=4,
                        multiplier=random_lut(), depthwise=depthwise)
    x = torch.randn(16, 1, 8, 8)
    model.train()
    for _ in range(2):
        model(x)
    model.eval()
    with torch.no_grad():
        ref = model(x).numpy()
    proto = export_model(model, x[:2])
    ops = {(n.domain, n.op_type) for n in proto.graph.node}
    assert ("ai.steport.approx", "ApproxConvInteger") in ops
    assert ("ai.steport.approx", "ApproxMatMulInteger") in ops
    out = run_steport(proto, {"input": x.numpy()})[0]
    fb = run_fallback(proto, {"input": x.numpy()})[0]
    np.testing.assert_array_equal(out, fb)
    # torch's training-mode forward (float rounding of scales) vs the integer deploy form
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_check_exportable():
    with pytest.raises(ExportError, match="without a LUT"):
        export_model(torch.nn.Sequential(ApproxLinear(4, 2, mode="model", model=lambda a, b: a @ b)),
                     torch.randn(1, 4))
    with pytest.raises(ExportError, match="mode 'float'"):
        export_model(torch.nn.Sequential(ApproxLinear(4, 2, mode="float")), torch.randn(1, 4))


def test_bad_layer_args():
    with pytest.raises(ValueError, match="mode must be one of"):
        ApproxLinear(4, 2, mode="nope")
    with pytest.raises(ValueError, match="needs a behavioural model"):
        ApproxLinear(4, 2, mode="model")
    with pytest.raises(ValueError, match=r"int32 \[256, 256\]"):
        ApproxConv2d(1, 1, 3, multiplier=np.zeros((256, 256), np.int64))
