"""The reference network shapes users train at real size, defined once and parameterized by
the layers a family puts into them.

The float twin, ORT's int8 quantization of it and every family's variant of a network are
built from the same function here, so a model-level comparison (``bench/models.py``) and a
recipe compare the same network, layer for layer. A family supplies ``Layers``: how to make
a 3x3 conv, a linear layer and the activation after each BatchNorm; the factories get
``first``/``last`` so a family can keep the first and last layers in float (the binary and
quantized-network practice) or not.

- ``vgg_small``: the CIFAR-size VGG-small of the binary/quantized-network literature
  (conv 128-128-P-256-256-P-512-512-P, fc 8192->1024->classes) for 32x32 inputs.
- ``cnn28``: a 28x28 CNN (conv 1->64, 64->64, pool, 64->128, pool, fc).

``width`` scales every channel count (tests use small widths)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from .zoo import register_model

# (in_channels, out_channels, first) -> a 3x3 conv with padding 1 and no bias (BN follows)
ConvFactory = Callable[[int, int, bool], nn.Module]
# (in_features, out_features, last) -> a linear layer (bias only where no BN follows)
LinearFactory = Callable[[int, int, bool], nn.Module]
# (channels) -> the activation after a BatchNorm
ActFactory = Callable[[int], nn.Module]


@dataclass(frozen=True)
class Layers:
    conv: ConvFactory
    linear: LinearFactory
    act: ActFactory


def float_conv(cin: int, cout: int, first: bool) -> nn.Module:
    return nn.Conv2d(cin, cout, 3, padding=1, bias=False)


def float_linear(fin: int, fout: int, last: bool) -> nn.Module:
    return nn.Linear(fin, fout, bias=last)


FLOAT = Layers(conv=float_conv, linear=float_linear, act=lambda channels: nn.ReLU())


def _conv_block(layers: Layers, cin: int, cout: int, first: bool = False) -> list[nn.Module]:
    return [layers.conv(cin, cout, first), nn.BatchNorm2d(cout), layers.act(cout)]


def _check_size(name: str, image_size: int, factor: int) -> None:
    if image_size < factor or image_size % factor:
        raise ValueError(f"{name}: image_size must be a positive multiple of {factor}, "
                         f"got {image_size}")


def vgg_small(layers: Layers = FLOAT, in_channels: int = 3, num_classes: int = 10,
              width: int = 128, image_size: int = 32, hidden: int = 1024) -> nn.Sequential:
    """conv w-w-P-2w-2w-P-4w-4w-P, fc (4w * (image_size/8)^2) -> hidden -> classes."""
    _check_size("vgg_small", image_size, 8)
    w = width
    side = image_size // 8
    return nn.Sequential(
        *_conv_block(layers, in_channels, w, first=True), *_conv_block(layers, w, w),
        nn.MaxPool2d(2),
        *_conv_block(layers, w, 2 * w), *_conv_block(layers, 2 * w, 2 * w), nn.MaxPool2d(2),
        *_conv_block(layers, 2 * w, 4 * w), *_conv_block(layers, 4 * w, 4 * w), nn.MaxPool2d(2),
        nn.Flatten(),
        layers.linear(4 * w * side * side, hidden, False), nn.BatchNorm1d(hidden),
        layers.act(hidden),
        layers.linear(hidden, num_classes, True))


def cnn28(layers: Layers = FLOAT, in_channels: int = 1, num_classes: int = 10, width: int = 64,
          image_size: int = 28) -> nn.Sequential:
    """conv w, w, P, 2w, P, fc (2w * (image_size/4)^2) -> classes."""
    _check_size("cnn28", image_size, 4)
    w = width
    side = image_size // 4
    return nn.Sequential(
        *_conv_block(layers, in_channels, w, first=True), *_conv_block(layers, w, w),
        nn.MaxPool2d(2),
        *_conv_block(layers, w, 2 * w), nn.MaxPool2d(2),
        nn.Flatten(), layers.linear(2 * w * side * side, num_classes, True))


@register_model("vgg_small")
def float_vgg_small(in_channels: int = 3, num_classes: int = 10, width: int = 128,
                    image_size: int = 32, hidden: int = 1024) -> nn.Module:
    """Float VGG-small (the baseline every family's VGG-small variant is compared with)."""
    return vgg_small(FLOAT, in_channels, num_classes, width, image_size, hidden)


@register_model("cnn28")
def float_cnn28(in_channels: int = 1, num_classes: int = 10, width: int = 64,
                image_size: int = 28) -> nn.Module:
    """Float 28x28 CNN (the baseline every family's cnn28 variant is compared with)."""
    return cnn28(FLOAT, in_channels, num_classes, width, image_size)
