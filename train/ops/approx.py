"""ai.steport.approx as torch custom ops (docs/approx.md "The multiplier").

Integer ops (the PyTorch reference of the ONNX nodes, independent of the C++ kernels):
  steport::approx_matmul_integer(A u8 [..., M, K], B i8 [K, N], lut i32, a_zp u8) -> i32
  steport::approx_conv_integer(X u8 NCHW, W i8, lut i32, x_zp u8, strides, pads, dilations,
                               group) -> i32
Training ops on dequantized float tensors (forward through the LUT, STE backward = gradient
of the exact product):
  steport::approx_linear_ste, steport::approx_conv2d_ste

Two implementations of the LUT sums (docs/ops.md "Approximate multipliers"):
- the kernels: the C++ drivers the ORT nodes run (libsteport_ops, C ABI
  steport/approx_abi.h, called with ctypes on the tensors' memory, torch's thread count).
  Memory O(inputs + outputs + LUT). Used whenever the library loads;
- the reference: pure PyTorch, independent of the C++ code (tests compare the two
  bit-exactly), an embedding-bag over the weight-stationary table
  T[k*256 + a, n] = LUT[a, uint8(B[k, n])], built per chunk of K (and of rows / images) so
  its memory stays bounded (~64 MiB). It runs where the library is missing (with a warning,
  once) or when asked for with ``use_backend("reference")``.
Behavioural models (mode "model") always run in PyTorch."""
from __future__ import annotations

import contextlib
import ctypes
import threading
import warnings
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

from steport.registry import get as _spec
from steport.registry.shapes import conv_output_hw

from ..ste import conv2d_grads, linear_grads

MATMUL = _spec("approx", "ApproxMatMulInteger")
CONV = _spec("approx", "ApproxConvInteger")

# A behavioural model: (a codes int64 [M, K] in 0..255, b codes int64 [K, N] in -128..127)
# -> int64 [M, N] = sum_k approx(a, b) (no zero-point correction; the caller applies it).
BehaviouralModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# ---- validation ------------------------------------------------------------------------
def check_lut(lut: torch.Tensor) -> torch.Tensor:
    """-> the flattened [65536] int32 LUT; raises for any other shape/dtype."""
    if not isinstance(lut, torch.Tensor):
        raise TypeError(f"LUT must be a tensor, got {type(lut).__name__}")
    if lut.dtype != torch.int32:
        raise TypeError(f"LUT must be int32, got {lut.dtype}")
    if tuple(lut.shape) not in ((256, 256), (65536,)):
        raise ValueError(f"LUT must have shape [256, 256] (or [65536]), got {tuple(lut.shape)}")
    return lut.reshape(65536)


def _zp_value(zp: torch.Tensor, name: str) -> int:
    if zp.dtype != torch.uint8:
        raise TypeError(f"{name} must be uint8, got {zp.dtype}")
    if zp.dim() > 1 or zp.numel() != 1:
        raise ValueError(f"{name} must be a scalar (shape [] or [1]), got {tuple(zp.shape)}")
    return int(zp.reshape(()).item())


def _check_mm(A: torch.Tensor, B: torch.Tensor, lut: torch.Tensor, zp: torch.Tensor) -> None:
    if A.dtype != torch.uint8:
        raise TypeError(f"ApproxMatMulInteger: A must be uint8 activation codes, got {A.dtype}")
    if B.dtype != torch.int8:
        raise TypeError(f"ApproxMatMulInteger: B must be int8 weight codes, got {B.dtype}")
    if A.dim() < 2 or B.dim() != 2:
        raise ValueError(f"ApproxMatMulInteger: A must be [..., M, K] and B [K, N], got "
                         f"{tuple(A.shape)} and {tuple(B.shape)}")
    if A.shape[-1] != B.shape[0]:
        raise ValueError(f"ApproxMatMulInteger: K mismatch, A {tuple(A.shape)} vs B {tuple(B.shape)}")
    check_lut(lut)
    if zp.dtype != torch.uint8 or zp.dim() > 1 or zp.numel() != 1:
        raise ValueError(f"ApproxMatMulInteger: a_zero_point must be a uint8 scalar, got "
                         f"{zp.dtype} {tuple(zp.shape)}")


