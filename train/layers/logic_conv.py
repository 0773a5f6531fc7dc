"""Convolutional logic-gate layers: a tree of learned gates over each receptive field.

``LogicConv2d`` gives every output channel a binary tree of two-input gates (depth d:
2**(d-1) leaf gates read random pairs of taps (c, ky, kx) of the receptive field, each next
level combines neighbouring pairs, the root is the channel's bit), shared over all positions
like a convolution kernel. ``OrPool2d`` is max pooling: OR on bits, its usual relaxation on
[0, 1] values during training.

Deployment needs no new op: the receptive fields are unfolded with standard ops (Pad and one
Gather with a constant index) and
the tree levels of all channels run as one fused ``LogicNet`` over N*H'*W' rows with
``num_classes = out_channels`` and ``tau = 1`` (one unit per class, so GroupSum returns the
root bits), then reshaped back to [N, C', H', W']."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from steport.registry.shapes import conv_output_hw

from .logic import MODES, FusedGateStack, LogicDense

__all__ = ["LogicConv2d", "OrPool2d"]


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def tree_leaf_wiring(taps: int, out_channels: int, leaves: int,
                     generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Leaf-gate operands: per channel, ``leaves`` taps drawn without replacement while the
    receptive field has that many (else with), paired (0, 1), (2, 3), ..."""
    picks = []
    for _ in range(out_channels):
        if taps >= leaves:
            picks.append(torch.randperm(taps, generator=generator)[:leaves])
        else:
            picks.append(torch.randint(0, taps, (leaves,), generator=generator))
    flat = torch.stack(picks)  # [out_channels, leaves]
    return flat[:, 0::2].reshape(-1).long(), flat[:, 1::2].reshape(-1).long()


class LogicConv2d(FusedGateStack):
    """[N, C, H, W] (values in [0, 1]; bits at eval) -> [N, out_channels, H', W'].

    depth: levels of the per-channel gate tree (2**depth taps, 2**depth - 1 gates per
    channel). stride / padding as in ``nn.Conv2d`` (zero padding = bit 0). init / mode /
    residual_logit / gumbel_tau as in ``LogicDense`` (every level is one)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, depth: int = 2,
                 stride=1, padding=0, init: str = "residual", residual_logit: float = 5.0,
                 mode: str = "soft", gumbel_tau: float = 1.0,
                 generator: torch.Generator | None = None):
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"LogicConv2d needs positive channels, got {in_channels} -> {out_channels}")
        if not 1 <= depth <= 10:
            raise ValueError(f"LogicConv2d depth must be in [1, 10], got {depth}")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
        self.in_channels, self.out_channels, self.depth = in_channels, out_channels, depth
        self.kernel_size, self.stride, self.padding = (_pair(kernel_size), _pair(stride),
                                                       _pair(padding))
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ValueError(f"bad kernel_size/stride/padding: {kernel_size}, {stride}, {padding}")
        taps = in_channels * self.kernel_size[0] * self.kernel_size[1]
        levels = []
        width = taps
        for level in range(depth):
            gates = out_channels * 2 ** (depth - 1 - level)
            layer = LogicDense(width, gates, connections="random", init=init,
                               residual_logit=residual_logit, mode=mode, gumbel_tau=gumbel_tau,
                               generator=generator)
            if level == 0:
                a, b = tree_leaf_wiring(taps, out_channels, 2 ** depth, generator)
            else:  # gate j reads the previous level's 2j and 2j + 1 (same channel: channel-major)
                a, b = torch.arange(gates) * 2, torch.arange(gates) * 2 + 1
            layer.idx_a.copy_(a)
            layer.idx_b.copy_(b)
            levels.append(layer)
            width = gates
        self.levels = nn.ModuleList(levels)
        self._index_cache: dict[tuple[int, int], torch.Tensor] = {}

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return conv_output_hw(h, w, kh, kw, (sh, sw), (ph, pw, ph, pw), (1, 1))

    def _patch_index(self, h: int, w: int) -> torch.Tensor:
        """[H'*W'*C*kh*kw] positions in the zero-padded, flattened [C, H+2ph, W+2pw] input:
        row p of the unfolded matrix holds the taps (c, ky, kx) of output position p. Built
        from Python ints, so an export carries it as one constant initializer."""
        key = (h, w)
        if key not in self._index_cache:
            (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
            hp, wp = h + 2 * ph, w + 2 * pw
            ho, wo = self.output_size(h, w)
            oy = torch.arange(ho).view(ho, 1, 1, 1, 1) * sh
            ox = torch.arange(wo).view(1, wo, 1, 1, 1) * sw
            c = torch.arange(self.in_channels).view(1, 1, -1, 1, 1)
            ky = torch.arange(kh).view(1, 1, 1, kh, 1)
            kx = torch.arange(kw).view(1, 1, 1, 1, kw)
            self._index_cache[key] = (c * hp * wp + (oy + ky) * wp + (ox + kx)).reshape(-1)
        return self._index_cache[key]

    def _patches(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"LogicConv2d expects [N, {self.in_channels}, H, W], got "
                             f"{tuple(x.shape)}")
        ho, wo = self.output_size(x.shape[2], x.shape[3])
        if ho < 1 or wo < 1:
            raise ValueError(f"LogicConv2d: input {tuple(x.shape[2:])} is smaller than the "
                             f"kernel {self.kernel_size} with padding {self.padding}")
        ph, pw = self.padding
        xp = F.pad(x, (pw, pw, ph, ph)) if ph or pw else x
        idx = self._patch_index(int(x.shape[2]), int(x.shape[3])).to(x.device)
        taps = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        # Gather whole columns of the transposed input ([C*Hp*Wp, N]: each index copies N
        # contiguous values, which ORT does far faster than N*P*taps single elements), then
        # one transpose to a row per (image, position).
        cols = xp.flatten(1).t().index_select(0, idx)  # [H'*W'*taps, N]
        return cols.t().reshape(-1, taps), ho, wo

    def gate_layers(self) -> list[LogicDense]:
        return list(self.levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        rows, ho, wo = self._patches(x)
        if self.training:
            h = rows
            for m in self.levels:
                h = m(h)
        else:  # the deploy form: one fused LogicNet, GroupSum of one unit per channel
            h = self.run_fused(rows, self.out_channels, 1.0)
        return h.reshape(n, ho, wo, self.out_channels).permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return (f"{self.in_channels} -> {self.out_channels}, kernel_size={self.kernel_size}, "
                f"depth={self.depth}, stride={self.stride}, padding={self.padding}")


class OrPool2d(nn.MaxPool2d):
    """OR pooling: max over each window, which is OR on bits and its relaxation on [0, 1]."""
