"""Layers whose int8 products come from an approximate multiplier (torchapprox style).

Activations: unsigned 8-bit affine (observed EMA range, or learned range); weights: signed
8-bit symmetric, per-tensor or per-output-channel. Modes:
  "float"  plain float layer (no quantization)
  "quant"  fake-quantized, exact int8 products (float conv/matmul on the grids)
  "lut"    approximate products through the 256x256 LUT (steport::approx_*_ste)
  "model"  approximate products through a behavioural callable (fast training surrogate)
Export (prepare_export) freezes int8 weights and switches to the deploy form
  quantize (round(x / s) + z, saturated; the exported graph's QuantizeLinear) ->
  ApproxConvInteger / ApproxMatMulInteger -> Cast -> scale Mul -> bias Add,
which always carries the real LUT (mode "quant" exports the exact-product LUT)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..ops import approx as ops
from ..ste import round_ste

__all__ = ["ApproxLinear", "ApproxConv2d", "ActQuant", "exact_lut", "resolve_lut", "MODES"]

MODES = ("float", "quant", "lut", "model")


def exact_lut() -> np.ndarray:
    """LUT[a][b] = a * int8(b): the exact 8x8 multiplier (activation first)."""
    a = np.arange(256, dtype=np.int32)
    b = np.arange(256, dtype=np.uint8).view(np.int8).astype(np.int32)
    return np.outer(a, b).astype(np.int32)


def resolve_lut(multiplier) -> np.ndarray:
    """A multiplier spec -> int32 [256, 256] LUT. Accepts None (exact), an array/tensor, an
    object with ``.lut()`` (steport.train.multipliers), or a name for ``get_multiplier``."""
    if multiplier is None:
        return exact_lut()
    if isinstance(multiplier, str):
        try:
            from ..multipliers import get_multiplier  # the multiplier library
        except ImportError as e:
            raise ValueError(f"multiplier name {multiplier!r} needs steport.train.multipliers") from e
        multiplier = get_multiplier(multiplier)
    if hasattr(multiplier, "lut") and callable(multiplier.lut):
        multiplier = multiplier.lut()
    lut = multiplier.detach().cpu().numpy() if isinstance(multiplier, torch.Tensor) else np.asarray(multiplier)
    if lut.shape == (65536,):
        lut = lut.reshape(256, 256)
    if lut.shape != (256, 256) or lut.dtype != np.int32:
        raise ValueError(f"multiplier LUT must be int32 [256, 256], got {lut.dtype} {lut.shape}")
    return np.ascontiguousarray(lut)


class ActQuant(nn.Module):
    """uint8 affine fake-quant. ``range_mode`` "observed": EMA of the batch min/max (0
    included) while training; "learned": lo/hi parameters (initialized from the first batch)
    trained through a straight-through round (LSQ-like)."""

    def __init__(self, range_mode: str = "observed", momentum: float = 0.1):
        super().__init__()
        if range_mode not in ("observed", "learned"):
            raise ValueError(f"range_mode must be 'observed' or 'learned', got {range_mode!r}")
        self.range_mode, self.momentum = range_mode, momentum
        self.register_buffer("initialized", torch.tensor(False))
        if range_mode == "observed":
            self.register_buffer("lo", torch.tensor(0.0))
            self.register_buffer("hi", torch.tensor(1.0))
        else:
            self.lo = nn.Parameter(torch.tensor(0.0))
            self.hi = nn.Parameter(torch.tensor(1.0))

    @torch.no_grad()
    def _observe(self, x: torch.Tensor) -> None:
        lo, hi = torch.clamp(x.min(), max=0.0), torch.clamp(x.max(), min=0.0)
        if not bool(self.initialized):
            self.lo.copy_(lo)
            self.hi.copy_(hi)
            self.initialized.fill_(True)
        elif self.range_mode == "observed":
            self.lo.lerp_(lo, self.momentum)
            self.hi.lerp_(hi, self.momentum)

    def qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, zero point as float tensor holding an integer in [0, 255])."""
        lo = torch.clamp(self.lo, max=0.0)
        hi = torch.clamp(self.hi, min=0.0)
        scale = torch.clamp((hi - lo) / 255.0, min=1e-8)
        zp = torch.clamp(round_ste(-lo / scale), 0, 255)
        return scale, zp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self._observe(x)
        scale, zp = self.qparams()
        if self.range_mode == "observed":
            scale, zp = scale.detach(), zp.detach()
        q = torch.clamp(round_ste(x / scale) + zp, 0, 255)
        return (q - zp) * scale

    def frozen(self) -> tuple[torch.Tensor, int]:
        scale, zp = self.qparams()
        return scale.detach().clone(), int(zp.detach().round().item())


