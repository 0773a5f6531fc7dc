"""Straight-through-estimator primitives shared by every op family.

Each is a plain torch function with a custom backward; the family ops in ``ops/`` and the
layers in ``layers/`` build on these instead of re-deriving STE rules."""
from __future__ import annotations

import torch


class _SignSTE(torch.autograd.Function):
    """sign with sign(0) = +1; backward: clipped identity 1[|x| <= 1] (docs/binary.md "Conventions")."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x.abs() <= 1).to(g.dtype)


def sign(x: torch.Tensor) -> torch.Tensor:
    """+1 for x >= 0, -1 otherwise (never 0, unlike torch.sign). No gradient."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    return _SignSTE.apply(x)


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)  # half to even, as ONNX Round

    @staticmethod
    def backward(ctx, g):
        return g


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """round half to even forward, identity backward."""
    return _RoundSTE.apply(x)


class GradFactor(torch.autograd.Function):
    """Identity forward; backward returns (grad * f, None). Same call as torchlogix's
    ``GradFactor.apply(x, f)``; exports as nothing (the identity disappears)."""

    @staticmethod
    def forward(ctx, x, f):
        ctx.f = f
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_y):
        return grad_y * ctx.f, None

    @staticmethod
    def symbolic(g, x, f):  # legacy TorchScript exporter: identity
        return x


def grad_scale(x: torch.Tensor, f: float) -> torch.Tensor:
    """identity forward, gradient multiplied by f (torchlogix GradFactor)."""
    return GradFactor.apply(x, f)
