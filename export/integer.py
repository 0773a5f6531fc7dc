"""Integer export of quantized networks: QConv2d / QLinear (PACT or signed input quantizer,
symmetric or DoReFa weights) and ApproxConv2d / ApproxLinear (uint8 affine activations with a
zero point, symmetric int8 weights) as integer networks: codes flow between layers, each layer
requantizes to the next one's codes. Layers with exact products become a standard-ONNX QDQ graph
that ONNX Runtime fuses into QLinearConv / QGemm (an exact LUT product is an int8 product);
approximate-multiplier layers become ai.steport.approx::ApproxConvInteger / ApproxMatMulInteger
(their LUT) followed by the same requantization in standard ops.

The arithmetic is specified in docs/ops.md ("Integer models"). ``build_plan`` turns a model
into a list of steps (quantize, clip codes, integer conv/gemm with requantization, max-pool
and flatten on codes); ``to_onnx`` writes the steps as ONNX and ``integer_reference`` runs
exactly the same arithmetic in PyTorch (integer accumulation, fp32 requantization, round half
to even, saturation), independently of ONNX Runtime. Anything the integer arithmetic cannot
express raises ExportError naming the layer; nothing is silently approximated."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from steport.registry import DOMAIN_VERSION, IR_VERSION, ONNX_OPSET, get

from .core import ExportError, check_exportable, finalize, save

__all__ = ["ActQuant", "IntegerPlan", "build_plan", "to_onnx", "export_integer_model",
           "integer_reference", "INT32_MAX"]

INT32_MAX = 2**31 - 1
_APPROX_CONV = get("approx", "ApproxConvInteger")
_APPROX_MATMUL = get("approx", "ApproxMatMulInteger")
_APPROX_QCONV = get("approx", "ApproxQLinearConv")
_APPROX_QMATMUL = get("approx", "ApproxQLinearMatMul")
# Layers that pass through the integer graph without arithmetic of their own.
_NEUTRAL = (nn.Dropout, nn.Identity)


@dataclass(frozen=True)
class ActQuant:
    """Activation codes: ``x ≈ scale · (code - zero_point)``, codes in [lo, hi]; carried in
    uint8 (unsigned) or int8 (signed). The zero point is 0 except for the approximate-
    multiplier layers' uint8 affine quantizer (ApproxConv2d / ApproxLinear)."""
    scale: float  # an fp32 value
    bits: int
    signed: bool
    zero_point: int = 0

    @property
    def lo(self) -> int:
        return -(2 ** (self.bits - 1) - 1) if self.signed else 0

    @property
    def hi(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.signed else 2 ** self.bits - 1

    @property
    def np_dtype(self):
        return np.int8 if self.signed else np.uint8

    @property
    def dtype_range(self) -> tuple[int, int]:
        return (-128, 127) if self.signed else (0, 255)


@dataclass
class QuantizeStep:
    """float -> codes: QuantizeLinear (x / scale, round half to even, saturate to the dtype).
    Signed codes are clipped in float first, x -> clamp(x, lo·scale, hi·scale) (fp32
    products): an int8 Clip between QuantizeLinear and DequantizeLinear stops ORT from fusing
    the conv, a float Clip before the QuantizeLinear does not."""
    q: ActQuant

    @property
    def float_clip(self) -> tuple[float, float] | None:
        if not self.q.signed:
            return None
        s = np.float32(self.q.scale)
        lo, hi = np.float32(self.q.lo) * s, np.float32(self.q.hi) * s
        # The clamp bounds must map back to the extreme codes, never one beyond.
        assert np.round(hi / s) == self.q.hi and np.round(lo / s) == self.q.lo
        return float(lo), float(hi)


@dataclass
class ClipStep:
    """codes -> codes clamped to [lo, hi]: PACT's b-bit saturation (b < 8), the signed
    narrow range, or a ReLU on signed codes."""
    lo: int
    hi: int
    dtype: Any


@dataclass
class IntLinearStep:
    """Integer conv or gemm: int32 acc = Σ x_code · w_code + bias; then either requantized to
    ``out_q`` (fp32 multiplier x_scale·w_scale[c]/out_scale, round half to even, saturate) or,
    for the network output, fp32(acc) · fp32(x_scale·w_scale[c])."""
    name: str
    kind: str  # "conv" | "gemm"
    w_codes: np.ndarray  # int8, [C_out, ...]
    w_scale: np.ndarray  # fp32 [C_out], BN folded in (positive)
    bias: np.ndarray  # int32 [C_out], in units of x_scale·w_scale[c]
    x_q: ActQuant
    out_q: ActQuant | None = None
    conv: dict = field(default_factory=dict)  # strides, pads, dilations, group
    # Float per-channel affine folded in from a following BatchNorm (before quantization).
    bn_scale: np.ndarray | None = None
    bn_shift: np.ndarray | None = None
    raw_bias: np.ndarray | None = None  # float64 layer bias before BN folding
    raw_w_scale: np.ndarray | None = None  # float64 quantizer scale before BN folding
    raw_codes: np.ndarray | None = None  # the quantizer's codes before BN sign flips
    # int32 [256, 256] LUT of an approximate multiplier (None: exact products, QDQ nodes).
    # Such a step keeps its codes and takes BN's sign in its (then signed) weight scale.
    lut: np.ndarray | None = None

    def acc_scale(self) -> np.ndarray:
        """fp32 x_scale · w_scale[c]: the value of one accumulator unit (the bias scale)."""
        return (np.float32(self.x_q.scale) * self.w_scale.astype(np.float32)).astype(np.float32)


@dataclass
class MaxPoolStep:
    kernel: tuple
    stride: tuple
    pads: tuple
    dilation: tuple
    ceil_mode: bool


@dataclass
class FlattenStep:
    pass


@dataclass
class ReluStep:  # on float values only (codes use ClipStep)
    pass


@dataclass
class DequantizeStep:
    q: ActQuant


@dataclass
class IntegerPlan:
    steps: list
    input_rank: int

    def describe(self) -> str:
        out = []
        for s in self.steps:
            if isinstance(s, IntLinearStep):
                tgt = "float" if s.out_q is None else f"{'s' if s.out_q.signed else 'u'}{s.out_q.bits}"
                out.append(f"{s.kind}[{s.name}] {s.w_codes.shape} -> {tgt}")
            else:
                out.append(type(s).__name__.replace("Step", "").lower())
        return " | ".join(out)


# ---- model -> plan -----------------------------------------------------------------------

def _quantized_types() -> tuple[type, ...]:
    """The layers that become integer conv / gemm steps."""
    from steport.train.layers.approx import ApproxConv2d, ApproxLinear
    from steport.train.layers.quant import QConv2d, QLinear

    return (QConv2d, QLinear, ApproxConv2d, ApproxLinear)


def _is_approx(m: nn.Module) -> bool:
    from steport.train.layers.approx import ApproxConv2d, ApproxLinear

    return isinstance(m, (ApproxConv2d, ApproxLinear))


def _leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    quantized = _quantized_types()
    out = []

    def rec(prefix: str, m: nn.Module) -> None:
        if isinstance(m, nn.Sequential):
            for n, c in m.named_children():
                rec(f"{prefix}.{n}" if prefix else n, c)
        elif isinstance(m, quantized) or not list(m.children()):
            out.append((prefix or type(m).__name__, m))
        else:
            raise ExportError(f"layer '{prefix or type(m).__name__}' ({type(m).__name__}): the "
                              "integer export walks nn.Sequential models; this container has "
                              "its own forward, which it cannot follow")
    rec("", model)
    return out


def _err(name: str, m: nn.Module, msg: str) -> ExportError:
    return ExportError(f"layer '{name}' ({type(m).__name__}): {msg}")


def _approx_act_quant(name: str, m: nn.Module) -> ActQuant:
    """An approximate-multiplier layer: uint8 affine codes (its frozen observed/learned range,
    the same scale and zero point as its ai.steport.approx export)."""
    if m.mode == "float":
        raise _err(name, m, "mode 'float' has no integer form; use 'quant' or 'lut'")
    if not m.has_lut:
        raise _err(name, m, "mode 'model' without a LUT: the deployed model must carry the "
                            "real multiplier (pass multiplier=...)")
    scale, zp = m.act.frozen()
    scale = np.float32(scale.reshape(-1)[0].item())
    if not (scale > 0 and np.isfinite(scale)):
        raise _err(name, m, f"activation scale {scale} is not a positive fp32")
    return ActQuant(float(scale), 8, False, int(zp))


def _act_quant(name: str, m: nn.Module) -> ActQuant:
    from steport.train.layers.quant import PACT, SignedActQuant

    if _is_approx(m):
        return _approx_act_quant(name, m)
    q = m.input_quantizer
    if q is None:
        raise _err(name, m, "has float input (act_bits=None); the integer export needs an "
                            "input quantizer on every quantized layer")
    alpha = float(q.alpha.detach().reshape(-1)[0])
    if not (alpha > 0 and np.isfinite(alpha)):
        raise _err(name, m, f"input quantizer alpha must be positive and finite, got {alpha}")
    if not 1 <= q.bits <= 8:
        raise _err(name, m, f"input quantizer has {q.bits} bits; integer codes are 8-bit at most")
    signed = isinstance(q, SignedActQuant)
    if not signed and not isinstance(q, PACT):
        raise _err(name, m, f"unsupported input quantizer {type(q).__name__}")
    levels = 2 ** (q.bits - 1) - 1 if signed else 2 ** q.bits - 1
    scale = np.float32(np.float32(alpha) / np.float32(levels))
    if not (scale > 0 and np.isfinite(scale)):
        raise _err(name, m, f"activation scale alpha/{levels} = {scale} is not a positive fp32")
    return ActQuant(float(scale), q.bits, signed)


def _approx_weights(m: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """(int8 codes, fp32 scale per output channel) as ApproxConv2d / ApproxLinear store them
    (their weight_codes())."""
    codes, ws = m.weight_codes()
    scale = ws.reshape(-1).expand(codes.shape[0]) if ws.numel() == 1 else ws
    return codes.cpu().double().numpy(), scale.cpu().double().numpy()


def _conv_attrs(name: str, m: nn.Module) -> dict:
    if getattr(m, "padding_mode", "zeros") != "zeros" or isinstance(m.padding, str):
        raise _err(name, m, f"padding {m.padding!r} / padding_mode {m.padding_mode!r}: the "
                            "integer export supports explicit zero padding only")
    ph, pw = m.padding
    return {"strides": list(m.stride), "pads": [ph, pw, ph, pw],
            "dilations": list(m.dilation), "group": m.groups}


def _linear_step(name: str, m: nn.Module, x_q: ActQuant) -> IntLinearStep:
    from steport.train.layers.approx import ApproxConv2d
    from steport.train.layers.quant import QConv2d

    if _is_approx(m):
        from steport.train.layers.approx import exact_lut

        codes, scale = _approx_weights(m)
        conv = _conv_attrs(name, m) if isinstance(m, ApproxConv2d) else {}
        lut = m.lut.detach().cpu().numpy().reshape(256, 256).astype(np.int32)
        return _new_linear_step(name, m, x_q, codes, scale, conv,
                                None if np.array_equal(lut, exact_lut()) else lut)
    if m.weight_quant is None:
        raise _err(name, m, "has float weights (weight_quant=None); the integer export needs "
                            "quantized weights")
    if m.weight_quant == "dorefa" and m.weight_bits > 7:
        raise _err(name, m, f"DoReFa {m.weight_bits}-bit weights are odd codes up to "
                            f"±{2 ** m.weight_bits - 1}, beyond int8; use weight_bits <= 7 or "
                            "weight_quant='symmetric'")
    codes, scale = m.weight_codes()
    codes = codes.detach().cpu().double().numpy()
    scale = scale.detach().cpu().double().numpy()
    conv = _conv_attrs(name, m) if isinstance(m, QConv2d) else {}
    return _new_linear_step(name, m, x_q, codes, scale, conv)


def _new_linear_step(name: str, m: nn.Module, x_q: ActQuant, codes: np.ndarray,
                     scale: np.ndarray, conv: dict, lut: np.ndarray | None = None) -> IntLinearStep:
    if not (np.isfinite(scale).all() and (scale > 0).all()):
        raise _err(name, m, "weight scale is not positive and finite (NaN weights?)")
    bias = (m.bias.detach().cpu().double().numpy() if m.bias is not None
            else np.zeros(codes.shape[0]))
    step = IntLinearStep(name, "conv" if conv else "gemm", codes, scale, np.zeros(0, np.int32),
                         x_q, conv=conv, raw_bias=bias, raw_w_scale=scale,
                         raw_codes=codes, lut=lut)
    _finish_linear(step, name, m)
    return step


def _finish_lut_linear(step: IntLinearStep, name: str, m: nn.Module, k: np.ndarray,
                       t: np.ndarray, codes: np.ndarray) -> None:
    """_finish_linear for an approximate multiplier: LUT[a][-b] need not be -LUT[a][b], so the
    codes stay and the weight scale takes BN's sign (requantization is our own Mul, which
    takes any sign); k_c = 0 zeroes the channel's codes, exact when LUT[a][0] = 0."""
    zero = k == 0
    if zero.any():
        if np.any(step.lut[:, 0] != 0):
            raise _err(name, m, "a BatchNorm scale of 0 makes a constant channel, expressed with "
                                "weight code 0, but this LUT's products with code 0 are not 0")
        codes[zero] = 0
    w_scale = np.where(zero, step.raw_w_scale, step.raw_w_scale * k).astype(np.float32)
    if not (np.isfinite(w_scale).all() and (w_scale != 0).all()):
        raise _err(name, m, "folded weight scale under/overflows fp32 (BatchNorm variance?)")
    step.w_codes, step.w_scale = codes.astype(np.int8), w_scale
    # a tap adds LUT[a][b] - zp·b
    _set_int32_bias(step, name, m, k * step.raw_bias + t,
                    float(np.abs(step.lut.astype(np.int64)).max()) + 255 * 128)


def _fold_bn(step: IntLinearStep, name: str, bn: nn.Module) -> None:
    if step.bn_scale is not None:
        raise _err(name, bn, "a second BatchNorm after the same layer cannot be folded")
    if not bn.track_running_stats or bn.running_mean is None:
        raise _err(name, bn, "BatchNorm without running statistics cannot be folded")
    var = bn.running_var.detach().cpu().double().numpy()
    mean = bn.running_mean.detach().cpu().double().numpy()
    k = 1.0 / np.sqrt(var + bn.eps)
    shift = -mean * k
    if bn.affine:
        g = bn.weight.detach().cpu().double().numpy()
        k, shift = k * g, shift * g + bn.bias.detach().cpu().double().numpy()
    if k.shape[0] != step.w_codes.shape[0]:
        raise _err(name, bn, f"{k.shape[0]} channels after a layer with {step.w_codes.shape[0]}")
    step.bn_scale, step.bn_shift = k, shift
    _finish_linear(step, name, bn)


def _finish_linear(step: IntLinearStep, name: str, m: nn.Module) -> None:
    """Integer weights, fp32 weight scale and int32 bias from the raw parts and the folded BN:
    y_c = k_c·(acc_c·x_s·w_s_c + b_c) + t_c. A negative k_c flips the sign of the channel's
    codes (exact: the code ranges are symmetric), so every scale stays positive; k_c = 0
    leaves a constant channel (codes 0, output = the bias)."""
    k = step.bn_scale if step.bn_scale is not None else np.ones(step.w_codes.shape[0])
    t = step.bn_shift if step.bn_shift is not None else np.zeros(step.w_codes.shape[0])
    codes = np.array(step.raw_codes, np.float64)
    if step.lut is not None:
        return _finish_lut_linear(step, name, m, k, t, codes)
    sign = np.where(k < 0, -1.0, 1.0)
    zero = k == 0
    flipped = (sign < 0).reshape((-1,) + (1,) * (codes.ndim - 1)) & (codes == -128)
    if flipped.any():
        raise _err(name, m, "a negative BatchNorm scale flips a channel holding weight code "
                            "-128, which has no int8 negation")
    codes = codes * sign.reshape((-1,) + (1,) * (codes.ndim - 1))
    codes[zero] = 0
    w_scale = np.where(zero, step.raw_w_scale, step.raw_w_scale * np.abs(k)).astype(np.float32)
    if not (np.isfinite(w_scale).all() and (w_scale > 0).all()):
        raise _err(name, m, "folded weight scale under/overflows fp32 (BatchNorm variance?)")
    step.w_codes, step.w_scale = codes.astype(np.int8), w_scale
    zq = step.x_q.zero_point
    x_max = max(abs(step.x_q.lo - zq), abs(step.x_q.hi - zq))
    _set_int32_bias(step, name, m, k * step.raw_bias + t,
                    x_max * float(np.abs(codes).max(initial=0)))


def _set_int32_bias(step: IntLinearStep, name: str, m: nn.Module, bias_f: np.ndarray,
                    max_tap: float) -> None:
    """step.bias = the float bias in accumulator units, rounded half to even (numpy), after
    checking that int32 accumulators hold the largest possible sum: fan_in taps of at most
    ``max_tap`` in magnitude, plus the bias."""
    bias_q = np.round(bias_f / step.acc_scale().astype(np.float64))
    fan_in = int(np.prod(step.w_codes.shape[1:]))
    worst = fan_in * max_tap + np.abs(bias_q).max(initial=0)
    if not np.isfinite(bias_q).all() or worst > INT32_MAX:
        raise _err(name, m, f"integer accumulator could reach {worst:.3g}, beyond int32 "
                            "(bias too large for its scale, or fan-in too large)")
    step.bias = bias_q.astype(np.int32)


def _next_quantizer(layers, start: int):
    """The input quantizer of the next quantized layer, if only max-pool / flatten / ReLU /
    no-op layers lie between; None when the network ends first. Any other layer cannot sit
    between integer layers."""
    quantized = _quantized_types()
    for name, m in layers[start:]:
        if isinstance(m, quantized):
            return _act_quant(name, m)
        if isinstance(m, (nn.MaxPool2d, nn.Flatten, nn.ReLU) + _NEUTRAL):
            continue
        raise _err(name, m, "cannot be expressed in the integer export between quantized "
                            "layers (supported: MaxPool2d, Flatten, ReLU, Dropout, Identity, "
                            "and BatchNorm directly after a quantized layer)")
    return None


def build_plan(model: nn.Module, input_rank: int = 4) -> IntegerPlan:
    """Walk an nn.Sequential of QConv2d / QLinear (+ BatchNorm folded into them, ReLU,
    MaxPool2d, Flatten, Dropout, Identity) into integer steps (docs/ops.md "Integer
    models"). ApproxConv2d / ApproxLinear count as quantized layers (QDQ nodes with the
    exact multiplier, their LUT otherwise). Raises ExportError naming the first layer it
    cannot express."""
    quantized = _quantized_types()
    layers = _leaves(model)
    steps: list = []
    cur: ActQuant | None = None  # codes of this quantizer flow; None: float values flow
    clip: tuple[int, int] | None = None  # saturation still to apply to the codes
    pending: IntLinearStep | None = None  # float output not yet requantized (BN may fold)

    def close(at: int) -> None:
        nonlocal pending, cur, clip
        if pending is None:
            return
        pending.out_q = _next_quantizer(layers, at)
        steps.append(pending)
        cur, pending = pending.out_q, None
        if cur is not None and (cur.lo, cur.hi) != cur.dtype_range:
            clip = (cur.lo, cur.hi)

    for i, (name, m) in enumerate(layers):
        if isinstance(m, quantized):
            q = _act_quant(name, m)
            close(i)
            if cur is None:
                steps.append(QuantizeStep(q))
                cur = q
                if not q.signed and (q.lo, q.hi) != q.dtype_range:  # PACT below 8 bits
                    clip = (q.lo, q.hi)
            if cur != q:  # pragma: no cover - close() requantizes to this very quantizer
                raise _err(name, m, "codes arrive with a different quantizer")
            if clip is not None:
                steps.append(ClipStep(*clip, q.np_dtype))
                clip = None
            pending = _linear_step(name, m, q)
            cur = None
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if pending is None:
                raise _err(name, m, "BatchNorm must directly follow a quantized layer to be "
                                    "folded into its integer weights' scales and bias")
            _fold_bn(pending, name, m)
        elif isinstance(m, (nn.ReLU, nn.MaxPool2d, nn.Flatten) + _NEUTRAL):
            close(i + 1)
            if isinstance(m, nn.ReLU):
                if cur is None:
                    steps.append(ReluStep())
                elif cur.signed or cur.zero_point > 0:  # zero-point-0 uint8 codes are >= 0
                    lo, hi = clip or (cur.lo, cur.hi)
                    clip = (max(lo, cur.zero_point), hi)
            elif isinstance(m, nn.MaxPool2d):
                steps.append(_maxpool(name, m))
            elif isinstance(m, nn.Flatten):
                if m.start_dim != 1 or m.end_dim != -1:
                    raise _err(name, m, "only Flatten(start_dim=1, end_dim=-1) is supported")
                steps.append(FlattenStep())
        else:
            raise _err(name, m, "cannot be expressed in the integer export (supported: "
                                "QConv2d, QLinear, ApproxConv2d, ApproxLinear, BatchNorm "
                                "after them, ReLU, MaxPool2d, "
                                "Flatten, Dropout, Identity)")
    close(len(layers))
    if cur is not None:
        if clip is not None:
            steps.append(ClipStep(*clip, cur.np_dtype))
        steps.append(DequantizeStep(cur))
    if not any(isinstance(s, IntLinearStep) for s in steps):
        raise ExportError("the model has no quantized layer (QConv2d/QLinear, "
                          "ApproxConv2d/ApproxLinear): nothing to export as integers")
    return IntegerPlan(steps, input_rank)


def _maxpool(name: str, m: nn.MaxPool2d) -> MaxPoolStep:
    pair = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)  # noqa: E731
    if m.return_indices:
        raise _err(name, m, "return_indices is not supported")
    k, s = pair(m.kernel_size), pair(m.stride if m.stride is not None else m.kernel_size)
    p, d = pair(m.padding), pair(m.dilation)
    return MaxPoolStep(k, s, p, d, bool(m.ceil_mode))


# ---- plan -> ONNX ------------------------------------------------------------------------

def to_onnx(plan: IntegerPlan, input_shape: tuple[int, ...], input_name: str = "input",
            output_name: str = "output") -> onnx.ModelProto:
    """QDQ graph: QuantizeLinear / Clip / DequantizeLinear on activations, DequantizeLinear
    on int8 weight and int32 bias initializers (per output channel, axis 0), float Conv /
    Gemm between; ORT fuses DQ→Conv→Q into QLinearConv and DQ→Gemm(→Q) into QGemm. Layers
    on an approximate LUT are ai.steport.approx nodes plus the requantization (_lut_layer).
    Max-pool, flatten and clip run directly on the uint8/int8 codes. The batch dimension is
    dynamic."""
    nodes, inits = [], []
    counter = iter(range(1 << 30))
    luts: dict[bytes, str] = {}  # one initializer per distinct LUT

    def init(arr: np.ndarray, base: str) -> str:
        name = f"{base}_{next(counter)}"
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def add(op: str, ins, base: str, **attrs) -> str:
        out = f"{base}_{next(counter)}"
        nodes.append(helper.make_node(op, list(ins), [out], name=out, **attrs))
        return out

    qparams: dict[tuple, tuple[str, str]] = {}

    def act_params(q: ActQuant, offset: bool = False) -> tuple[str, str]:
        key = (q.scale, q.signed, q.zero_point, offset)
        if key not in qparams:
            zp = np.uint8(128) if offset else q.np_dtype(q.zero_point)
            qparams[key] = (init(np.float32(q.scale), "act_scale"), init(zp, "act_zp"))
        return qparams[key]

    x = input_name
    # Signed image codes c are stored as uint8 c + 128 (zero point 128): the same integers
    # to QLinearConv, but MLAS's u8·s8 kernels run instead of the slower s8·s8 ones.
    offset = False
    fused_pool = None  # a MaxPoolStep already inside the previous ApproxQLinearConv
    for i, st in enumerate(plan.steps):
        if st is fused_pool:
            continue
        # build_plan puts a signed image quantizer right before its layer (no clip, no pool)
        assert not (offset and not isinstance(st, IntLinearStep)), "offset codes must feed a layer"
        if isinstance(st, QuantizeStep):
            if st.float_clip is not None:
                lo, hi = st.float_clip
                x = add("Clip", [x, init(np.float32(lo), "lo"), init(np.float32(hi), "hi")],
                        "clip")
            offset = st.q.signed
            x = add("QuantizeLinear", [x, *act_params(st.q, offset)], "codes")
        elif isinstance(st, ClipStep):
            x = add("Clip", [x, init(st.dtype(st.lo), "lo"), init(st.dtype(st.hi), "hi")], "clip")
        elif isinstance(st, IntLinearStep) and st.lut is not None:
            nxt = plan.steps[i + 1] if i + 1 < len(plan.steps) else None
            fused_pool = nxt if _fusable_pool(st, nxt) else None
            x = _lut_layer(st, x, add, init, luts, fused_pool)
            offset = False
        elif isinstance(st, IntLinearStep):
            base = st.name.replace(".", "_")
            xd = add("DequantizeLinear", [x, *act_params(st.x_q, offset)], f"{base}_x")
            offset = False
            c = st.w_codes.shape[0]
            w = add("DequantizeLinear", [init(st.w_codes.astype(np.int8), f"{base}_w"),
                                         init(st.w_scale, f"{base}_w_scale"),
                                         init(np.zeros(c, np.int8), f"{base}_w_zp")],
                    f"{base}_wf", axis=0)
            b = add("DequantizeLinear", [init(st.bias, f"{base}_b"),
                                         init(st.acc_scale(), f"{base}_b_scale"),
                                         init(np.zeros(c, np.int32), f"{base}_b_zp")],
                    f"{base}_bf", axis=0)
            if st.kind == "conv":
                y = add("Conv", [xd, w, b], f"{base}_y", **st.conv)
            else:
                y = add("Gemm", [xd, w, b], f"{base}_y", transB=1)
            x = y if st.out_q is None else add("QuantizeLinear", [y, *act_params(st.out_q)],
                                               f"{base}_codes")
        elif isinstance(st, MaxPoolStep):
            x = add("MaxPool", [x], "pool", kernel_shape=list(st.kernel),
                    strides=list(st.stride), pads=[*st.pads, *st.pads],
                    dilations=list(st.dilation), ceil_mode=int(st.ceil_mode))
        elif isinstance(st, FlattenStep):
            x = add("Flatten", [x], "flat", axis=1)
        elif isinstance(st, ReluStep):
            x = add("Relu", [x], "relu")
        elif isinstance(st, DequantizeStep):
            x = add("DequantizeLinear", [x, *act_params(st.q)], "deq")
        else:  # pragma: no cover
            raise TypeError(st)
    nodes[-1].output[0] = output_name
    nodes[-1].name = output_name
    dims = ["batch", *input_shape[1:]]
    # The output's rank (its sizes are inferred, but not past a custom node)
    flat = any(isinstance(st, FlattenStep) or (isinstance(st, IntLinearStep) and st.kind == "gemm")
               for st in plan.steps)
    out_dims = ["batch", *([None] * ((2 if flat else len(input_shape)) - 1))]
    graph = helper.make_graph(
        nodes, "steport_integer",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, out_dims)], inits)
    opsets = [helper.make_opsetid("", ONNX_OPSET)]
    if luts:
        opsets.append(helper.make_opsetid(_APPROX_CONV.domain, DOMAIN_VERSION))
    model = helper.make_model(graph, opset_imports=opsets, ir_version=IR_VERSION)
    model = onnx.shape_inference.infer_shapes(model)
    # Past a custom node inference knows element types but no shapes; a shapeless entry
    # carries nothing and fails the full checker.
    keep = [v for v in model.graph.value_info if v.type.tensor_type.HasField("shape")]
    del model.graph.value_info[:]
    model.graph.value_info.extend(keep)
    return model


