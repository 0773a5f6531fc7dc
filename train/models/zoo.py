"""The table of model architectures by name. Family modules register into it with
``@register_model``; it imports none of them, so they can import it without a cycle
(steport.train.models imports every family, which fills the table)."""
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