def _check_conv_attrs(strides, pads, dilations, group) -> None:
    for name, v, n in (("strides", strides, 2), ("pads", pads, 4), ("dilations", dilations, 2)):
        a = CONV.attr(name)
        if len(v) != n or any(not (a.lo <= int(x) <= a.hi) for x in v):
            raise ValueError(f"ApproxConvInteger: {name} must be {n} ints in [{a.lo}, {a.hi}], got {list(v)}")
    g = CONV.attr("group")
    if not (g.lo <= group <= g.hi):
        raise ValueError(f"ApproxConvInteger: group must be in [{g.lo}, {g.hi}], got {group}")


def _check_conv(X, W, lut, zp, strides, pads, dilations, group) -> tuple[int, int]:
    if X.dtype != torch.uint8:
        raise TypeError(f"ApproxConvInteger: X must be uint8 activation codes, got {X.dtype}")
    if W.dtype != torch.int8:
        raise TypeError(f"ApproxConvInteger: W must be int8 weight codes, got {W.dtype}")
    if X.dim() != 4 or W.dim() != 4:
        raise ValueError(f"ApproxConvInteger: X must be NCHW and W [C_out, C_in/group, kH, kW], "
                         f"got {tuple(X.shape)} and {tuple(W.shape)}")
    _check_conv_attrs(strides, pads, dilations, group)
    c_in, c_out = X.shape[1], W.shape[0]
    if c_in % group or c_out % group or W.shape[1] * group != c_in:
        raise ValueError(f"ApproxConvInteger: channels do not fit group={group}: X {tuple(X.shape)}, "
                         f"W {tuple(W.shape)}")
    check_lut(lut)
    if zp.dtype != torch.uint8 or zp.dim() > 1 or zp.numel() != 1:
        raise ValueError(f"ApproxConvInteger: x_zero_point must be a uint8 scalar, got "
                         f"{zp.dtype} {tuple(zp.shape)}")
    oh, ow = conv_output_hw(X.shape[2], X.shape[3], W.shape[2], W.shape[3], strides, pads, dilations)
    if oh < 1 or ow < 1:
        raise ValueError(f"ApproxConvInteger: empty output ({oh}x{ow}) for X {tuple(X.shape)}, "
                         f"W {tuple(W.shape)}, pads {list(pads)}")
    return oh, ow


# ---- the kernels (C ABI of libsteport_ops) ---------------------------------------------
class _Kernels:
    """ctypes handle on steport_approx_matmul / steport_approx_conv2d."""

    def __init__(self, lib: ctypes.CDLL):
        i64, i32, p = ctypes.c_int64, ctypes.c_int32, ctypes.c_void_p
        self.matmul = lib.steport_approx_matmul
        self.matmul.argtypes = [p, p, i64, i64, p, i64, i32, p, i32, ctypes.c_char_p, i64]
        self.matmul.restype = ctypes.c_int
        self.conv2d = lib.steport_approx_conv2d
        self.conv2d.argtypes = [p, p, i64, i64, i64, i64, p, i64, i64, i64, i64, p, p, p, i64,
                                i32, p, i32, ctypes.c_char_p, i64]
        self.conv2d.restype = ctypes.c_int
        self.preparations = lib.steport_approx_preparations
        self.preparations.argtypes = []
        self.preparations.restype = i64


_lock = threading.Lock()
_loaded: list = []  # [_Kernels or None], filled on first use
_backend = "auto"
_warned = False


def _load() -> _Kernels | None:
    with _lock:
        if not _loaded:
            kernels, why = None, ""
            try:
                from steport.ort_ops import library_path

                kernels = _Kernels(ctypes.CDLL(library_path()))
            except (OSError, AttributeError) as e:  # missing library / older library
                why = str(e)
            _loaded.append(kernels)
            _loaded.append(why)
        return _loaded[0]