def _fusable_pool(st: IntLinearStep, nxt) -> bool:
    """A max-pool right after a requantizing conv goes into its ApproxQLinearConv (floor mode,
    no dilation, pads smaller than the window: the op's pool)."""
    return (st.kind == "conv" and st.out_q is not None and isinstance(nxt, MaxPoolStep)
            and not nxt.ceil_mode and tuple(nxt.dilation) == (1, 1)
            and all(p < k for p, k in zip(nxt.pads, nxt.kernel)))


def _lut_layer(st: IntLinearStep, x: str, add, init, luts: dict,
               pool: MaxPoolStep | None = None) -> str:
    """An approximate-multiplier step. Requantized to the next layer's codes: one
    ApproxQLinearConv / ApproxQLinearMatMul node (uint8 codes in and out, ``pool`` fused),
    sat(round(fp32(acc + bias) · M_c) + y_z) with M_c = fp32(x_s · w_s_c) / y_s. The output
    layer: ApproxConvInteger / ApproxMatMulInteger, + int32 bias, fp32 cast, × unit_c (docs/ops.md
    "Integer models")."""
    base = st.name.replace(".", "_")
    key = st.lut.tobytes()
    if key not in luts:
        luts[key] = init(st.lut, "lut")
    x_zp = init(np.uint8(st.x_q.zero_point), f"{base}_x_zp")
    c = st.w_codes.shape[0]
    w = (st.w_codes if st.kind == "conv" else np.ascontiguousarray(st.w_codes.T)).astype(np.int8)
    w = init(w, f"{base}_w")
    unit = st.acc_scale()
    if st.out_q is not None:
        mult = (unit / np.float32(st.out_q.scale)).astype(np.float32)
        ins = [x, w, luts[key], init(st.bias.astype(np.int32), f"{base}_b"),
               init(mult, f"{base}_mult"), x_zp,
               init(np.uint8(st.out_q.zero_point), f"{base}_y_zp")]
        if st.kind != "conv":
            return add(_APPROX_QMATMUL.name, ins, f"{base}_codes", domain=_APPROX_QMATMUL.domain)
        attrs = dict(st.conv)
        if pool is not None:
            attrs.update(pool_kernel=list(pool.kernel), pool_strides=list(pool.stride),
                         pool_pads=[*pool.pads, *pool.pads])
        return add(_APPROX_QCONV.name, ins, f"{base}_codes", domain=_APPROX_QCONV.domain,
                   **attrs)
    if st.kind == "conv":
        acc = add(_APPROX_CONV.name, [x, w, luts[key], x_zp], f"{base}_acc",
                  domain=_APPROX_CONV.domain, **st.conv)
        shape = (1, c, 1, 1)
    else:
        acc = add(_APPROX_MATMUL.name, [x, w, luts[key], x_zp], f"{base}_acc",
                  domain=_APPROX_MATMUL.domain)
        shape = (1, c)
    acc = add("Add", [acc, init(st.bias.reshape(shape), f"{base}_b")], f"{base}_acc_b")
    accf = add("Cast", [acc], f"{base}_accf", to=TensorProto.FLOAT)
    return add("Mul", [accf, init(unit.reshape(shape), f"{base}_unit")], f"{base}_y")


