"""The reference networks (models/backbones.py): one shape, every family's variant of it."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from steport.train.layers import BinaryConv2d, BinaryLinear
from steport.train.models import build_model
from steport.train.models.backbones import FLOAT, cnn28, vgg_small


def _shapes(model: nn.Module) -> list[tuple[str, tuple]]:
    """(kind, weight shape) of every conv/linear, in order: the network's skeleton."""
    out = []
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, BinaryConv2d)):
            out.append(("conv", tuple(m.weight.shape)))
        elif isinstance(m, (nn.Linear, BinaryLinear)):
            out.append(("linear", tuple(m.weight.shape)))
    return out


def test_vgg_small_is_the_published_shape():
    m = vgg_small(FLOAT)
    convs = [s for k, s in _shapes(m) if k == "conv"]
    assert [c[0] for c in convs] == [128, 128, 256, 256, 512, 512]
    assert [s for k, s in _shapes(m) if k == "linear"] == [(1024, 8192), (10, 1024)]
    assert m(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_cnn28_is_the_stated_shape():
    m = cnn28(FLOAT)
    assert _shapes(m) == [("conv", (64, 1, 3, 3)), ("conv", (64, 64, 3, 3)),
                          ("conv", (128, 64, 3, 3)), ("linear", (10, 128 * 7 * 7))]
    assert m(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("net,shape", [("vgg_small", (3, 32, 32)), ("cnn28", (1, 28, 28))])
def test_binary_variant_has_the_float_skeleton(net, shape):
    kw = dict(in_channels=shape[0], image_size=shape[1], width=8)
    if net == "vgg_small":
        kw["hidden"] = 32
    f, b = build_model(net, **kw), build_model(f"binary_{net}", **kw)
    assert _shapes(f) == _shapes(b)
    # first conv and last linear stay float; every layer between is binary
    mods = [m for m in b.modules() if isinstance(m, (nn.Conv2d, nn.Linear, BinaryConv2d,
                                                    BinaryLinear))]
    assert type(mods[0]) is nn.Conv2d and type(mods[-1]) is nn.Linear
    assert all(isinstance(m, (BinaryConv2d, BinaryLinear)) for m in mods[1:-1])
    assert b.eval()(torch.zeros(2, *shape)).shape == (2, 10)


def test_image_size_must_fit_the_pooling():
    with pytest.raises(ValueError, match="multiple of 8"):
        vgg_small(FLOAT, image_size=30)
    with pytest.raises(ValueError, match="multiple of 4"):
        cnn28(FLOAT, image_size=30)