def weight_scale(w: torch.Tensor, per_channel: bool) -> torch.Tensor:
    """Symmetric int8 scale max|w| / 127 (per output channel: shape [C_out])."""
    if per_channel:
        m = w.detach().abs().reshape(w.shape[0], -1).amax(1)
    else:
        m = w.detach().abs().max().reshape(1)
    return torch.clamp(m / 127.0, min=1e-8)


def fake_quant_weight(w: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    s = scale.reshape(-1, *([1] * (w.dim() - 1))) if scale.numel() > 1 else scale.reshape(())
    return torch.clamp(round_ste(w / s), -128, 127) * s


def _multiplier_name(multiplier) -> str:
    """A readable name for messages and repr: the library name, or what was passed."""
    if multiplier is None:
        return "exact"
    if isinstance(multiplier, str):
        return multiplier
    return getattr(multiplier, "name", None) or "a custom LUT"


class _ApproxBase(nn.Module):
    def _init_approx(self, multiplier, mode, per_channel, act_range, model):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if mode == "model" and model is None:
            raise ValueError("mode 'model' needs a behavioural model callable")
        self.mode, self.per_channel, self.model = mode, per_channel, model
        self.has_lut = not (mode == "model" and multiplier is None)
        lut = resolve_lut(multiplier) if self.has_lut else exact_lut()
        if mode == "quant":
            lut = exact_lut()
        self.register_buffer("lut", torch.from_numpy(lut.copy()), persistent=True)
        self.multiplier_name = _multiplier_name(multiplier)
        self.act = ActQuant(act_range)
        self._model_id = ops.register_behavioural_model(model) if model is not None else -1
        self._deploy = False

    def set_multiplier(self, multiplier) -> None:
        self.lut.copy_(torch.from_numpy(resolve_lut(multiplier)))
        self.has_lut = True
        self.multiplier_name = _multiplier_name(multiplier)

    def _quant_inputs(self, x):
        xq = self.act(x)
        ws = weight_scale(self.weight, self.per_channel)
        return xq, fake_quant_weight(self.weight, ws), ws

    @torch.no_grad()
    def weight_codes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(int8 codes shaped like the weight, fp32 scale [C_out] or [1]): round(w / scale)
        saturated to int8, scale = max|w| / 127; what every export stores (the
        ai.steport.approx deploy form and the integer export)."""
        ws = weight_scale(self.weight, self.per_channel)
        s = ws.reshape(-1, *([1] * (self.weight.dim() - 1))) if ws.numel() > 1 else ws.reshape(())
        return torch.clamp(torch.round(self.weight / s), -128, 127).to(torch.int8), ws

    # ---- export hooks ----
    def check_exportable(self) -> None:
        from steport.errors import ExportError

        if self.mode == "float":
            raise ExportError("mode 'float' has no integer form; use 'quant' or 'lut'")
        if not self.has_lut:
            raise ExportError("mode 'model' without a LUT: the deployed model must carry the "
                              "real multiplier (pass multiplier=...)")

    @torch.no_grad()
    def prepare_export(self) -> None:
        w_int8, ws = self.weight_codes()
        self.register_buffer("w_int8", w_int8, persistent=False)
        x_scale, zp = self.act.frozen()
        self.register_buffer("x_scale_frozen", x_scale.reshape(()), persistent=False)
        self.register_buffer("x_zp_u8", torch.tensor(zp, dtype=torch.uint8), persistent=False)
        self.register_buffer("out_scale", (x_scale.reshape(()) * ws).to(torch.float32),
                             persistent=False)
        self._deploy = True

    def finish_export(self) -> None:
        self._deploy = False
        for name in ("w_int8", "x_scale_frozen", "x_zp_u8", "out_scale"):
            self._buffers.pop(name, None)

    def _quantize_deploy(self, x: torch.Tensor) -> torch.Tensor:
        # QuantizeLinear in standard ops: round half to even, saturate to [0, 255].
        q = torch.clamp(torch.round(x / self.x_scale_frozen) + self.x_zp_u8.to(x.dtype), 0, 255)
        return q.to(torch.uint8)

    def extra_repr(self) -> str:
        return (f"mode={self.mode}, multiplier={self.multiplier_name}, "
                f"per_channel={self.per_channel}, act_range={self.act.range_mode}")


class ApproxLinear(_ApproxBase):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, multiplier=None,
                 mode: str = "lut", per_channel: bool = True, act_range: str = "observed",
                 model=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        lin = nn.Linear(in_features, out_features, bias=bias)
        self.weight, self.bias = lin.weight, lin.bias
        self._init_approx(multiplier, mode, per_channel, act_range, model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._deploy:
            y = ops.approx_matmul_integer(self._quantize_deploy(x), self.w_int8.t().contiguous(),
                                          self.lut, self.x_zp_u8)
            y = y.to(torch.float32) * self.out_scale
            return y + self.bias if self.bias is not None else y
        if self.mode == "float":
            return F.linear(x, self.weight, self.bias)
        xq, wq, ws = self._quant_inputs(x)
        if self.mode == "quant":
            y = F.linear(xq, wq)
        else:
            scale, zp = self.act.frozen()
            y = ops.approx_linear_ste(xq, wq, self.lut, scale, zp, ws,
                                      self._model_id if self.mode == "model" else -1)
        return y + self.bias if self.bias is not None else y


class ApproxConv2d(_ApproxBase):
    """Conv2d (stride, padding, dilation, groups; depthwise when groups == channels)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, multiplier=None,
                 mode: str = "lut", per_channel: bool = True, act_range: str = "observed",
                 model=None):
        super().__init__()
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias)
        if isinstance(conv.padding, str):
            raise ValueError("ApproxConv2d needs explicit integer padding")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = conv.kernel_size, conv.stride
        self.padding, self.dilation, self.groups = conv.padding, conv.dilation, groups
        self.weight, self.bias = conv.weight, conv.bias
        self._init_approx(multiplier, mode, per_channel, act_range, model)

    def _bias(self, y):
        return y + self.bias.reshape(1, -1, 1, 1) if self.bias is not None else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._deploy:
            p = list(self.padding)
            y = ops.approx_conv_integer(self._quantize_deploy(x), self.w_int8, self.lut,
                                        self.x_zp_u8, list(self.stride), p + p,
                                        list(self.dilation), self.groups)
            return self._bias(y.to(torch.float32) * self.out_scale.reshape(1, -1, 1, 1))
        if self.mode == "float":
            return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                            self.groups)
        xq, wq, ws = self._quant_inputs(x)
        if self.mode == "quant":
            y = F.conv2d(xq, wq, None, self.stride, self.padding, self.dilation, self.groups)
        else:
            scale, zp = self.act.frozen()
            y = ops.approx_conv2d_ste(xq, wq, self.lut, scale, zp, ws, list(self.stride),
                                      list(self.padding), list(self.dilation), self.groups,
                                      self._model_id if self.mode == "model" else -1)
        return self._bias(y)