def export_integer_model(model: nn.Module, example_input: torch.Tensor,
                         path: str | os.PathLike | None = None,
                         metadata: dict[str, Any] | None = None) -> onnx.ModelProto:
    """Export ``model`` as an integer QDQ network (docs/ops.md "Integer models"). Checks
    the plan against the model's own fake-quant forward on ``example_input`` (shapes)."""
    check_exportable(model)
    plan = build_plan(model, example_input.dim())
    proto = to_onnx(plan, tuple(example_input.shape))
    meta = {"integer": {"format": "qdq", "plan": plan.describe()}, **(metadata or {})}
    proto = finalize(proto, meta)
    if path is not None:
        save(proto, path)
    return proto


# ---- PyTorch integer reference ----------------------------------------------------------

def _fp32(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.float32)


def _lut_reference(st: IntLinearStep, x: torch.Tensor) -> torch.Tensor:
    """An approximate-multiplier step on the PyTorch reference LUT sums (not the kernels)."""
    from steport.train.ops.approx import conv_codes, matmul_codes

    codes = x.to(torch.int64)
    w = torch.from_numpy(st.w_codes.astype(np.int64))
    lut = torch.from_numpy(st.lut.reshape(-1).astype(np.int32))
    zp = st.x_q.zero_point
    if st.kind == "conv":
        c = st.conv
        acc = conv_codes(codes, w, zp, lut, c["strides"], c["pads"], c["dilations"], c["group"],
                         reference=True)
        shape = (1, -1, 1, 1)
    else:
        acc = matmul_codes(codes, w.t(), zp, lut, reference=True)
        shape = (1, -1)
    acc = acc.to(torch.int64) + torch.from_numpy(st.bias.astype(np.int64)).reshape(shape)
    # |acc| < 2^31 (checked): exact in float64, then the int32 -> fp32 conversion
    return _requantize(st, _fp32(acc.to(torch.float64)), shape)


