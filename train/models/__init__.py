"""Model zoo: architectures by name, so a checkpoint can rebuild its model from
``{"arch": name, "kwargs": {...}}``. One module per family registers its models; every
model takes ``in_channels`` and ``num_classes``."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

_ARCHS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str):
    def deco(fn):
        if name in _ARCHS:
            raise ValueError(f"model {name!r} registered twice")
        _ARCHS[name] = fn
        return fn
    return deco


def build_model(arch: str, **kwargs) -> nn.Module:
    try:
        fn = _ARCHS[arch]
    except KeyError:
        raise KeyError(f"unknown model arch {arch!r}; known: {sorted(_ARCHS)}") from None
    try:
        return fn(**kwargs)
    except TypeError as e:
        raise TypeError(f"bad arguments for model {arch!r}: {e}") from None


def model_names() -> list[str]:
    return sorted(_ARCHS)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# Family modules register on import (after the registry functions above exist).
from . import backbones  # noqa: E402,F401  (reference shapes; family modules build on them)
from . import approx, binary, logic, quant, reference  # noqa: E402,F401
