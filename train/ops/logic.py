"""ai.steport.logic as torch custom ops (the discrete deploy forms that map 1:1 to ONNX nodes)
plus the plain-torch relaxation used in training (docs/logic.md "Gate ids").

Gate id convention: f_id(a, b) = (id >> (3 - (2a + b))) & 1."""
from __future__ import annotations

import torch

from steport.registry import get as _spec
from steport.registry.logic import GATE_TRUTH_TABLE, MAX_WIDTH, NUM_GATES

LOGIC_LAYER = _spec("logic", "LogicLayer")
LOGIC_NET = _spec("logic", "LogicNet")
PASS_A = 3  # f(a, b) = a: the residual / pass-through gate
GATE_NAMES = ("FALSE", "AND", "A_AND_NOT_B", "A", "B_AND_NOT_A", "B", "XOR", "OR", "NOR",
              "XNOR", "NOT_B", "A_OR_NOT_B", "NOT_A", "NOT_A_OR_B", "NAND", "TRUE")


def truth_table(dtype=torch.float32, device=None) -> torch.Tensor:
    """[16, 4]: TT[id, 2a + b] = f_id(a, b) (steport.registry.logic.GATE_TRUTH_TABLE)."""
    return torch.tensor(GATE_TRUTH_TABLE, dtype=dtype, device=device)


# ---- relaxation (training) ----------------------------------------------------------

def corner_values(probs: torch.Tensor) -> torch.Tensor:
    """Gate distribution [out, 16] -> expected truth table [out, 4] (f00, f01, f10, f11)."""
    return probs @ truth_table(probs.dtype, probs.device)