def kernels_available() -> bool:
    """Whether the training ops can run on the C++ kernels (libsteport_ops loads)."""
    return _load() is not None


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Pick the LUT-sum implementation inside the block: "kernel" (the C++ kernels; error if
    the library does not load), "reference" (pure PyTorch), "auto" (kernel when available)."""
    global _backend
    if name not in ("auto", "kernel", "reference"):
        raise ValueError(f"backend must be 'auto', 'kernel' or 'reference', got {name!r}")
    prev, _backend = _backend, name
    try:
        yield
    finally:
        _backend = prev


def _kernels() -> _Kernels | None:
    """The kernels to use now, or None for the reference path (warns once when that is
    because the library is missing)."""
    global _warned
    if _backend == "reference":
        return None
    k = _load()
    if k is None:
        if _backend == "kernel":
            raise RuntimeError(f"steport approx kernels unavailable: {_loaded[1]}")
        if not _warned:
            _warned = True
            warnings.warn("steport: libsteport_ops could not be loaded "
                          f"({_loaded[1]}); approximate-multiplier layers use the slow "
                          "pure-PyTorch LUT path", RuntimeWarning, stacklevel=3)
    return k


def _ptr(t: torch.Tensor) -> int:
    return t.data_ptr()


def _check_rc(rc: int, err) -> None:
    if rc:
        raise ValueError(f"steport approx kernel: {err.value.decode(errors='replace')}")


def kernel_matmul(k: _Kernels, a: torch.Tensor, b: torch.Tensor, zp: int,
                  lut_flat: torch.Tensor) -> torch.Tensor:
    """int32 [M, N] = sum_k LUT[a, uint8(b)] - zp * sum_k b (wrapping), on the C++ kernel.
    a: codes [M, K] in 0..255, b: codes [K, N] in -128..127 (any integer dtype)."""
    a8 = a.to(torch.uint8).contiguous()
    b8 = b.to(torch.int8).contiguous()
    lut = lut_flat.contiguous()
    M, K = a8.shape
    N = b8.shape[1]
    y = torch.empty(M, N, dtype=torch.int32)
    err = ctypes.create_string_buffer(256)
    rc = k.matmul(_ptr(lut), _ptr(a8), M, K, _ptr(b8), N, zp, _ptr(y),
                  torch.get_num_threads(), err, 256)
    _check_rc(rc, err)
    return y


def kernel_conv(k: _Kernels, x: torch.Tensor, w: torch.Tensor, zp: int, lut_flat: torch.Tensor,
                strides, pads, dilations, group: int) -> torch.Tensor:
    """int32 NCHW ApproxConvInteger on the C++ kernel (x, w: integer codes, any int dtype)."""
    x8 = x.to(torch.uint8).contiguous()
    w8 = w.to(torch.int8).contiguous()
    lut = lut_flat.contiguous()
    n, c, h, wd = x8.shape
    co, cg, kh, kw = w8.shape
    oh, ow = conv_output_hw(h, wd, kh, kw, strides, pads, dilations)
    # an empty/negative output is the kernel's to reject (with its message)
    y = torch.empty(n, co, max(oh, 0), max(ow, 0), dtype=torch.int32)
    arr = ctypes.c_int64 * 4
    st, pd, dl = arr(*strides, 0, 0), arr(*pads), arr(*dilations, 0, 0)
    err = ctypes.create_string_buffer(256)
    rc = k.conv2d(_ptr(lut), _ptr(x8), n, c, h, wd, _ptr(w8), co, cg, kh, kw,
                  ctypes.addressof(st), ctypes.addressof(pd), ctypes.addressof(dl), group, zp,
                  _ptr(y), torch.get_num_threads(), err, 256)
    _check_rc(rc, err)
    return y


def lut_preparations() -> int:
    """LUT preparations the library has built in this process (shared by content)."""
    k = _load()
    if k is None:
        raise RuntimeError("steport approx kernels unavailable")
    return int(k.preparations())


# ---- the reference LUT sum (pure PyTorch, bounded memory) -------------------------------
_TABLE_BYTES = 1 << 26  # weight-stationary table per chunk of K
_INDEX_BYTES = 1 << 25  # gathered indices / values per chunk of rows


def lut_sum(a: torch.Tensor, b: torch.Tensor, lut_flat: torch.Tensor) -> torch.Tensor:
    """sum_k LUT[a[m, k], uint8(b[k, n])] as int64 [M, N]; a, b integer codes (any int dtype;
    a in 0..255, b in -128..127). Weight-stationary: rows T[k*256 + a] = LUT[a, b[k, :]], one
    chunk of K at a time; float sums are exact while each chunk's partial sums stay below
    2^24 (float32) or 2^53 (float64), else int64 gathers."""
    M, K = a.shape
    N = b.shape[1]
    out = torch.zeros(M, N, dtype=torch.int64)
    if M == 0 or N == 0 or K == 0:
        return out
    bu = b.to(torch.int64) & 255
    lmax = int(lut_flat.abs().max())
    kc = max(1, min(K, _TABLE_BYTES // (256 * N * 8)))
    for k0 in range(0, K, kc):
        k1 = min(K, k0 + kc)
        nk = k1 - k0
        # table[k*256 + a, n] = LUT[a, bu[k, n]], gathered straight into that layout
        tidx = (torch.arange(256, dtype=torch.int64) * 256).view(1, 256, 1) + bu[k0:k1].unsqueeze(1)
        offs = 256 * torch.arange(nk, dtype=torch.int64).unsqueeze(0)
        bound = lmax * nk
        if bound < (1 << 53):
            dt = torch.float32 if bound < (1 << 24) else torch.float64
            table = lut_flat.to(dt)[tidx].reshape(nk * 256, N)
            step = max(1, _INDEX_BYTES // (8 * max(nk, N)))
            for s in range(0, M, step):
                idx = a[s:s + step, k0:k1].to(torch.int64) + offs
                out[s:s + step] += F.embedding_bag(idx, table, mode="sum").round().to(torch.int64)
        else:
            table = lut_flat.to(torch.int64)[tidx].reshape(nk * 256, N)
            step = max(1, _INDEX_BYTES // (8 * nk * N))
            for s in range(0, M, step):
                idx = a[s:s + step, k0:k1].to(torch.int64) + offs
                out[s:s + step] += table[idx].sum(1)
    return out


def approx_sum(a: torch.Tensor, b: torch.Tensor, lut_flat: torch.Tensor | None,
               model: BehaviouralModel | None = None) -> torch.Tensor:
    """LUT sum, or the behavioural model's when one is given; int64 [M, N]."""
    if model is not None:
        out = model(a.to(torch.int64), b.to(torch.int64))
        if tuple(out.shape) != (a.shape[0], b.shape[1]):
            raise ValueError(f"behavioural model returned shape {tuple(out.shape)}, expected "
                             f"{(a.shape[0], b.shape[1])}")
        return out.to(torch.int64)
    return lut_sum(a, b, lut_flat)


