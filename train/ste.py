"""Straight-through-estimator primitives shared by every op family.

Each is a plain torch function with a custom backward; the family ops in ``ops/`` and the
layers in ``layers/`` build on these instead of re-deriving STE rules."""
from __future__ import annotations

import torch


def sign(x: torch.Tensor) -> torch.Tensor:
    """+1 for x >= 0, -1 otherwise (never 0, unlike torch.sign). No gradient: the training ops
    that binarize apply ``sign_ste_grad`` in their registered backward."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


def sign_ste_grad(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The sign STE's backward for activations and latent weights alike: the clipped identity
    grad * 1[|x| <= 1] (docs/binary.md "Conventions"). ``grad`` is the gradient w.r.t. sign(x)."""
    return grad * (x.abs() <= 1).to(grad.dtype)


def linear_grads(grad: torch.Tensor, x: torch.Tensor, w: torch.Tensor):
    """(dx, dw) of the exact y = x @ w.T, x [..., K], w [N, K], grad [..., N]. The STE backward
    of every quantized linear is this on the tensors the forward multiplied (dequantized, or
    signs with ``sign_ste_grad`` applied after)."""
    gx = grad @ w
    gw = grad.reshape(-1, grad.shape[-1]).t() @ x.reshape(-1, x.shape[-1])
    return gx, gw


def conv2d_grads(grad: torch.Tensor, x: torch.Tensor, w: torch.Tensor, stride, padding,
                 dilation, groups: int):
    """(dx, dw) of the exact conv2d(x, w, stride, padding, dilation, groups): the STE backward
    of every quantized or approximate conv, on the tensors the forward convolved."""
    gx = torch.nn.grad.conv2d_input(x.shape, w, grad, stride, padding, dilation, groups)
    gw = torch.nn.grad.conv2d_weight(x, w.shape, grad, stride, padding, dilation, groups)
    return gx, gw


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