def relaxed_gates(a: torch.Tensor, b: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
    """Multilinear extension of the truth table ``corners`` [out, 4] at (a, b) [..., out]:
    f00 (1-a)(1-b) + f01 (1-a) b + f10 a (1-b) + f11 a b, in expanded form. Because the
    extension is linear in the table, this equals sum_i p_i * op_i(a, b)."""
    f00, f01, f10, f11 = corners.unbind(-1)
    return f00 + (f10 - f00) * a + (f01 - f00) * b + (f00 - f01 - f10 + f11) * (a * b)


def relaxed_gate(gate_id: int, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """One gate's relaxation (e.g. AND -> ab, XOR -> a + b - 2ab)."""
    c = truth_table(a.dtype, a.device)[gate_id]
    return relaxed_gates(a, b, c.expand(a.shape[-1] if a.dim() else 1, 4))


# ---- discrete reference ops -----------------------------------------------------------

def _check_layer_tensors(x, idx_a, idx_b, gate_ids, what="LogicLayer") -> None:
    if x.dim() != 2 or not x.is_floating_point():
        raise ValueError(f"{what}: X must be a 2-D float tensor [N, in], got {x.dtype} "
                         f"shape {tuple(x.shape)}")
    for name, t in (("idx_a", idx_a), ("idx_b", idx_b)):
        if t.dim() != 1 or t.dtype != torch.int64:
            raise ValueError(f"{what}: {name} must be 1-D int64, got {t.dtype} shape {tuple(t.shape)}")
    if gate_ids.dim() != 1 or gate_ids.dtype not in (torch.uint8, torch.int64):
        raise ValueError(f"{what}: gate_ids must be 1-D uint8 or int64, got {gate_ids.dtype} "
                         f"shape {tuple(gate_ids.shape)}")
    if not (idx_a.shape == idx_b.shape == gate_ids.shape):
        raise ValueError(f"{what}: idx_a, idx_b, gate_ids lengths differ: {idx_a.numel()}, "
                         f"{idx_b.numel()}, {gate_ids.numel()}")


def _check_values(width: int, ia, ib, g, what: str) -> None:
    for name, t in (("idx_a", ia), ("idx_b", ib)):
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= width):
            raise ValueError(f"{what}: {name} out of range [0, {width}): min {int(t.min())}, "
                             f"max {int(t.max())}")
    if g.numel() and (int(g.min()) < 0 or int(g.max()) > 15):
        raise ValueError(f"{what}: gate id out of range [0, 15]: max {int(g.max())}")


def _layer(h_bits: torch.Tensor, ia, ib, g) -> torch.Tensor:
    """h_bits int64 {0,1} [N, in] -> int64 {0,1} [N, out] via the flat truth table."""
    tt = truth_table(torch.int64, h_bits.device).reshape(-1)
    k = g.to(torch.int64) * 4 + 2 * h_bits[:, ia] + h_bits[:, ib]
    return tt[k]


@torch.library.custom_op("steport::logic_layer", mutates_args=())
def logic_layer(x: torch.Tensor, idx_a: torch.Tensor, idx_b: torch.Tensor,
                gate_ids: torch.Tensor) -> torch.Tensor:
    """Y[n, j] = f_{gate_ids[j]}(X[n, idx_a[j]] != 0, X[n, idx_b[j]] != 0) as 0.0 / 1.0."""
    _check_layer_tensors(x, idx_a, idx_b, gate_ids)
    _check_values(x.shape[1], idx_a, idx_b, gate_ids, "LogicLayer")
    return _layer((x != 0).to(torch.int64), idx_a, idx_b, gate_ids).to(x.dtype)


@logic_layer.register_fake
def _logic_layer_fake(x, idx_a, idx_b, gate_ids):
    _check_layer_tensors(x, idx_a, idx_b, gate_ids)
    return x.new_empty((x.shape[0], idx_a.shape[0]))


def check_net_attrs(n_in: int, total: int, layer_sizes, num_classes: int, tau: float) -> None:
    """Attribute/shape rules of LogicNet (the C++ kernel enforces the same ones)."""
    sizes = list(layer_sizes)
    if not sizes or any((not isinstance(s, int)) or s < 1 or s > MAX_WIDTH for s in sizes):
        raise ValueError(f"LogicNet: layer_sizes must be a non-empty list of ints in "
                         f"[1, {MAX_WIDTH}], got {sizes}")
    if not 1 <= n_in <= MAX_WIDTH:
        raise ValueError(f"LogicNet: input width must be in [1, {MAX_WIDTH}], got {n_in}")
    if sum(sizes) != total:
        raise ValueError(f"LogicNet: sum(layer_sizes) = {sum(sizes)} but the index/gate "
                         f"tensors have {total} entries")
    if not isinstance(num_classes, int) or num_classes < 1 or sizes[-1] % num_classes:
        raise ValueError(f"LogicNet: last layer width {sizes[-1]} is not a multiple of "
                         f"num_classes {num_classes}")
    if not (tau > 0 and tau < float("inf")):
        raise ValueError(f"LogicNet: tau must be positive and finite, got {tau}")


@torch.library.custom_op("steport::logic_net", mutates_args=())
def logic_net(x: torch.Tensor, idx_a: torch.Tensor, idx_b: torch.Tensor, gate_ids: torch.Tensor,
              layer_sizes: list[int], num_classes: int, tau: float) -> torch.Tensor:
    """Whole discrete stack + GroupSum: Y[n, c] = popcount(group c of the last layer) / tau."""
    _check_layer_tensors(x, idx_a, idx_b, gate_ids, "LogicNet")
    check_net_attrs(x.shape[1], idx_a.numel(), layer_sizes, num_classes, tau)
    h = (x != 0).to(torch.int64)
    start = 0
    for size in layer_sizes:
        sl = slice(start, start + size)
        _check_values(h.shape[1], idx_a[sl], idx_b[sl], gate_ids[sl], "LogicNet")
        h = _layer(h, idx_a[sl], idx_b[sl], gate_ids[sl])
        start += size
    # explicit group width: -1 is ambiguous for an empty batch
    counts = h.reshape(h.shape[0], num_classes, h.shape[1] // num_classes).sum(-1).to(x.dtype)
    # float32 tau, true division (the ONNX attribute is float32)
    return counts / torch.tensor(tau, dtype=torch.float32).to(x.dtype)


@logic_net.register_fake
def _logic_net_fake(x, idx_a, idx_b, gate_ids, layer_sizes, num_classes, tau):
    _check_layer_tensors(x, idx_a, idx_b, gate_ids, "LogicNet")
    check_net_attrs(x.shape[1], idx_a.shape[0], layer_sizes, num_classes, tau)
    return x.new_empty((x.shape[0], num_classes))


def _no_grad(ctx, g):
    raise RuntimeError("the discrete logic ops have no gradient; train with LogicDense "
                       "(relaxed gates) and export/discretize afterwards")


logic_layer.register_autograd(_no_grad)
logic_net.register_autograd(_no_grad)