def _wrap_i32(x: torch.Tensor) -> torch.Tensor:
    """int64 -> int32 modulo 2^32 (the C++ kernels accumulate in wrapping int32)."""
    if x.dtype == torch.int32:
        return x
    x = x & 0xFFFFFFFF
    return torch.where(x >= (1 << 31), x - (1 << 32), x).to(torch.int32)


def matmul_codes(a2: torch.Tensor, b: torch.Tensor, zp: int, lut_flat, model=None,
                 reference: bool = False) -> torch.Tensor:
    """[M, N] = sum_k LUT[a, b] - zp * sum_k b: int32 (wrapped) from the kernel, int64 from
    the reference (callers wrap with _wrap_i32). ``reference``: the PyTorch reference even
    where the kernels are built (references that must not depend on them)."""
    if model is None and not reference:
        k = _kernels()
        if k is not None:
            return kernel_matmul(k, a2, b, zp, lut_flat)
    y = approx_sum(a2, b, lut_flat, model)
    if zp:
        y = y - zp * b.to(torch.int64).sum(0, keepdim=True)
    return y


def _im2col(x: torch.Tensor, kh: int, kw: int, strides, pads, dilations, zp: int):
    """codes NCHW -> [N, C*kh*kw, L] (int64), padding with the zero-point code."""
    xp = F.pad(x.to(torch.int64), (pads[1], pads[3], pads[0], pads[2]), value=zp)
    # unfold needs floating input; codes are small ints, exact in float32
    cols = F.unfold(xp.to(torch.float32), (kh, kw), dilation=tuple(dilations), stride=tuple(strides))
    return cols.to(torch.int64)


_COLS_BYTES = 1 << 26  # reference im2col per chunk of images


