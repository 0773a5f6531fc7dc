"""Convolutional logic layers: tree wiring, discrete output vs an explicit per-position tree
evaluation, relaxation, export (im2col + fused LogicNet) bit-exact in ORT and in the
fallback, digits training."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from steport.export import export_model
from steport.train.layers import LogicConv2d, OrPool2d, ThresholdBinarize

from ..conftest import assert_bitexact, run_fallback, run_steport
from .digits import train_export_digits


def truth(gid: int, a: int, b: int) -> int:
    return (gid >> (3 - (2 * a + b))) & 1


def reference_conv(conv: LogicConv2d, x: np.ndarray) -> np.ndarray:
    """Every position and channel evaluated as an explicit gate tree over the padded input."""
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    n, c, h, w = x.shape
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), np.int64)
    xp[:, :, ph:ph + h, pw:pw + w] = x != 0
    ho, wo = conv.output_size(h, w)
    levels = conv.discretize()
    out = np.zeros((n, conv.out_channels, ho, wo), np.float32)
    for i in range(n):
        for oy in range(ho):
            for ox in range(wo):
                field = xp[i, :, oy * sh:oy * sh + kh, ox * sw:ox * sw + kw].reshape(-1)
                h_bits = field
                for ia, ib, g in levels:
                    h_bits = np.array([truth(int(g[j]), int(h_bits[ia[j]]), int(h_bits[ib[j]]))
                                       for j in range(len(g))])
                out[i, :, oy, ox] = h_bits
    return out


def make_conv(**kw) -> LogicConv2d:
    kw.setdefault("generator", torch.Generator().manual_seed(0))
    conv = LogicConv2d(**kw)
    with torch.no_grad():  # spread the gates over all 16 ids
        for m in conv.levels:
            m.weight.copy_(torch.randn(m.weight.shape, generator=kw["generator"]) * 3)
    return conv.eval()


def test_tree_wiring():
    conv = make_conv(in_channels=3, out_channels=5, kernel_size=3, depth=3)
    (a0, b0, _), (a1, b1, _), (a2, b2, _) = conv.discretize()
    assert [len(a0), len(a1), len(a2)] == [20, 10, 5]
    leaves = torch.stack([a0.view(5, 4), b0.view(5, 4)], -1).view(5, 8)
    assert all(len(set(row.tolist())) == 8 for row in leaves)  # distinct taps per tree
    assert leaves.max() < 27 and leaves.min() >= 0
    assert a1.tolist() == list(range(0, 20, 2)) and b1.tolist() == list(range(1, 20, 2))
    assert a2.tolist() == list(range(0, 10, 2)) and b2.tolist() == list(range(1, 10, 2))


@pytest.mark.parametrize("kw", [
    dict(kernel_size=3, padding=1, stride=1, depth=2),
    dict(kernel_size=3, padding=0, stride=2, depth=3),
    dict(kernel_size=(2, 3), padding=(1, 0), stride=(1, 2), depth=1),
])
def test_discrete_matches_explicit_trees(kw):
    conv = make_conv(in_channels=2, out_channels=4, **kw)
    x = (torch.rand(3, 2, 7, 6, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    with torch.no_grad():
        got = conv(x).numpy()
    assert got.shape == (3, 4, *conv.output_size(7, 6))
    assert np.array_equal(got, reference_conv(conv, x.numpy()))


def test_relaxation_with_sharp_gates_is_discrete_and_trains():
    conv = make_conv(in_channels=2, out_channels=3, kernel_size=3, padding=1, depth=2)
    x = (torch.rand(2, 2, 5, 5) > 0.5).float()
    with torch.no_grad():
        ref = conv(x)
        for m in conv.levels:
            m.weight.mul_(100.0)
    conv.train()
    y = conv(x)
    torch.testing.assert_close(y, ref, atol=1e-6, rtol=0)
    with torch.no_grad():
        for m in conv.levels:
            m.weight.div_(100.0)
    conv(x).sum().backward()
    assert all(m.weight.grad is not None and m.weight.grad.abs().sum() > 0 for m in conv.levels)


def test_or_pool_and_image_binarizer():
    bits = torch.tensor([[[[0., 1.], [0., 0.]], [[0., 0.], [0., 0.]]]])
    assert OrPool2d(2)(bits).flatten().tolist() == [1.0, 0.0]
    x = torch.tensor([[[[0.1, 0.6]], [[0.9, 0.3]]]])  # [1, 2, 1, 2]
    y = ThresholdBinarize([0.2, 0.5], flatten=False)(x)
    assert y.shape == (1, 4, 1, 2)  # channel c, threshold t -> c*2 + t
    assert y[0, :, 0, 0].tolist() == [0, 0, 1, 1] and y[0, :, 0, 1].tolist() == [1, 1, 1, 0]


def test_bad_arguments():
    with pytest.raises(ValueError, match="depth"):
        LogicConv2d(1, 2, depth=0)
    with pytest.raises(ValueError, match="channels"):
        LogicConv2d(0, 2)
    with pytest.raises(ValueError, match="mode"):
        LogicConv2d(1, 2, mode="fuzzy")
    conv = LogicConv2d(2, 3, kernel_size=5).eval()
    with pytest.raises(ValueError, match=r"expects \[N, 2, H, W\]"):
        conv(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        conv(torch.zeros(1, 2, 3, 3))


@pytest.mark.parametrize("kw", [dict(padding=1, stride=1), dict(padding=0, stride=2)])
def test_export_bitexact(tmp_path, kw):
    model = torch.nn.Sequential(make_conv(in_channels=3, out_channels=8, kernel_size=3,
                                          depth=2, **kw), OrPool2d(2)).eval()
    x = (torch.rand(5, 3, 9, 9, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    with torch.no_grad():
        ref = model(x).numpy()
    proto = export_model(model, x[:2], tmp_path / "conv.onnx")
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("LogicNet") == 1 and "MaxPool" in ops
    assert_bitexact(run_steport(proto, {"input": x.numpy()})[0], ref, "ORT kernel")
    assert_bitexact(run_fallback(proto, {"input": x.numpy()})[0], ref, "fallback")


def test_digits_conv_net_train_export(tmp_path):
    _, _, _, _, proto = train_export_digits(tmp_path, "logic_conv_net", 6, 0.8, channels=32,
                                            depth=2, widths=[1000, 1000])
    assert [n.op_type for n in proto.graph.node].count("LogicNet") == 2
