"""Regressions for what the fuzzers found (docs/hardening.md "Findings")."""
from __future__ import annotations

import numpy as np
import torch

from steport.registry import get
from steport.train.ops.logic import logic_net

from ..conftest import run_steport
from .cases import Case, build_model


def test_logic_net_torch_op_empty_batch():
    """steport::logic_net reshaped with -1, ambiguous for 0 rows; the kernel was right."""
    ia = torch.tensor([0, 1, 0, 1], dtype=torch.int64)
    g = torch.tensor([1, 6, 7, 14], dtype=torch.uint8)
    y = logic_net(torch.zeros(0, 2), ia, ia, g, [4], 2, 1.0)
    assert y.shape == (0, 2)
    case = Case(get("logic", "LogicNet"), {"X": np.zeros((0, 2), np.float32)},
                {"idx_a": ia.numpy(), "idx_b": ia.numpy(), "gate_ids": g.numpy()},
                {"layer_sizes": [4], "num_classes": 2}, y.numpy())
    assert run_steport(build_model(case, check=True), case.feeds)[0].shape == (0, 2)


def test_logic_net_fallback_applies_tau_default():
    """The LogicNet fallback body referenced 'tau' without a default: a node omitting tau
    (registry default 1.0) failed onnx.checker and stock ORT; the kernel was right."""
    from ..conftest import run_fallback

    ia = np.array([0, 1, 0, 1], np.int64)
    g = np.array([1, 6, 7, 14], np.uint8)
    x = np.array([[0, 1], [1, 1], [1, 0]], np.float32)
    case = Case(get("logic", "LogicNet"), {"X": x}, {"idx_a": ia, "idx_b": ia, "gate_ids": g},
                {"layer_sizes": [4], "num_classes": 2}, out_rank=2)
    model = build_model(case, check=True)
    ref = logic_net(*map(torch.from_numpy, (x, ia, ia, g)), [4], 2, 1.0).numpy()
    np.testing.assert_array_equal(run_fallback(model, case.feeds)[0], ref)
    np.testing.assert_array_equal(run_steport(model, case.feeds)[0], ref)
