"""Binary networks for small images (8x8 digits by default). First and last layers stay
full precision (bitorch / Larq practice); the layers in between are binary and each is
preceded by BatchNorm so that sign() sees centred inputs."""
from __future__ import annotations

from torch import nn

from ..layers import BinaryConv2d, BinaryLinear
from . import register_model


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


@register_model("binary_cnn28")
def binary_cnn28(in_channels: int = 1, num_classes: int = 10, width: int = 64,
                 pad_value: int = 0, weight_scale: bool = True, act_scale: bool = False,
                 latent_clip: float | None = 1.0, image_size: int = 28) -> nn.Module:
    """The 28x28 CNN's shape with binary inner convs (Larq/bitorch practice: first conv and
    classifier in full precision, BatchNorm before every sign): Conv 1->w (fp) -> BN ->
    BinaryConv w->w -> BN -> pool -> BinaryConv w->2w -> BN -> pool -> Linear (fp).
    ``latent_clip`` clamps the latent weights to [-c, c] after each step (Larq's
    ``weight_clip``)."""
    kw = dict(weight_scale=weight_scale, act_scale=act_scale, pad_value=pad_value,
              latent_clip=latent_clip)
    side = image_size // 4
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width),
        BinaryConv2d(width, width, 3, padding=1, **kw), nn.BatchNorm2d(width),
        nn.MaxPool2d(2),
        BinaryConv2d(width, 2 * width, 3, padding=1, **kw), nn.BatchNorm2d(2 * width),
        nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(2 * width * side * side, num_classes))
