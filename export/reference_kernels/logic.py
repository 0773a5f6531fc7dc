"""ai.steport.logic reference kernels (docs/ops.md). Bits are x != 0 (NaN -> 1); each layer
gathers its two operand columns and looks the gate up in the flat 16x4 truth table at
4*id + 2a + b."""
from __future__ import annotations

import numpy as np

from steport.registry.logic import GATE_TRUTH_TABLE, MAX_WIDTH

from .kernels import numpy_kernel

_TRUTH = np.array(GATE_TRUTH_TABLE, dtype=np.uint8).reshape(-1)


def _logic_tensors(x, ia, ib, g, op: str):
    x, ia, ib, g = (np.asarray(t) for t in (x, ia, ib, g))
    if x.ndim != 2 or x.dtype.kind != "f":
        raise ValueError(f"{op}: X must be a 2-D float tensor [N, in], got {x.dtype} "
                         f"{list(x.shape)}")
    for name, t in (("idx_a", ia), ("idx_b", ib)):
        if t.ndim != 1 or t.dtype != np.int64:
            raise ValueError(f"{op}: {name} must be 1-D int64, got {t.dtype} {list(t.shape)}")
    if g.ndim != 1 or g.dtype not in (np.uint8, np.int64):
        raise ValueError(f"{op}: gate_ids must be 1-D uint8 or int64, got {g.dtype} "
                         f"{list(g.shape)}")
    if not ia.shape == ib.shape == g.shape:
        raise ValueError(f"{op}: idx_a, idx_b, gate_ids lengths differ: {ia.size}, {ib.size}, "
                         f"{g.size}")
    return x, ia, ib, g


def _logic_layer(bits: np.ndarray, ia, ib, g, what: str) -> np.ndarray:
    """bits uint8 {0,1} [N, in] -> uint8 {0,1} [N, out]."""
    width = bits.shape[1]
    for name, t in (("idx_a", ia), ("idx_b", ib)):
        if t.size and (int(t.min()) < 0 or int(t.max()) >= width):
            raise ValueError(f"{what}: {name} out of range [0, {width}): min {int(t.min())}, "
                             f"max {int(t.max())}")
    g = g.astype(np.int64)
    if g.size and (int(g.min()) < 0 or int(g.max()) > 15):
        raise ValueError(f"{what}: gate id out of range [0, 15]: min {int(g.min())}, "
                         f"max {int(g.max())}")
    k = (g * 4).astype(np.intp) + 2 * bits[:, ia].astype(np.intp) + bits[:, ib]
    return _TRUTH[k]


@numpy_kernel("logic", "LogicLayer")
def logic_layer(x, idx_a, idx_b, gate_ids) -> np.ndarray:
    x, ia, ib, g = _logic_tensors(x, idx_a, idx_b, gate_ids, "LogicLayer")
    bits = (x != 0).astype(np.uint8)  # NaN != 0: 1
    return _logic_layer(bits, ia, ib, g, "LogicLayer").astype(x.dtype)


@numpy_kernel("logic", "LogicNet")
def logic_net(x, idx_a, idx_b, gate_ids, *, layer_sizes, num_classes: int,
              tau: float = 1.0) -> np.ndarray:
    op = "LogicNet"
    x, ia, ib, g = _logic_tensors(x, idx_a, idx_b, gate_ids, op)
    sizes = list(layer_sizes)
    if not sizes or any(not isinstance(s, int) or not 1 <= s <= MAX_WIDTH for s in sizes):
        raise ValueError(f"{op}: layer_sizes must be a non-empty list of ints in "
                         f"[1, {MAX_WIDTH}], got {sizes}")
    if not 1 <= x.shape[1] <= MAX_WIDTH:
        raise ValueError(f"{op}: input width must be in [1, {MAX_WIDTH}], got {x.shape[1]}")
    if sum(sizes) != ia.size:
        raise ValueError(f"{op}: sum(layer_sizes) = {sum(sizes)} but the index/gate tensors "
                         f"have {ia.size} entries")
    if not isinstance(num_classes, int) or num_classes < 1 or sizes[-1] % num_classes:
        raise ValueError(f"{op}: last layer width {sizes[-1]} is not a multiple of "
                         f"num_classes {num_classes}")
    t = np.float32(tau)  # the ONNX attribute is float32
    if not (np.isfinite(t) and t > 0):
        raise ValueError(f"{op}: tau must be positive and finite, got {tau}")
    h = (x != 0).astype(np.uint8)
    start = 0
    for li, size in enumerate(sizes):
        sl = slice(start, start + size)
        h = _logic_layer(h, ia[sl], ib[sl], g[sl], f"{op} layer {li}")
        start += size
    counts = h.reshape(h.shape[0], num_classes, sizes[-1] // num_classes).sum(-1, dtype=np.int64)
    return (counts.astype(np.float32) / t).astype(x.dtype)
