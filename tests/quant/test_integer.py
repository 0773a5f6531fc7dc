"""Quantized layers (QConv2d / QLinear) and the integer export: ORT's fused integer kernels
vs the PyTorch integer reference (bit-exact), graph fusion, fake-quant vs integer accuracy,
weight quantizers vs their definitions, and clear errors for what the export cannot express."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import steport
from steport.export import ExportError
from steport.export.integer import build_plan, export_integer_model, integer_reference
from steport.train.layers.quant import PACT, QConv2d, QLinear, SignedActQuant
from steport.train.ops.quant import dorefa_weight_codes, quantize_weight, symmetric_weight_codes

from ..helpers import calibrate_for_integer_export, ort_session


def small_net(bits: int, weight_quant: str = "symmetric", weight_bits: int = 8,
              signed_input: bool = True) -> nn.Sequential:
    """Every integer-export feature: signed and unsigned input quantizers, BN folding, ReLU
    before PACT, max-pool and flatten on codes, QGemm hidden and output layers."""
    w = dict(weight_quant=weight_quant, weight_bits=weight_bits)
    a = dict(act_bits=bits, alpha_init=2.0, **w)
    return nn.Sequential(
        QConv2d(3, 16, 3, padding=1, act_bits=8, act_signed=signed_input, alpha_init=2.5, **w),
        nn.BatchNorm2d(16), nn.ReLU(),
        QConv2d(16, 16, 3, padding=1, **a), nn.BatchNorm2d(16), nn.MaxPool2d(2),
        QConv2d(16, 24, 3, stride=1, padding=1, bias=False, **a), nn.BatchNorm2d(24),
        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        QLinear(24 * 4 * 4, 32, **a), nn.BatchNorm1d(32), nn.Dropout(0.1),
        QLinear(32, 10, **a))


def calibrated(model: nn.Module, shape=(3, 16, 16)) -> nn.Module:
    return calibrate_for_integer_export(model, shape)


CONFIGS = [(2, "symmetric", 8), (4, "symmetric", 8), (8, "symmetric", 8), (4, "symmetric", 4),
           (4, "dorefa", 4), (2, "dorefa", 2), (8, "symmetric", 2)]


@pytest.mark.parametrize("bits,weight_quant,weight_bits", CONFIGS)
def test_ort_integer_model_equals_pytorch_integer_reference(bits, weight_quant, weight_bits,
                                                           tmp_path):
    model = calibrated(small_net(bits, weight_quant, weight_bits))
    x = torch.randn(64, 3, 16, 16) * 1.5
    proto = export_integer_model(model, x[:2])
    opt = str(tmp_path / "opt.onnx")
    y = ort_session(proto, opt).run(None, {"input": x.numpy()})[0]
    ref = integer_reference(build_plan(model), x).numpy()
    np.testing.assert_array_equal(y, ref)
    # ...and ORT ran it on integer kernels: every conv / gemm fused, no float Conv/Gemm left.
    ops = [n.op_type for n in onnx.load(opt).graph.node]
    assert "Conv" not in ops and "Gemm" not in ops and "MatMul" not in ops, ops
    assert ops.count("QLinearConv") == 3 and ops.count("QGemm") == 2, ops
    # The fake-quant model computes the same function up to rounding of float ops.
    with torch.no_grad():
        fq = model(x).numpy()
    assert (fq.argmax(1) == y.argmax(1)).mean() >= 0.9


def test_reference_is_integer_arithmetic():
    """Hidden activations of the reference are integer codes within the b-bit range, and one
    layer computed by hand (int32 sum, fp32 multiplier, round half to even) matches."""
    model = calibrated(nn.Sequential(
        QConv2d(3, 4, 3, padding=1, act_bits=4, alpha_init=1.0, weight_bits=4),
        QConv2d(4, 5, 1, act_bits=3, alpha_init=2.0, weight_bits=3)))
    plan = build_plan(model)
    x = torch.rand(2, 3, 5, 5) * 1.3
    # run the plan up to the first layer's requantized codes
    first = plan.steps[0], plan.steps[1], plan.steps[2]
    part = type(plan)(list(first), 4)
    codes_in = torch.clamp(torch.round(x / torch.tensor(plan.steps[0].q.scale)), 0, 255)
    codes_in = torch.clamp(codes_in, 0, 15)
    st = plan.steps[2]
    acc = torch.nn.functional.conv2d(codes_in.double(), torch.from_numpy(st.w_codes).double(),
                                     padding=1)
    acc = acc + torch.from_numpy(st.bias).double().reshape(1, -1, 1, 1)
    assert torch.equal(acc, acc.round()) and acc.abs().max() < 2**31
    m = (np.float32(st.x_q.scale) * st.w_scale) / np.float32(st.out_q.scale)
    expect = np.clip(np.round(acc.float().numpy() * m.reshape(1, -1, 1, 1)), 0, 255)
    got = integer_reference(part, x).numpy()
    np.testing.assert_array_equal(got, expect)
    assert np.array_equal(got, np.round(got)) and got.min() >= 0 and got.max() <= 255


def test_signed_codes_with_relu_and_float_tail():
    """A signed quantizer on a hidden layer (ReLU on int8 codes = Clip(0, 127)) and a float
    ReLU after the last layer: still exact against the reference."""
    model = calibrated(nn.Sequential(
        QConv2d(3, 8, 3, padding=1, act_bits=6, act_signed=True, alpha_init=2.0),
        nn.BatchNorm2d(8), nn.ReLU(),
        QConv2d(8, 8, 3, padding=1, act_bits=5, act_signed=True, alpha_init=1.5),
        nn.Flatten(), QLinear(8 * 16 * 16, 6, act_bits=4, alpha_init=1.0), nn.ReLU()))
    x = torch.randn(8, 3, 16, 16)
    y = ort_session(export_integer_model(model, x[:2])).run(None, {"input": x.numpy()})[0]
    np.testing.assert_array_equal(y, integer_reference(build_plan(model), x).numpy())
    assert (y >= 0).all()


def test_batch_is_dynamic():
    model = calibrated(small_net(4))
    proto = export_integer_model(model, torch.zeros(2, 3, 16, 16))
    sess = ort_session(proto)
    for n in (1, 3, 17):
        x = torch.randn(n, 3, 16, 16)
        np.testing.assert_array_equal(sess.run(None, {"input": x.numpy()})[0],
                                      integer_reference(build_plan(model), x).numpy())


# ---- weight quantizers -------------------------------------------------------------------

@pytest.mark.parametrize("bits", [2, 4, 8])
def test_symmetric_weight_codes(bits):
    w = torch.randn(6, 3, 3, 3)
    w[2] = 0.0  # an all-zero channel keeps a finite scale
    codes, scale = symmetric_weight_codes(w, bits)
    qmax = 2 ** (bits - 1) - 1
    assert torch.equal(codes, codes.round()) and codes.abs().max() <= qmax
    assert torch.isfinite(scale).all() and (scale > 0).all()
    # each nonzero channel reaches its extreme code
    assert (codes.reshape(6, -1).abs().amax(1)[[0, 1, 3, 4, 5]] == qmax).all()
    assert torch.equal(quantize_weight(w, "symmetric", bits), codes * scale.reshape(-1, 1, 1, 1))


@pytest.mark.parametrize("bits", [1, 2, 4, 7])
def test_dorefa_matches_bitorch_definition(bits):
    """bitorch WeightDoReFa: 2·round((tanh(w)/(2·max|tanh w|) + 0.5)·L)/L − 1, STE backward."""
    w = torch.randn(5, 7, requires_grad=True)
    levels = 2**bits - 1
    t = torch.tanh(w.detach())
    expect = 2.0 * (torch.round((t / (2.0 * t.abs().max()) + 0.5) * levels) / levels) - 1.0
    y = quantize_weight(w, "dorefa", bits)
    assert torch.equal(y.detach(), expect)
    codes, scale = dorefa_weight_codes(w.detach(), bits)
    assert torch.allclose(codes * scale.reshape(-1, 1), expect, atol=1e-6)
    assert (codes.remainder(2) == 1).all() and codes.abs().max() <= levels  # odd codes
    y.sum().backward()  # straight through the rounding, through tanh's derivative
    assert w.grad is not None and torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0


def test_layers_train_alpha_and_weights():
    conv = QConv2d(2, 3, 3, padding=1, act_bits=3, alpha_init=0.5, weight_bits=4)
    lin = QLinear(3 * 4 * 4, 2, act_bits=4, act_signed=True, alpha_init=0.05,
                  weight_quant="dorefa", weight_bits=3)
    x = torch.randn(4, 2, 4, 4) * 2
    lin(conv(x).flatten(1)).square().sum().backward()
    for p in (conv.weight, conv.input_quantizer.alpha, lin.weight, lin.input_quantizer.alpha):
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert isinstance(conv.input_quantizer, PACT) and isinstance(lin.input_quantizer, SignedActQuant)


def test_signed_act_quant_gradients():
    x = torch.tensor([-3.0, -1.0, -0.2, 0.0, 0.4, 1.0, 2.5], requires_grad=True)
    q = SignedActQuant(bits=3, alpha_init=1.0)
    y = q(x)
    third = np.float32(1) / np.float32(3)
    np.testing.assert_array_equal(y.detach().numpy(),
                                  np.float32([-1.0, -1.0, -third, 0.0, third, 1.0, 1.0]))
    y.backward(torch.ones_like(x))
    np.testing.assert_array_equal(x.grad.numpy(), [0, 1, 1, 1, 1, 1, 0])
    assert q.alpha.grad.item() == (-1 - 1 + 1 + 1)  # sign(x)·1[|x| >= alpha]: -3,-1,1,2.5


# ---- bad input: clear errors naming the layer --------------------------------------------

@pytest.mark.parametrize("kwargs,match", [
    (dict(act_bits=1), "activation bits must be an int in \\[2, 8\\]"),
    (dict(act_bits=9), "activation bits must be an int in \\[2, 8\\]"),
    (dict(weight_bits=1), "symmetric weight bits must be an int in \\[2, 8\\]"),
    (dict(weight_bits=9), "symmetric weight bits"),
    (dict(weight_quant="ternary"), "weight quantizer must be one of"),
    (dict(alpha_init=0.0), "alpha_init must be > 0"),
])
def test_bad_layer_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        QConv2d(1, 1, 3, **kwargs)


def _fails(model, match, shape=(2, 3, 8, 8)):
    with pytest.raises(ExportError, match=match):
        export_integer_model(model.eval(), torch.zeros(*shape))


def test_export_errors_name_the_layer():
    q = lambda **k: QConv2d(3, 4, 3, padding=1, **k)  # noqa: E731
    bad_alpha = q()
    with torch.no_grad():
        bad_alpha.input_quantizer.alpha.fill_(-1.0)
    _fails(nn.Sequential(OrderedDict(conv1=bad_alpha)), r"'conv1.input_quantizer'.*alpha")
    _fails(nn.Sequential(OrderedDict(conv1=q(weight_quant="dorefa", weight_bits=8))),
           r"layer 'conv1' \(QConv2d\): DoReFa 8-bit weights.*beyond int8")
    _fails(nn.Sequential(OrderedDict(conv1=q(act_bits=None))), r"'conv1'.*float input")
    _fails(nn.Sequential(OrderedDict(conv1=q(weight_quant=None))), r"'conv1'.*float weights")
    _fails(nn.Sequential(OrderedDict(c=q(), pool=nn.AvgPool2d(2), d=q(act_bits=4))),
           r"layer 'pool' \(AvgPool2d\): cannot be expressed")
    _fails(nn.Sequential(OrderedDict(c=nn.Conv2d(3, 4, 3))), r"layer 'c' \(Conv2d\)")
    _fails(nn.Sequential(OrderedDict(c=q(), act=nn.ReLU(), bn=nn.BatchNorm2d(4))),
           r"layer 'bn' \(BatchNorm2d\): cannot be expressed.*BatchNorm directly after")
    reflect = QConv2d(3, 4, 3, padding=1, padding_mode="reflect")
    _fails(nn.Sequential(OrderedDict(c=reflect)), r"layer 'c'.*zero padding only")
    _fails(nn.Sequential(OrderedDict(c=QConv2d(3, 4, 3, padding="same"))), r"layer 'c'")
    big = QLinear(4, 2, act_bits=8)
    with torch.no_grad():
        big.bias.fill_(1e9)
    _fails(nn.Sequential(OrderedDict(fc=big)), r"layer 'fc'.*beyond int32", shape=(2, 4))


# ---- end to end: trained on digits, integer accuracy = fake-quant accuracy ---------------

def test_trained_pact_cnn_integer_accuracy_matches_fake_quant(tmp_path):
    from steport.export.checkpoint import export_checkpoint
    from steport.export.verify import verify
    from steport.train.checkpoint import save_checkpoint
    from steport.train.data import load_digits
    from steport.train.models import build_model

    torch.manual_seed(0)
    data = load_digits()
    kwargs = dict(width=8, bits=4, alpha_init=4.0, weight_bits=4)
    model = build_model("pact_cnn", **kwargs)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xs, ys = data.train.x, data.train.y
    for _ in range(6):
        model.train()
        for i in range(0, len(xs), 64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xs[i:i + 64]), ys[i:i + 64]).backward()
            opt.step()
    model.eval()
    xt, yt = data.test.x, data.test.y.numpy()
    with torch.no_grad():
        fq_acc = (model(xt).argmax(1).numpy() == yt).mean()
    proto = export_integer_model(model, xt[:2], tmp_path / "int.onnx")
    y = ort_session(proto).run(None, {"input": xt.numpy()})[0]
    int_acc = (y.argmax(1) == yt).mean()
    assert fq_acc > 0.85, fq_acc
    assert abs(int_acc - fq_acc) <= 0.003 + 1e-9, (fq_acc, int_acc)
    np.testing.assert_array_equal(y, integer_reference(build_plan(model), xt).numpy())

    # the CLI path: checkpoint -> steport export --integer -> steport verify
    ckpt = tmp_path / "pact.pt"
    save_checkpoint(ckpt, model, arch="pact_cnn", kwargs=kwargs, input_shape=(1, 8, 8),
                    dataset="digits")
    export_checkpoint(str(ckpt), str(tmp_path / "cli.onnx"), integer=True)
    report = verify(tmp_path / "cli.onnx", ckpt, batch=128)
    pairs = {(p.a, p.b): p for p in report.pairs}
    assert report.ok, report.table()
    assert pairs[("ort+steport", "pytorch-int")].max_abs_diff == 0.0
    assert pairs[("ort+steport", "pytorch")].argmax_agreement >= 0.95


def test_float_export_of_quantized_layers_still_available():
    """export_model keeps the float semantics: float Conv/Gemm on the fake-quantized weights
    (one constant each) and ai.steport.quant::Pact nodes, equal to PyTorch up to float
    rounding."""
    from steport.export import export_model

    model = calibrated(small_net(4, signed_input=False))
    x = torch.rand(16, 3, 16, 16)
    proto = export_model(model, x[:2])
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("Pact") == 5 and "QuantizeLinear" not in ops, ops
    y = steport.session(proto.SerializeToString()).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        ref = model(x).numpy()
    assert (y.argmax(1) == ref.argmax(1)).mean() >= 0.9
    assert (np.abs(y - ref) <= 1e-4).mean() >= 0.9  # a PACT step may flip on float rounding
