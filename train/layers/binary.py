"""Binary layers (bitorch / Larq style): sign-binarized inputs and latent float weights,
STE training, export to ai.steport.binary::BinaryGemm / BinaryConv2d with bit-packed weights.

Optional scales, both applied to the integer dot, per output channel:
- ``weight_scale=True``: XNOR-Net alpha = mean |W| over each output channel (recomputed from
  the latent weights every step, gradient flows into W);
- ``act_scale=True``: a learnable scalar on the binarized activations.
They fold into one exported ``scale`` vector; the training forward already multiplies by
that same folded vector, so export is bit-exact with training-mode evaluation.

Keep the first and last layers of a network in full precision (nn.Conv2d / nn.Linear), as
the model zoo (train/models/binary.py) does: binarizing them costs most accuracy."""
from __future__ import annotations

import torch
from torch import nn

from ..ops.binary import (MAX_K, binary_conv2d, binary_conv2d_train, binary_gemm, binary_linear,
                          pack_conv_weight, pack_signs)

__all__ = ["BinaryLinear", "BinaryConv2d"]


def _export_error(msg: str):
    from steport.errors import ExportError

    return ExportError(msg)


class _BinaryBase(nn.Module):
    """Shared scale/bias handling and the export switch."""

    def _init_common(self, out_ch: int, bias: bool, weight_scale: bool, act_scale: bool,
                     latent_clip: float | None = None):
        if latent_clip is not None and not latent_clip > 0:
            raise ValueError(f"latent_clip must be positive or None, got {latent_clip!r}")
        self.latent_clip = latent_clip
        self.weight_scale, self.act_scale_on = weight_scale, act_scale
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.act_scale = nn.Parameter(torch.ones(())) if act_scale else None
        self._deploy = False

    @torch.no_grad()
    def apply_constraints(self) -> None:
        """Larq's ``weight_clip`` constraint: clamp the latent weights to [-c, c] after each
        optimizer step (the training loop calls this). Without it a latent weight that
        drifts past 1 gets no STE gradient (1[|w| <= 1]) and can never flip sign again."""
        if self.latent_clip is not None:
            self.weight.clamp_(-self.latent_clip, self.latent_clip)

    def _scale(self) -> torch.Tensor | None:
        """The folded per-output-channel scale, or None."""
        s = None
        if self.weight_scale:
            s = self.weight.abs().reshape(self.weight.shape[0], -1).mean(1)
        if self.act_scale is not None:
            s = self.act_scale.expand(self.weight.shape[0]) if s is None else s * self.act_scale
        return s

    def prepare_export(self) -> None:
        n = self.weight.shape[0]
        s = self._scale()
        self.register_buffer("packed_weight", self._pack(), persistent=False)
        self.register_buffer("export_scale", (s.detach().clone() if s is not None else
                                              torch.ones(n)).float(), persistent=False)
        self.register_buffer("export_bias", (self.bias.detach().clone() if self.bias is not None
                                             else torch.zeros(n)).float(), persistent=False)
        self._deploy = True

    def finish_export(self) -> None:
        self._deploy = False
        for name in ("packed_weight", "export_scale", "export_bias"):
            if name in self._buffers:
                del self._buffers[name]

    def check_exportable(self) -> None:
        k = self.weight[0].numel()
        if k > MAX_K:
            raise _export_error(f"reduction length {k} exceeds {MAX_K} (float32-exact dot)")


class BinaryLinear(_BinaryBase):
    """y = F.linear(sign(x), sign(W)) * scale + bias (scale/bias optional)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False,
                 weight_scale: bool = False, act_scale: bool = False,
                 latent_clip: float | None = None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-1, 1) * 0.1)
        self._init_common(out_features, bias, weight_scale, act_scale, latent_clip)

    def _pack(self) -> torch.Tensor:
        return pack_signs(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._deploy:
            return binary_gemm(x, self.packed_weight, self.export_scale, self.export_bias,
                               self.in_features)
        return binary_linear(x, self.weight, self._scale(), self.bias)

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.out_features}, bias={self.bias is not None}, "
                f"weight_scale={self.weight_scale}, act_scale={self.act_scale_on}")


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


class BinaryConv2d(_BinaryBase):
    """y = conv2d(pad(sign(x), pad_value), sign(W)) * scale + bias.

    ``padding``: int, (ph, pw) or (top, left, bottom, right). ``pad_value``: 0 = PyTorch's
    conv2d(sign(x), ..., padding=p) (padded taps contribute 0), -1 or +1 = padded taps are
    that binary value (Larq's "one" padding is +1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = False, pad_value: int = 0,
                 weight_scale: bool = False, act_scale: bool = False,
                 latent_clip: float | None = None):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        if pad_value not in (-1, 0, 1):
            raise ValueError(f"pad_value must be -1, 0 or 1, got {pad_value}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.dilation = _pair(kernel_size), _pair(stride), _pair(dilation)
        p = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
        self.pads = (p[0], p[1], p[0], p[1]) if len(p) == 2 else p  # top, left, bottom, right
        if len(self.pads) != 4 or min(self.pads) < 0:
            raise ValueError(f"bad padding {padding}")
        self.pad_value = pad_value
        kh, kw = self.kernel_size
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, kh, kw).uniform_(-1, 1) * 0.1)
        self._init_common(out_channels, bias, weight_scale, act_scale, latent_clip)

    def _pack(self) -> torch.Tensor:
        return pack_conv_weight(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._deploy:
            return binary_conv2d(x, self.packed_weight, self.export_scale, self.export_bias,
                                 list(self.kernel_size), list(self.stride), list(self.pads),
                                 list(self.dilation), self.groups, self.pad_value)
        return binary_conv2d_train(x, self.weight, self._scale(), self.bias, list(self.stride),
                                   list(self.pads), list(self.dilation), self.groups,
                                   self.pad_value)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, pads={self.pads}, dilation={self.dilation}, "
                f"groups={self.groups}, pad_value={self.pad_value}, bias={self.bias is not None},"
                f" weight_scale={self.weight_scale}, act_scale={self.act_scale_on}")
