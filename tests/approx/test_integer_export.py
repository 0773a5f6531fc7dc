"""Approximate-multiplier networks exported as integer networks (docs/ops.md "Integer
models"): with the exact multiplier ApproxConv2d / ApproxLinear become QDQ nodes that ONNX
Runtime fuses into QLinearConv / QGemm (an exact LUT product is an int8 product); with any
other LUT, ai.steport.approx nodes plus the requantization in standard ops. ORT must equal
the PyTorch integer reference bit for bit, with uint8 activation zero points (the first
layer sees signed images), BatchNorm folding of both signs, max-pool and flatten on codes."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from steport.export import ExportError
from steport.export.integer import build_plan, export_integer_model, integer_reference
from steport.train.layers.approx import ApproxConv2d, ApproxLinear
from steport.train.models import build_model

from ..helpers import calibrate_for_integer_export, ort_session


def net(mode: str = "lut", per_channel: bool = True, multiplier=None) -> nn.Sequential:
    kw = dict(mode=mode, per_channel=per_channel, multiplier=multiplier)
    return nn.Sequential(
        ApproxConv2d(3, 16, 3, padding=1, **kw), nn.BatchNorm2d(16), nn.ReLU(),
        ApproxConv2d(16, 16, 3, padding=2, dilation=2, bias=False, **kw), nn.BatchNorm2d(16),
        nn.ReLU(), nn.MaxPool2d(2),
        ApproxConv2d(16, 24, 3, stride=2, padding=1, groups=2, **kw), nn.ReLU(), nn.Flatten(),
        ApproxLinear(24 * 4 * 4, 32, **kw), nn.BatchNorm1d(32), nn.ReLU(),
        ApproxLinear(32, 10, **kw))


def calibrated(model: nn.Module, shape=(3, 16, 16)) -> nn.Module:
    # shifted signed inputs: the first layer's quantizer gets a zero point
    return calibrate_for_integer_export(model, shape, input_scale=1.5, input_shift=0.3)


def run(proto: onnx.ModelProto, x: torch.Tensor, optimized: str | None = None) -> np.ndarray:
    return ort_session(proto, optimized).run(None, {"input": x.numpy()})[0]


@pytest.mark.parametrize("mode,per_channel", [("lut", True), ("quant", True), ("lut", False)])
def test_exact_approx_network_runs_on_ort_integer_kernels(mode, per_channel, tmp_path):
    model = calibrated(net(mode, per_channel))
    plan = build_plan(model)
    first = plan.steps[0].q
    assert first.zero_point > 0, "signed images must give the first quantizer a zero point"
    x = torch.randn(48, 3, 16, 16) * 1.5 + 0.3
    proto = export_integer_model(model, x[:2])
    opt = str(tmp_path / "opt.onnx")
    y = run(proto, x, opt)
    np.testing.assert_array_equal(y, integer_reference(plan, x).numpy())
    ops = [n.op_type for n in onnx.load(opt).graph.node]
    assert "Conv" not in ops and "Gemm" not in ops and "MatMul" not in ops, ops
    assert ops.count("QLinearConv") == 3 and ops.count("QGemm") == 2, ops
    assert not any(n.domain.startswith("ai.steport") for n in proto.graph.node)
    # the float deploy form (ai.steport.approx nodes) computes the same function up to the
    # requantization roundings
    with torch.no_grad():
        fq = model(x).numpy()
    assert (fq.argmax(1) == y.argmax(1)).mean() >= 0.9


def test_zero_point_codes_relu_clip():
    """A ReLU on codes with a nonzero zero point clips at the zero-point code: an approx
    layer followed directly by a ReLU and then a layer whose quantizer saw negative values."""
    model = nn.Sequential(ApproxConv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          ApproxLinear(8 * 16 * 16, 5))
    calibrated(model)
    with torch.no_grad():  # the next quantizer's range includes negatives: zero point > 0
        model[3].act.lo.fill_(-0.7)
    plan = build_plan(model)
    assert model[3].act.frozen()[1] > 0
    x = torch.randn(16, 3, 16, 16)
    np.testing.assert_array_equal(run(export_integer_model(model, x[:2]), x),
                                  integer_reference(plan, x).numpy())


@pytest.mark.parametrize("arch", ["approx_cnn28", "approx_vgg_small"])
def test_backbones_export_as_integer_networks(arch):
    shape = (1, 28, 28) if arch == "approx_cnn28" else (3, 32, 32)
    kw = {"width": 8} if arch == "approx_cnn28" else {"width": 8, "hidden": 32}
    model = build_model(arch, in_channels=shape[0], num_classes=10, image_size=shape[1], **kw)
    calibrated(model, shape)
    x = torch.randn(8, *shape)
    np.testing.assert_array_equal(run(export_integer_model(model, x[:2]), x),
                                  integer_reference(build_plan(model), x).numpy())


@pytest.mark.parametrize("multiplier", ["drum_k4", "mitchell", "truncated_t3"])
def test_approximate_networks_are_integer_networks_on_their_luts(multiplier):
    """Any other multiplier: ApproxQLinearConv / ApproxQLinearMatMul with its LUT and the
    requantization inside (the max-pool fused into the conv before it); the output layer
    ApproxMatMulInteger and the float scale in standard ops. Equal to the reference (PyTorch
    LUT sums, not the kernels) bit for bit, on the kernels and on the fallback bodies (stock
    ORT)."""
    model = calibrated(net(multiplier=multiplier))
    plan = build_plan(model)
    x = torch.randn(24, 3, 16, 16) * 1.5 + 0.3
    proto = export_integer_model(model, x[:2])
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("ApproxQLinearConv") == 3 and ops.count("ApproxQLinearMatMul") == 1, ops
    assert ops.count("ApproxMatMulInteger") == 1 and ops.count("QuantizeLinear") == 1, ops
    pooled = [n for n in proto.graph.node if any(a.name == "pool_kernel" for a in n.attribute)]
    assert len(pooled) == 1 and "MaxPool" not in ops, ops
    assert "BatchNormalization" not in ops and "Relu" not in ops, ops
    ref = integer_reference(plan, x).numpy()
    np.testing.assert_array_equal(run_with_ops(proto, x), ref)
    np.testing.assert_array_equal(run(proto, x), ref)  # fallback bodies
    with torch.no_grad():
        fq = model(x).numpy()
    assert (fq.argmax(1) == ref.argmax(1)).mean() >= 0.9


def run_with_ops(proto: onnx.ModelProto, x: torch.Tensor) -> np.ndarray:
    import steport

    return steport.session(proto.SerializeToString(), threads=2).run(None, {"input": x.numpy()})[0]


def test_lut_whose_zero_column_is_not_zero_cannot_fold_a_zero_batchnorm_scale():
    lut = np.asarray(np.arange(65536, dtype=np.int32).reshape(256, 256) % 97 - 40, np.int32)
    model = calibrated(net(multiplier=lut))  # calibrated() sets one BN scale to 0
    with pytest.raises(ExportError, match=r"layer '1' \(BatchNorm2d\).*code 0"):
        export_integer_model(model, torch.zeros(2, 3, 16, 16))


def test_float_mode_is_refused():
    with pytest.raises(ExportError, match=r"mode 'float'"):
        export_integer_model(calibrated(net(mode="float")), torch.zeros(2, 3, 16, 16))