def conv_codes(x: torch.Tensor, w: torch.Tensor, zp: int, lut_flat, strides, pads, dilations,
               group: int, model=None, reference: bool = False) -> torch.Tensor:
    """[N, C_out, OH, OW] approximate conv over codes (x: NCHW codes, w: int codes): int32
    (wrapped) from the kernel, int64 from the reference (``reference``: even where the
    kernels are built)."""
    if model is None and not reference:
        k = _kernels()
        if k is not None:
            return kernel_conv(k, x, w, zp, lut_flat, list(strides), list(pads), list(dilations),
                               group)
    n, c_in, h, wd = x.shape
    c_out, cg, kh, kw = w.shape
    oh, ow = conv_output_hw(h, wd, kh, kw, strides, pads, dilations)
    L, kg, og = oh * ow, cg * kh * kw, c_out // group
    wg = w.reshape(group, og, kg).to(torch.int64)
    per_image = c_in * kh * kw * L * 8
    step = max(1, _COLS_BYTES // max(1, per_image))
    parts = []
    for s in range(0, n, step):
        xs = x[s:s + step]
        ns = xs.shape[0]
        cols = _im2col(xs, kh, kw, strides, pads, dilations, zp)  # [ns, C*kh*kw, L]
        cols = cols.reshape(ns, group, kg, L).permute(1, 0, 3, 2).reshape(group, ns * L, kg)
        outs = [matmul_codes_reference(cols[g], wg[g].t(), zp, lut_flat, model)
                for g in range(group)]
        y = torch.stack(outs)  # [G, ns*L, og]
        parts.append(y.reshape(group, ns, L, og).permute(1, 0, 3, 2).reshape(ns, c_out, oh, ow))
    return torch.cat(parts) if parts else torch.zeros(0, c_out, oh, ow, dtype=torch.int64)


def matmul_codes_reference(a2, b, zp: int, lut_flat, model=None) -> torch.Tensor:
    """int64 [M, N] = sum_k LUT[a, b] - zp * sum_k b on the PyTorch reference path."""
    y = approx_sum(a2, b, lut_flat, model)
    if zp:
        y = y - zp * b.to(torch.int64).sum(0, keepdim=True)
    return y


# ---- integer ops (ONNX node semantics) -------------------------------------------------
@torch.library.custom_op("steport::approx_matmul_integer", mutates_args=())
def approx_matmul_integer(A: torch.Tensor, B: torch.Tensor, lut: torch.Tensor,
                          a_zero_point: torch.Tensor) -> torch.Tensor:
    """Y[..., m, n] = sum_k LUT[A[..., m, k], uint8(B[k, n])] - a_zp * sum_k B[k, n], int32."""
    _check_mm(A, B, lut, a_zero_point)
    zp = _zp_value(a_zero_point, "a_zero_point")
    lead = A.shape[:-2]
    a2 = A.reshape(-1, A.shape[-1])
    y = matmul_codes(a2, B, zp, check_lut(lut))
    return _wrap_i32(y).reshape(*lead, A.shape[-2], B.shape[1])


@approx_matmul_integer.register_fake
def _mm_fake(A, B, lut, a_zero_point):
    _check_mm(A, B, lut, a_zero_point)
    return A.new_empty((*A.shape[:-1], B.shape[1]), dtype=torch.int32)


@torch.library.custom_op("steport::approx_conv_integer", mutates_args=())
def approx_conv_integer(X: torch.Tensor, W: torch.Tensor, lut: torch.Tensor,
                        x_zero_point: torch.Tensor, strides: Sequence[int], pads: Sequence[int],
                        dilations: Sequence[int], group: int) -> torch.Tensor:
    """2-D conv over codes: each tap adds LUT[x, uint8(w)] - x_zp * w; padded taps x = x_zp."""
    _check_conv(X, W, lut, x_zero_point, strides, pads, dilations, group)
    zp = _zp_value(x_zero_point, "x_zero_point")
    y = conv_codes(X, W, zp, check_lut(lut), list(strides), list(pads), list(dilations), group)
    return _wrap_i32(y)


@approx_conv_integer.register_fake
def _conv_fake(X, W, lut, x_zero_point, strides, pads, dilations, group):
    oh, ow = _check_conv(X, W, lut, x_zero_point, strides, pads, dilations, group)
    return X.new_empty((X.shape[0], W.shape[0], oh, ow), dtype=torch.int32)


# ---- training ops: float in/out, LUT forward, STE backward -----------------------------
def _codes(x: torch.Tensor, scale: torch.Tensor, zp: int, lo: int, hi: int) -> torch.Tensor:
    """Dequantized values on the grid -> their integer codes (exact: round undoes the
    float error of (q - zp) * s)."""
    return torch.clamp(torch.round(x / scale) + zp, lo, hi).to(torch.int64)


def _w_scale(w_scale: torch.Tensor, ndim: int) -> torch.Tensor:
    return w_scale.reshape(-1, *([1] * (ndim - 1))) if w_scale.numel() > 1 else w_scale.reshape(())


def _model_from_id(model_id: int):
    return _MODELS[model_id] if model_id >= 0 else None


# Behavioural models cannot be op arguments; layers register them here by id.
_MODELS: dict[int, BehaviouralModel] = {}


def register_behavioural_model(fn: BehaviouralModel) -> int:
    key = id(fn)
    _MODELS[key] = fn
    return key


@torch.library.custom_op("steport::approx_linear_ste", mutates_args=())
def approx_linear_ste(x: torch.Tensor, w: torch.Tensor, lut: torch.Tensor, x_scale: torch.Tensor,
                      x_zp: int, w_scale: torch.Tensor, model_id: int = -1) -> torch.Tensor:
    """x [..., K] and w [N, K] dequantized (on their grids); returns
    x_scale * w_scale[n] * (sum_k LUT[a, b] - x_zp * sum_k b) as float [..., N]."""
    a = _codes(x, x_scale, x_zp, 0, 255).reshape(-1, x.shape[-1])
    b = _codes(w, _w_scale(w_scale, 2), 0, -128, 127).t()  # [K, N]
    y = _wrap_i32(matmul_codes(a, b, x_zp, check_lut(lut), _model_from_id(model_id)))
    out = y.to(x.dtype) * (x_scale.reshape(()) * w_scale.reshape(-1)).to(x.dtype)
    return out.reshape(*x.shape[:-1], w.shape[0])


@approx_linear_ste.register_fake
def _lin_fake(x, w, lut, x_scale, x_zp, w_scale, model_id):
    return x.new_empty((*x.shape[:-1], w.shape[0]))


def _lin_setup(ctx, inputs, output):
    x, w = inputs[0], inputs[1]
    ctx.save_for_backward(x, w)


def _lin_backward(ctx, g):
    # STE: gradient of the exact product x @ w.T on the dequantized tensors.
    x, w = ctx.saved_tensors
    dx, dw = linear_grads(g, x, w)
    return dx, dw, None, None, None, None, None


approx_linear_ste.register_autograd(_lin_backward, setup_context=_lin_setup)


@torch.library.custom_op("steport::approx_conv2d_ste", mutates_args=())
def approx_conv2d_ste(x: torch.Tensor, w: torch.Tensor, lut: torch.Tensor, x_scale: torch.Tensor,
                      x_zp: int, w_scale: torch.Tensor, stride: Sequence[int],
                      padding: Sequence[int], dilation: Sequence[int], groups: int,
                      model_id: int = -1) -> torch.Tensor:
    """Dequantized NCHW x and OIHW w; symmetric padding [pH, pW]; float NCHW output."""
    a = _codes(x, x_scale, x_zp, 0, 255)
    b = _codes(w, _w_scale(w_scale, 4), 0, -128, 127)
    pads = [padding[0], padding[1], padding[0], padding[1]]
    y = conv_codes(a, b, x_zp, check_lut(lut), list(stride), pads, list(dilation), groups,
                   _model_from_id(model_id))
    y = _wrap_i32(y)
    s = (x_scale.reshape(()) * w_scale.reshape(-1)).to(x.dtype).reshape(1, -1, 1, 1)
    return y.to(x.dtype) * s


@approx_conv2d_ste.register_fake
def _conv_ste_fake(x, w, lut, x_scale, x_zp, w_scale, stride, padding, dilation, groups, model_id):
    oh, ow = conv_output_hw(x.shape[2], x.shape[3], w.shape[2], w.shape[3], stride,
                         [padding[0], padding[1], padding[0], padding[1]], dilation)
    return x.new_empty((x.shape[0], w.shape[0], oh, ow))


def _conv_setup(ctx, inputs, output):
    x, w = inputs[0], inputs[1]
    ctx.save_for_backward(x, w)
    ctx.conf = (tuple(inputs[6]), tuple(inputs[7]), tuple(inputs[8]), inputs[9])


def _conv_backward(ctx, g):
    # STE: gradient of the exact conv on the dequantized tensors.
    x, w = ctx.saved_tensors
    stride, padding, dilation, groups = ctx.conf
    dx, dw = conv2d_grads(g, x, w, stride, padding, dilation, groups)
    return dx, dw, None, None, None, None, None, None, None, None, None


approx_conv2d_ste.register_autograd(_conv_backward, setup_context=_conv_setup)
