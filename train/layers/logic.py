"""Differentiable logic-gate network layers (difflogic / torchlogix family).

Training runs the relaxation (each gate a softmax mixture of the 16 two-input Boolean
functions' multilinear extensions); eval and export run the argmax gates. ``LogicNetwork``
fuses binarizer + gate layers + GroupSum and exports as one ``ai.steport.logic::LogicNet``."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.logic import (NUM_GATES, PASS_A, check_net_attrs, corner_values, logic_layer,
                         logic_net, relaxed_gates, truth_table)
from ..ste import grad_scale

__all__ = ["LogicDense", "GroupSum", "GradFactor", "ThresholdBinarize", "FusedGateStack",
           "LogicNetwork"]

MODES = ("soft", "hard", "gumbel", "gumbel_hard")


def make_wiring(in_features: int, out_features: int, kind: str,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed wiring: ``random`` draws each operand independently; ``unique`` (difflogic)
    deals out shuffled copies of all inputs so every input is used once before any repeats
    (when 2*out >= in) and a gate never reads the same input twice if in > 1."""
    if kind == "random":
        a = torch.randint(0, in_features, (out_features,), generator=generator)
        b = torch.randint(0, in_features, (out_features,), generator=generator)
    elif kind == "unique":
        reps = math.ceil(2 * out_features / in_features)
        flat = torch.cat([torch.randperm(in_features, generator=generator) for _ in range(reps)])
        a, b = flat[:out_features].clone(), flat[out_features:2 * out_features].clone()
    else:
        raise ValueError(f"unknown wiring {kind!r} (random, unique)")
    if in_features > 1:  # re-draw b where a gate would read one input twice
        same = a == b
        b[same] = (a[same] + 1 + torch.randint(0, in_features - 1, (int(same.sum()),),
                                               generator=generator)) % in_features
    return a.long(), b.long()


