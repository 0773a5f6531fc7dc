"""Float baseline models."""
from __future__ import annotations

from torch import nn

from .zoo import register_model


@register_model("float_cnn")
def float_cnn(in_channels: int = 1, num_classes: int = 10, width: int = 16) -> nn.Module:
    """Float baseline for 8x8 digits."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * width * 4, num_classes))
