"""approx models (registered with @register_model)."""
from __future__ import annotations

from torch import nn

from ..layers.approx import ApproxConv2d, ApproxLinear
from .zoo import register_model
from .backbones import Layers, cnn28, vgg_small


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


def _approx_layers(multiplier, mode: str, per_channel: bool, act_range: str) -> Layers:
    """Every conv and linear layer of a backbone as an approximate-multiplier layer (first
    and last included: the multiplier is the hardware the whole network runs on)."""
    kw = dict(multiplier=multiplier, mode=mode, per_channel=per_channel, act_range=act_range)

    def conv(cin: int, cout: int, first: bool) -> nn.Module:
        return ApproxConv2d(cin, cout, 3, padding=1, bias=False, **kw)

    def linear(fin: int, fout: int, last: bool) -> nn.Module:
        return ApproxLinear(fin, fout, bias=last, **kw)

    return Layers(conv=conv, linear=linear, act=lambda channels: nn.ReLU())


@register_model("approx_vgg_small")
def approx_vgg_small(in_channels: int = 3, num_classes: int = 10, width: int = 128,
                     image_size: int = 32, hidden: int = 1024, multiplier=None,
                     mode: str = "lut", per_channel: bool = True,
                     act_range: str = "observed") -> nn.Module:
    """VGG-small (models/backbones.py) whose convs and linears multiply through
    ``multiplier`` (a steport.train.multipliers name, a LUT, or None = exact)."""
    return vgg_small(_approx_layers(multiplier, mode, per_channel, act_range), in_channels,
                     num_classes, width, image_size, hidden)


@register_model("approx_cnn28")
def approx_cnn28(in_channels: int = 1, num_classes: int = 10, width: int = 64,
                 image_size: int = 28, multiplier=None, mode: str = "lut",
                 per_channel: bool = True, act_range: str = "observed") -> nn.Module:
    """The 28x28 CNN (models/backbones.py) with approximate-multiplier convs and linear."""
    return cnn28(_approx_layers(multiplier, mode, per_channel, act_range), in_channels,
                 num_classes, width, image_size)
