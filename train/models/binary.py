"""Binary networks for small images (8x8 digits by default). First and last layers stay
full precision (bitorch / Larq practice); the layers in between are binary and each is
preceded by BatchNorm so that sign() sees centred inputs."""
from __future__ import annotations

from torch import nn

from ..layers import BinaryConv2d, BinaryLinear
from .zoo import register_model
from .backbones import Layers, cnn28, float_conv, float_linear, vgg_small


@register_model("binary_mlp")
def binary_mlp(in_channels: int = 1, num_classes: int = 10, image_size: int = 8,
               hidden: int = 256, depth: int = 2, weight_scale: bool = True,
               act_scale: bool = False) -> nn.Module:
    """Linear (fp) -> [BN -> BinaryLinear] x depth -> BN -> Linear (fp)."""
    layers: list[nn.Module] = [nn.Flatten(), nn.Linear(in_channels * image_size ** 2, hidden)]
    for _ in range(depth):
        layers += [nn.BatchNorm1d(hidden),
                   BinaryLinear(hidden, hidden, weight_scale=weight_scale, act_scale=act_scale)]
    layers += [nn.BatchNorm1d(hidden), nn.Linear(hidden, num_classes)]
    return nn.Sequential(*layers)


@register_model("binary_cnn")
def binary_cnn(in_channels: int = 1, num_classes: int = 10, width: int = 32,
               pad_value: int = 0, weight_scale: bool = True, act_scale: bool = False,
               image_size: int = 8) -> nn.Module:
    """Conv (fp) -> BN -> BinaryConv -> BN -> pool -> BinaryConv -> BN -> pool -> Linear (fp)."""
    kw = dict(weight_scale=weight_scale, act_scale=act_scale, pad_value=pad_value)
    side = image_size // 4
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width),
        BinaryConv2d(width, 2 * width, 3, padding=1, **kw), nn.BatchNorm2d(2 * width),
        nn.MaxPool2d(2),
        BinaryConv2d(2 * width, 2 * width, 3, padding=1, **kw), nn.BatchNorm2d(2 * width),
        nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(2 * width * side * side, num_classes))


def _binary_layers(weight_scale: bool, act_scale: bool, pad_value: int,
                   latent_clip: float | None = None) -> Layers:
    """Binary inner layers, float first conv and last linear (the BN before each binary layer
    centres what sign() sees; the binary layers binarize their own inputs). ``latent_clip``:
    Larq's weight_clip, latent weights clamped to [-c, c] after each optimizer step."""
    def conv(cin: int, cout: int, first: bool) -> nn.Module:
        if first:
            return float_conv(cin, cout, first)
        return BinaryConv2d(cin, cout, 3, padding=1, pad_value=pad_value,
                            weight_scale=weight_scale, act_scale=act_scale,
                            latent_clip=latent_clip)

    def linear(fin: int, fout: int, last: bool) -> nn.Module:
        if last:
            return float_linear(fin, fout, last)
        return BinaryLinear(fin, fout, weight_scale=weight_scale, act_scale=act_scale,
                            latent_clip=latent_clip)

    return Layers(conv=conv, linear=linear, act=lambda channels: nn.Identity())


@register_model("binary_vgg_small")
def binary_vgg_small(in_channels: int = 3, num_classes: int = 10, width: int = 128,
                     image_size: int = 32, hidden: int = 1024, weight_scale: bool = True,
                     act_scale: bool = False, pad_value: int = 0) -> nn.Module:
    """VGG-small (models/backbones.py) with binary inner convs and hidden linear."""
    return vgg_small(_binary_layers(weight_scale, act_scale, pad_value), in_channels,
                     num_classes, width, image_size, hidden)


@register_model("binary_cnn28")
def binary_cnn28(in_channels: int = 1, num_classes: int = 10, width: int = 64,
                 image_size: int = 28, weight_scale: bool = True, act_scale: bool = False,
                 pad_value: int = 0, latent_clip: float | None = None) -> nn.Module:
    """The 28x28 CNN (models/backbones.py) with binary inner convs."""
    return cnn28(_binary_layers(weight_scale, act_scale, pad_value, latent_clip), in_channels,
                 num_classes, width, image_size)
