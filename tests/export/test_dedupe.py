"""Identical large initializers are stored once (one multiplier LUT for every layer)."""
from __future__ import annotations

import numpy as np
import onnx
import torch

from steport.export import export_model
from steport.train.models import build_model

from ..conftest import assert_bitexact, run_fallback, run_steport


def test_one_lut_for_all_layers():
    torch.manual_seed(0)
    model = build_model("approx_cnn", width=8, multiplier="drum_k4")
    model.train()
    with torch.no_grad():
        model(torch.rand(16, 1, 8, 8))
    model.eval()
    proto = export_model(model, torch.rand(2, 1, 8, 8))
    luts = [i for i in proto.graph.initializer if list(i.dims) == [256, 256]]
    assert len(luts) == 1
    users = [n for n in proto.graph.node if luts[0].name in n.input]
    assert len(users) == 3, "every approximate layer reads the one LUT"
    x = np.random.default_rng(0).random((5, 1, 8, 8), dtype=np.float32)
    assert_bitexact(run_steport(proto, {"input": x})[0], run_fallback(proto, {"input": x})[0])
    with torch.no_grad():
        assert_bitexact(run_steport(proto, {"input": x})[0], model(torch.from_numpy(x)).numpy())


def test_distinct_tensors_stay_distinct():
    lin = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.Linear(32, 32))
    with torch.no_grad():
        lin[1].weight.copy_(lin[0].weight)  # tied values: shared; biases differ: kept
    proto = export_model(lin, torch.randn(2, 32))
    sizes = sorted(tuple(i.dims) for i in proto.graph.initializer)
    assert sizes.count((32, 32)) == 1 and sizes.count((32,)) == 2
    onnx.checker.check_model(proto, full_check=True)
