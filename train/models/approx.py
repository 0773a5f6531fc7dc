"""approx models (registered with @register_model)."""
from __future__ import annotations

from torch import nn

from ..layers.approx import ApproxConv2d, ApproxLinear
from . import register_model


@register_model("approx_cnn")
def approx_cnn(in_channels: int = 1, num_classes: int = 10, width: int = 16,
               multiplier=None, mode: str = "lut", per_channel: bool = True,
               act_range: str = "observed", depthwise: bool = False) -> nn.Module:
    """Small CNN for 8x8 digits whose conv/linear products come from ``multiplier`` (a name
    for steport.train.multipliers, a LUT array, or None = exact). ``depthwise`` swaps the
    second conv for depthwise 3x3 + pointwise 1x1."""
    kw = dict(multiplier=multiplier, mode=mode, per_channel=per_channel, act_range=act_range)
    if depthwise:
        conv2 = [ApproxConv2d(width, width, 3, padding=1, groups=width, **kw),
                 ApproxConv2d(width, 2 * width, 1, **kw)]
    else:
        conv2 = [ApproxConv2d(width, 2 * width, 3, padding=1, **kw)]
    return nn.Sequential(
        ApproxConv2d(in_channels, width, 3, padding=1, **kw), nn.BatchNorm2d(width), nn.ReLU(),
        nn.MaxPool2d(2),
        *conv2, nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        ApproxLinear(2 * width * 4, num_classes, **kw))


@register_model("approx_lut_cnn28")
def approx_lut_cnn28(in_channels: int = 1, num_classes: int = 10, width: int = 64,
                     image_size: int = 28, multiplier=None, mode: str = "lut",
                     per_channel: bool = True, act_range: str = "observed") -> nn.Module:
    """The 28x28 CNN (models/backbones.py) with every conv and the classifier on an 8x8
    LUT multiplier (``multiplier`` as in approx_cnn; None = exact product)."""
    from .backbones import Layers, cnn28

    kw = dict(multiplier=multiplier, mode=mode, per_channel=per_channel, act_range=act_range)
    layers = Layers(
        conv=lambda cin, cout, first: ApproxConv2d(cin, cout, 3, padding=1, bias=False, **kw),
        linear=lambda fin, fout, last: ApproxLinear(fin, fout, bias=last, **kw),
        act=lambda channels: nn.ReLU())
    return cnn28(layers, in_channels, num_classes, width, image_size)