def _requantize(st: IntLinearStep, accf: torch.Tensor, shape: tuple) -> torch.Tensor:
    """fp32 accumulators -> the next layer's codes, sat(round(accf · M_c) + y_z) with
    M_c = fp32(x_s · w_s_c) / y_s (fp32, as ORT), as float64; or, for the output layer,
    accf · fp32(x_s · w_s_c)."""
    unit = torch.from_numpy(st.acc_scale())
    if st.out_q is None:
        return accf * unit.reshape(shape)
    mult = unit / torch.tensor(st.out_q.scale, dtype=torch.float32)
    lo, hi = st.out_q.dtype_range
    y = torch.round(accf * mult.reshape(shape)) + st.out_q.zero_point
    return torch.clamp(y, lo, hi).to(torch.float64)


def integer_reference(plan: IntegerPlan, x: torch.Tensor) -> torch.Tensor:
    """Run ``plan`` in PyTorch with exactly the arithmetic of docs/ops.md: QuantizeLinear
    as fp32 x / scale, round half to even, saturation; exact integer sums (float64 holds
    every int32 exactly); bias added in int32; requantization fp32(acc) · fp32 multiplier,
    round half to even, saturation; max-pool / flatten / clip on codes. Returns float32.
    Activations are held in float64: feed large sets in chunks (10k 28x28 images at width 32
    need several GiB at once)."""
    x = x.detach().to(torch.float32)
    for st in plan.steps:
        if isinstance(st, QuantizeStep):
            if st.float_clip is not None:
                x = torch.clamp(x, *st.float_clip)
            lo, hi = st.q.dtype_range
            x = torch.round(x / torch.tensor(st.q.scale, dtype=torch.float32)) + st.q.zero_point
            x = torch.clamp(x, lo, hi).to(torch.float64)  # codes
        elif isinstance(st, ClipStep):
            x = torch.clamp(x, st.lo, st.hi)
        elif isinstance(st, IntLinearStep) and st.lut is not None:
            x = _lut_reference(st, x)
        elif isinstance(st, IntLinearStep):
            w = torch.from_numpy(st.w_codes.astype(np.float64))
            # code - zero point; the conv's zero padding is then padding with the zero-point
            # code, as QLinearConv pads
            xz = x - st.x_q.zero_point
            if st.kind == "conv":
                c = st.conv
                acc = torch.nn.functional.conv2d(
                    xz, w, stride=tuple(c["strides"]), padding=(c["pads"][0], c["pads"][1]),
                    dilation=tuple(c["dilations"]), groups=c["group"])
                shape = (1, -1, 1, 1)
            else:
                acc = xz @ w.T
                shape = (1, -1)
            acc = acc + torch.from_numpy(st.bias.astype(np.float64)).reshape(shape)
            # int32 -> fp32 conversion (rounds beyond 2^24, as MLAS)
            x = _requantize(st, _fp32(acc), shape)
        elif isinstance(st, MaxPoolStep):
            x = torch.nn.functional.max_pool2d(x, st.kernel, st.stride, st.pads, st.dilation,
                                               ceil_mode=st.ceil_mode)
        elif isinstance(st, FlattenStep):
            x = torch.flatten(x, 1)
        elif isinstance(st, ReluStep):
            x = torch.relu(x)
        elif isinstance(st, DequantizeStep):
            x = _fp32(x - st.q.zero_point) * torch.tensor(st.q.scale, dtype=torch.float32)
        else:  # pragma: no cover
            raise TypeError(st)
    return x.to(torch.float32)
