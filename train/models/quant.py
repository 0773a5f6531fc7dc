"""PACT-quantized models."""
from __future__ import annotations

from torch import nn

from ..layers import PACT
from . import register_model


@register_model("pact_cnn")
def pact_cnn(in_channels: int = 1, num_classes: int = 10, width: int = 16, bits: int = 4,
             alpha_init: float = 4.0) -> nn.Module:
    """CNN whose activations are PACT-quantized to ``bits`` (ReLU replaced by PACT, as in the
    paper: PACT clips at 0 and alpha)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), PACT(bits, alpha_init),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width),
        PACT(bits, alpha_init), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(2 * width * 4, num_classes))


@register_model("pact_act_cnn28")
def pact_act_cnn28(in_channels: int = 1, num_classes: int = 10, width: int = 64,
                   image_size: int = 28, bits: int = 4, alpha_init: float = 6.0) -> nn.Module:
    """The 28x28 CNN (models/backbones.py) with PACT activations (float weights): the PACT
    family's Fashion-MNIST recipe until quantized-weight layers (QConv2d/QLinear) exist."""
    from .backbones import FLOAT, Layers, cnn28

    layers = Layers(conv=FLOAT.conv, linear=FLOAT.linear,
                    act=lambda channels: PACT(bits, alpha_init))
    return cnn28(layers, in_channels, num_classes, width, image_size)
