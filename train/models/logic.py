"""Logic-gate network models (registered with @register_model)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..layers.logic import GradFactor, GroupSum, LogicDense, LogicNetwork, ThresholdBinarize
from ..layers.logic_conv import LogicConv2d, OrPool2d
from .zoo import register_model


def logic_gate_network(in_features: int, num_classes: int, widths: Sequence[int],
                       tau: float, thresholds: int | Sequence[float] | None = 3,
                       mode: str = "soft", connections: str = "unique",
                       init: str = "residual", residual_logit: float = 5.0,
                       grad_factor: float = 1.0, seed: int | None = 0,
                       candidates: int = 4) -> LogicNetwork:
    """Binarizer (T thresholds per feature) -> LogicDense(widths...) -> GroupSum(k, tau)."""
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    binarizer = ThresholdBinarize(thresholds) if thresholds is not None else None
    width = in_features * (binarizer.num_thresholds if binarizer is not None else 1)
    layers: list[nn.Module] = []
    for i, w in enumerate(widths):
        layers.append(LogicDense(width, w, connections=connections, init=init,
                                 residual_logit=residual_logit, mode=mode, generator=gen,
                                 candidates=candidates))
        if grad_factor != 1.0:
            layers.append(GradFactor(grad_factor))
        width = w
    return LogicNetwork(layers, GroupSum(num_classes, tau), binarizer)


@register_model("logic_net")
def logic_net(in_channels: int = 1, num_classes: int = 10, image_size: int = 8,
              thresholds: int | list = 3, widths: Sequence[int] = (2000, 2000, 2000),
              tau: float = 10.0, mode: str = "soft", connections: str = "unique",
              init: str = "residual", residual_logit: float = 5.0,
              grad_factor: float = 1.0, seed: int = 0, candidates: int = 4) -> LogicNetwork:
    """Logic-gate network for 8x8 digits: 64 pixels x 3 thresholds = 192 input bits,
    three layers of 2000 gates, GroupSum over 10 classes (200 gates per class).
    connections="learnable" learns each operand among ``candidates`` inputs."""
    return logic_gate_network(in_channels * image_size * image_size, num_classes, list(widths),
                              tau, thresholds, mode, connections, init, residual_logit,
                              grad_factor, seed, candidates)


@register_model("logic_conv_net")
def logic_conv_net(in_channels: int = 1, num_classes: int = 10, image_size: int = 8,
                   thresholds: int | list = 3, channels: int = 64, kernel_size: int = 3,
                   depth: int = 3, widths: Sequence[int] = (4000, 4000), tau: float = 10.0,
                   mode: str = "soft", init: str = "random", residual_logit: float = 5.0,
                   seed: int = 0) -> LogicNetwork:
    """Convolutional logic net for small images: thresholds -> LogicConv2d (a depth-d gate
    tree per channel over each 3x3 field, zero padding) -> OR pooling 2x2 -> LogicDense
    (widths...) -> GroupSum. Exports as Greater/Cast, im2col, a fused LogicNet for the conv,
    MaxPool, and a fused LogicNet for the dense stack. Gates start random: with residual init
    every tree starts as a copy of one tap; on digits (2 x 2000, 12 epochs) that trained to
    89-90 % against 93 % from random gates."""
    gen = torch.Generator().manual_seed(seed)
    binarize = ThresholdBinarize(thresholds, flatten=False)
    conv = LogicConv2d(in_channels * binarize.num_thresholds, channels, kernel_size, depth,
                       padding=kernel_size // 2, init=init, residual_logit=residual_logit,
                       mode=mode, generator=gen)
    features = nn.Sequential(binarize, conv, OrPool2d(2))
    width = channels * (image_size // 2) ** 2
    layers: list[nn.Module] = []
    for w in widths:
        layers.append(LogicDense(width, w, connections="unique", init=init,
                                 residual_logit=residual_logit, mode=mode, generator=gen))
        width = w
    return LogicNetwork(layers, GroupSum(num_classes, tau), features)
