"""docs/ops.md "Memory bounds": a model whose declared sizes would need more than the
configured limit (`steport.session(max_bytes=...)` or STEPORT_MAX_BYTES) is refused with a
clear error naming the node, before onnxruntime allocates; the same op within the limit
runs."""
from __future__ import annotations

import numpy as np
import pytest

import steport
from steport.memory import MemoryLimitError, node_bytes

from .cases import bases, model_of, node_of

LIMIT = 1 << 20  # 1 MiB: every base model fits, every case below does not


def _huge_cases():
    b = bases()
    out = {}
    for op in ("Pact", "BinaryGemm", "ApproxMatMulInteger", "LogicLayer", "LogicNet"):
        base = b[op].copy()
        first = next(iter(base.feeds))
        base.declared[first] = [1 << 40] + list(base.feeds[first].shape[1:])
        out[f"{op}:declared-2^40-rows"] = (model_of(base), op)
    # outputs far beyond the inputs: padding at the registry maximum on a 5x5 input
    base = b["BinaryConv2d"].copy()
    base.declared["X"] = [1, 3, 5, 5]
    out["BinaryConv2d:pads-2^16"] = (model_of(base, nodes=[node_of(base, pads=[1 << 16] * 4)],
                                              fallback=False), "BinaryConv2d")
    base = b["ApproxConvInteger"].copy()
    base.declared["X"] = [1, 2, 5, 5]
    out["ApproxConvInteger:pads-1024"] = (model_of(base, nodes=[node_of(base, pads=[1024] * 4)],
                                                   fallback=False), "ApproxConvInteger")
    return out


HUGE = _huge_cases()


@pytest.mark.parametrize("case", sorted(HUGE))
def test_declared_sizes_past_the_limit_are_refused(case):
    model, op = HUGE[case]
    with pytest.raises(MemoryLimitError, match=rf"node 'node0' \(ai\.steport\.\w+::{op}\).*over "
                                                rf"the limit of 1,048,576 bytes"):
        steport.session(model, max_bytes=LIMIT)


def test_limit_from_the_environment(monkeypatch):
    model, _ = HUGE["LogicNet:declared-2^40-rows"]
    monkeypatch.setenv("STEPORT_MAX_BYTES", str(LIMIT))
    with pytest.raises(MemoryLimitError, match="LogicNet"):
        steport.session(model)
    monkeypatch.setenv("STEPORT_MAX_BYTES", "lots")
    with pytest.raises(ValueError, match="STEPORT_MAX_BYTES"):
        steport.session(model)


@pytest.mark.parametrize("op", sorted(bases()))
def test_every_op_within_the_limit_runs(op):
    base = bases()[op].copy()
    base.declared = {k: list(v.shape) for k, v in base.feeds.items()}
    model = model_of(base)
    (label, need), = node_bytes(model)
    inputs = sum(np.asarray(v).nbytes for v in [*base.feeds.values(), *base.inits.values()])
    assert inputs < need < LIMIT, (label, need)  # inputs + output, and the output counted
    steport.session(model, max_bytes=LIMIT).run(None, base.feeds)


def test_conv_bound_counts_the_output_not_the_padding():
    """O(input + output + weights + LUT): pads = 1024 on a 5x5 input is a 2053x2053 output
    (the bound), whatever a kernel's scratch (im2col of padding) would have been."""
    model, _ = HUGE["ApproxConvInteger:pads-1024"]
    (label, need), = node_bytes(model)
    out_bytes = 1 * 3 * 2053 * 2053 * 4
    assert out_bytes < need < out_bytes + (1 << 20), (label, need)
