"""PACT-quantized models: every conv and linear is a QConv2d / QLinear (quantized input and
weights), so the network exports as an integer network (steport.export.integer) as well as
with float Pact nodes (steport.export.export_model)."""
from __future__ import annotations

from torch import nn

from ..layers import QConv2d, QLinear
from .zoo import register_model
from .backbones import Layers, cnn28, vgg_small


def _quant_kwargs(bits, alpha_init, weight_quant, weight_bits) -> dict:
    return dict(act_bits=bits, alpha_init=alpha_init, weight_quant=weight_quant,
                weight_bits=weight_bits)


def _input_kwargs(input_bits, input_signed, input_alpha, weight_quant, weight_bits) -> dict:
    # The first layer sees the image, not a PACT output: 8-bit codes by default, signed for
    # normalized (zero-mean) inputs such as CIFAR-10, unsigned for [0, 1] pixels.
    return dict(act_bits=input_bits, act_signed=input_signed, alpha_init=input_alpha,
                weight_quant=weight_quant, weight_bits=weight_bits)


def pact_layers(bits: int = 4, alpha_init: float = 4.0, weight_quant: str = "symmetric",
                weight_bits: int = 8, input_bits: int = 8, input_signed: bool = True,
                input_alpha: float = 3.0) -> Layers:
    """Backbone layers (models/backbones.py) for PACT networks: each conv/linear quantizes its
    own input (PACT clips at 0 and alpha, so it replaces the ReLU: the activation after
    BatchNorm is Identity) and its weights. The first conv quantizes the image with
    ``input_bits``; the last linear keeps a float bias and float output (the logits)."""
    q = _quant_kwargs(bits, alpha_init, weight_quant, weight_bits)
    first_q = _input_kwargs(input_bits, input_signed, input_alpha, weight_quant, weight_bits)

    def conv(cin: int, cout: int, first: bool) -> nn.Module:
        return QConv2d(cin, cout, 3, padding=1, bias=False, **(first_q if first else q))

    def linear(fin: int, fout: int, last: bool) -> nn.Module:
        return QLinear(fin, fout, bias=last, **q)

    return Layers(conv=conv, linear=linear, act=lambda channels: nn.Identity())


@register_model("pact_cnn")
def pact_cnn(in_channels: int = 1, num_classes: int = 10, width: int = 16, bits: int = 4,
             alpha_init: float = 4.0, weight_quant: str = "symmetric", weight_bits: int = 8,
             input_bits: int = 8, input_signed: bool = False, input_alpha: float = 1.0,
             image_size: int = 8) -> nn.Module:
    """Small CNN (8x8 digits by default) with ``bits``-bit PACT activations and quantized
    weights; the image is quantized to ``input_bits`` (unsigned, [0, input_alpha], by
    default: pixels in [0, 1])."""
    if image_size < 4 or image_size % 4:
        raise ValueError(f"pact_cnn: image_size must be a positive multiple of 4, got {image_size}")
    q = _quant_kwargs(bits, alpha_init, weight_quant, weight_bits)
    side = image_size // 4
    return nn.Sequential(
        QConv2d(in_channels, width, 3, padding=1,
                **_input_kwargs(input_bits, input_signed, input_alpha, weight_quant, weight_bits)),
        nn.BatchNorm2d(width), nn.MaxPool2d(2),
        QConv2d(width, 2 * width, 3, padding=1, **q), nn.BatchNorm2d(2 * width), nn.MaxPool2d(2),
        nn.Flatten(),
        QLinear(2 * width * side * side, num_classes, **q))


@register_model("pact_vgg_small")
def pact_vgg_small(in_channels: int = 3, num_classes: int = 10, width: int = 128,
                   image_size: int = 32, hidden: int = 1024, bits: int = 4,
                   alpha_init: float = 4.0, weight_quant: str = "symmetric",
                   weight_bits: int = 8, input_bits: int = 8, input_signed: bool = True,
                   input_alpha: float = 3.0) -> nn.Module:
    """VGG-small (models/backbones.py), every layer quantized (signed 8-bit image input for
    normalized CIFAR-10 by default)."""
    return vgg_small(pact_layers(bits, alpha_init, weight_quant, weight_bits, input_bits,
                                 input_signed, input_alpha),
                     in_channels, num_classes, width, image_size, hidden)


@register_model("pact_cnn28")
def pact_cnn28(in_channels: int = 1, num_classes: int = 10, width: int = 64,
               image_size: int = 28, bits: int = 4, alpha_init: float = 4.0,
               weight_quant: str = "symmetric", weight_bits: int = 8, input_bits: int = 8,
               input_signed: bool = False, input_alpha: float = 1.0) -> nn.Module:
    """The 28x28 CNN (models/backbones.py), every layer quantized (unsigned 8-bit [0, 1]
    image input by default, as MNIST / Fashion-MNIST pixels)."""
    return cnn28(pact_layers(bits, alpha_init, weight_quant, weight_bits, input_bits,
                             input_signed, input_alpha),
                 in_channels, num_classes, width, image_size)