class LogicDense(nn.Module):
    """``out_features`` two-input gates over ``in_features`` inputs in [0, 1].

    mode: ``soft`` (softmax mixture), ``hard`` (argmax forward, softmax gradient: straight
    through), ``gumbel`` (Gumbel-softmax mixture), ``gumbel_hard`` (its straight-through
    one-hot). init ``residual`` biases every gate toward the pass-through gate A (id 3) by
    ``residual_logit``, so deep stacks start close to identity (torchlogix).

    connections: ``unique`` / ``random`` fixed wiring (``make_wiring``), or ``learnable``:
    each operand of each gate chooses among ``candidates`` inputs (the ``unique`` pick,
    favoured by ``wire_logit`` at init, plus random ones) with learned logits, relaxed like
    the gate choice (the same ``mode``: a softmax-weighted input in training, straight-through
    one-hot in hard modes) and discretized to the argmax candidate. On digits (3 x 2000
    gates, 12 epochs) it reached 94.7 % (4 candidates) and 95.3 % (8) against 93.6 % for
    fixed unique wiring, at 2-4x the training time."""

    def __init__(self, in_features: int, out_features: int, connections: str = "unique",
                 init: str = "residual", residual_logit: float = 5.0, mode: str = "soft",
                 gumbel_tau: float = 1.0, generator: torch.Generator | None = None,
                 candidates: int = 4, wire_logit: float = 4.0):
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"LogicDense needs positive sizes, got {in_features} -> {out_features}")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
        if init not in ("residual", "random"):
            raise ValueError(f"unknown init {init!r} (residual, random)")
        self.in_features, self.out_features = in_features, out_features
        self.mode, self.gumbel_tau = mode, gumbel_tau
        w = torch.randn(out_features, NUM_GATES, generator=generator)
        if init == "residual":
            w[:, PASS_A] += residual_logit
        self.weight = nn.Parameter(w)
        self.learnable_wiring = connections == "learnable"
        if self.learnable_wiring:
            if candidates < 1:
                raise ValueError(f"learnable wiring needs candidates >= 1, got {candidates}")
            # candidate 0 is the "unique" wiring and starts preferred (+wire_logit), so
            # training starts near the fixed-wiring network and moves operands where it helps
            first = make_wiring(in_features, out_features, "unique", generator)
            for op, idx in zip(("a", "b"), first):
                cand = torch.randint(0, in_features, (out_features, candidates), generator=generator)
                cand[:, 0] = idx
                self.register_buffer(f"cand_{op}", cand)
                logits = torch.zeros(out_features, candidates)
                logits[:, 0] = wire_logit
                setattr(self, f"wire_{op}", nn.Parameter(logits))
        else:
            a, b = make_wiring(in_features, out_features, connections, generator)
            self.register_buffer("idx_a", a)
            self.register_buffer("idx_b", b)
        self._deploy: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def gate_ids(self) -> torch.Tensor:
        """argmax gate per output, uint8."""
        return self.weight.detach().argmax(-1).to(torch.uint8)

    def wiring(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(idx_a, idx_b): the fixed wiring, or each operand's argmax candidate."""
        if not self.learnable_wiring:
            return self.idx_a, self.idx_b
        return tuple(getattr(self, f"cand_{op}").gather(
            1, getattr(self, f"wire_{op}").detach().argmax(-1, keepdim=True)).squeeze(1)
            for op in ("a", "b"))

    def discretize(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a, b = self.wiring()
        return a.clone(), b.clone(), self.gate_ids()

    def _relaxed_choice(self, logits: torch.Tensor) -> torch.Tensor:
        """Softmax (or Gumbel-softmax) over the last dim; straight-through one-hot in the
        hard modes."""
        if self.mode.startswith("gumbel"):
            u = torch.rand_like(logits).clamp_(1e-10, 1 - 1e-10)
            logits = (logits - torch.log(-torch.log(u))) / self.gumbel_tau
        p = F.softmax(logits, dim=-1)
        if self.mode in ("hard", "gumbel_hard"):
            hard = F.one_hot(p.argmax(-1), p.shape[-1]).to(p.dtype)
            p = hard + p - p.detach()
        return p

    def _operands(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.learnable_wiring and self.training:
            return tuple((x[..., getattr(self, f"cand_{op}")] *
                          self._relaxed_choice(getattr(self, f"wire_{op}"))).sum(-1)
                         for op in ("a", "b"))
        a, b = self.wiring()
        return x[..., a], x[..., b]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._deploy is not None:  # export: the LogicLayer node
            return logic_layer(x, *self._deploy)
        a, b = self._operands(x)
        if self.training:
            return relaxed_gates(a, b, corner_values(self._relaxed_choice(self.weight)))
        # eval: the argmax gates' truth tables (exact for {0, 1} inputs)
        corners = truth_table(x.dtype, x.device)[self.weight.argmax(-1)]
        return relaxed_gates(a, b, corners)

    def prepare_export(self) -> None:
        self._deploy = self.discretize()

    def finish_export(self) -> None:
        self._deploy = None

    def extra_repr(self) -> str:
        wiring = ", learnable wiring" if self.learnable_wiring else ""
        return f"{self.in_features} -> {self.out_features}, mode={self.mode}{wiring}"


class GroupSum(nn.Module):
    """[N, k*g] -> [N, k]: sums k consecutive groups of g and divides by tau."""

    def __init__(self, k: int, tau: float = 1.0):
        super().__init__()
        if k < 1 or not (0 < tau < float("inf")):
            raise ValueError(f"GroupSum needs k >= 1 and finite tau > 0, got k={k}, tau={tau}")
        self.k, self.tau = k, float(tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.k:
            raise ValueError(f"GroupSum: width {x.shape[-1]} is not a multiple of k={self.k}")
        return x.reshape(*x.shape[:-1], self.k, -1).sum(-1) / self.tau

    def extra_repr(self) -> str:
        return f"k={self.k}, tau={self.tau}"


class GradFactor(nn.Module):
    """Identity forward, gradient times ``factor`` backward (torchlogix); exports as nothing."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = float(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and torch.is_grad_enabled() and x.requires_grad:
            return grad_scale(x, self.factor)
        return x

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


class ThresholdBinarize(nn.Module):
    """Real inputs [N, ...] -> bits [N, F*T]: feature f, threshold t -> 1.0 if x_f > t.

    Bits are ordered feature-major (the T thresholds of a feature are adjacent). With
    ``flatten=False`` images stay images: [N, C, H, W] -> [N, C*T, H, W] (for LogicConv2d). Exports as
    standard Greater + Cast. ``thresholds`` is an int T (equally spaced (j+1)/(T+1), for data
    in [0, 1]) or an explicit list."""

    def __init__(self, thresholds: int | Sequence[float] = 3, flatten: bool = True):
        super().__init__()
        if isinstance(thresholds, int):
            if thresholds < 1:
                raise ValueError("need at least one threshold")
            thresholds = [(j + 1) / (thresholds + 1) for j in range(thresholds)]
        self.register_buffer("thresholds", torch.tensor(list(thresholds), dtype=torch.float32))
        self.flatten = flatten

    @property
    def num_thresholds(self) -> int:
        return self.thresholds.numel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.flatten:  # [N, C, H, W] -> [N, C*T, H, W] (channel c, threshold t: c*T + t)
            bits = (x[:, :, None] > self.thresholds[:, None, None]).to(x.dtype)
            return bits.flatten(1, 2)
        x = x.flatten(1)
        return (x[..., None] > self.thresholds).to(x.dtype).flatten(1)


class FusedGateStack(nn.Module):
    """A stack of LogicDense layers deployed as one fused ``steport::logic_net`` call (one
    ``LogicNet`` node): subclasses list their layers in ``gate_layers()``. At export the
    concatenated indices / gate ids become buffers, so they land in the model as
    initializers."""

    _deploy: dict | None = None
    _FUSED = ("idx_a", "idx_b", "gate_ids")

    def gate_layers(self) -> list[LogicDense]:
        raise NotImplementedError

    def discretize(self) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(idx_a, idx_b, gate_id uint8) per gate layer."""
        return [m.discretize() for m in self.gate_layers()]

    def fused_arguments(self) -> dict:
        parts = self.discretize()
        args = {k: torch.cat([p[i] for p in parts]) for i, k in enumerate(self._FUSED)}
        args["layer_sizes"] = [int(p[0].numel()) for p in parts]
        return args

    def run_fused(self, h: torch.Tensor, num_classes: int, tau: float) -> torch.Tensor:
        args = self._deploy if self._deploy is not None else self.fused_arguments()
        return logic_net(h, args["idx_a"], args["idx_b"], args["gate_ids"],
                         args["layer_sizes"], num_classes, tau)

    def prepare_export(self) -> None:
        args = self.fused_arguments()
        for k in self._FUSED:  # buffers -> initializers
            self.register_buffer(f"_deploy_{k}", args[k], persistent=False)
        self._deploy = {k: getattr(self, f"_deploy_{k}") for k in self._FUSED}
        self._deploy["layer_sizes"] = args["layer_sizes"]

    def finish_export(self) -> None:
        for k in self._FUSED:
            self._buffers.pop(f"_deploy_{k}", None)
        self._deploy = None


class LogicNetwork(FusedGateStack):
    """[binarizer] -> LogicDense / GradFactor layers -> GroupSum, fused at eval and export.

    ``binarizer`` is any front end that yields bits, e.g. ``ThresholdBinarize`` or a
    convolutional stage (ThresholdBinarize(flatten=False), LogicConv2d, OrPool2d); its output
    is flattened.

    Training runs the relaxed layers. Eval runs the discrete network through the
    ``steport::logic_net`` op, exactly what the exported ``LogicNet`` node computes."""

    def __init__(self, layers: Sequence[nn.Module], group_sum: GroupSum,
                 binarizer: nn.Module | None = None):
        super().__init__()
        self.binarizer = binarizer
        self.layers = nn.ModuleList(layers)
        self.group_sum = group_sum

    def gate_layers(self) -> list[LogicDense]:
        return [m for m in self.layers if isinstance(m, LogicDense)]

    def check_exportable(self) -> None:
        from steport.errors import ExportError

        for m in self.layers:
            if not isinstance(m, (LogicDense, GradFactor, nn.Identity)):
                raise ExportError(f"LogicNetwork layers must be LogicDense or GradFactor, got "
                                  f"{type(m).__name__}")
        gates = self.gate_layers()
        if not gates:
            raise ExportError("LogicNetwork has no LogicDense layer")
        for prev, nxt in zip(gates, gates[1:]):
            if prev.out_features != nxt.in_features:
                raise ExportError(f"layer widths do not chain: {prev.out_features} -> "
                                  f"{nxt.in_features}")
        try:
            check_net_attrs(gates[0].in_features, sum(g.out_features for g in gates),
                            [g.out_features for g in gates], self.group_sum.k,
                            self.group_sum.tau)
        except ValueError as e:
            raise ExportError(str(e)) from None

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.binarizer(x) if self.binarizer is not None else x
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self._features(x)
        if self.training:
            for m in self.layers:
                h = m(h)
            return self.group_sum(h)
        return self.run_fused(h, self.group_sum.k, self.group_sum.tau)
