"""Logic-gate networks: relaxation vs truth tables, discrete PyTorch vs ORT kernel (each ISA)
vs fallback body (bit-exact), GradFactor, digits training -> export -> ORT, bad inputs."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidGraph
import torch

import steport
from steport.export import ExportError, export_model
from steport.registry import get
from steport.train.layers.logic import (GradFactor, GroupSum, LogicDense, LogicNetwork,
                                        ThresholdBinarize)
from steport.train.ops.logic import (corner_values, logic_layer, logic_net, relaxed_gate,
                                     relaxed_gates)

from ..conftest import assert_bitexact, run_fallback, run_steport
from ..helpers import single_node_model
from .digits import train_export_digits

NET, LAYER = get("logic", "LogicNet"), get("logic", "LogicLayer")
BATCHES = [1, 63, 64, 65, 200]


def truth(gid: int, a: int, b: int) -> int:
    return (gid >> (3 - (2 * a + b))) & 1


# ---- relaxation ---------------------------------------------------------------------

@pytest.mark.parametrize("gid", range(16))
def test_relaxation_is_multilinear_extension(gid):
    a = torch.tensor([0.0, 0.0, 1.0, 1.0, 0.3, 0.7, 0.5, 0.9])
    b = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.6, 0.2, 0.5, 0.1])
    got = relaxed_gate(gid, a, b)
    want = sum(truth(gid, i, j) * (a if i else 1 - a) * (b if j else 1 - b)
               for i in (0, 1) for j in (0, 1))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    for k in range(4):  # corners are the truth table exactly
        assert got[k].item() == truth(gid, int(a[k]), int(b[k]))


def test_named_relaxations():
    a, b = torch.rand(100), torch.rand(100)
    torch.testing.assert_close(relaxed_gate(1, a, b), a * b)
    torch.testing.assert_close(relaxed_gate(6, a, b), a + b - 2 * a * b)
    torch.testing.assert_close(relaxed_gate(7, a, b), a + b - a * b)
    torch.testing.assert_close(relaxed_gate(14, a, b), 1 - a * b)
    torch.testing.assert_close(relaxed_gate(3, a, b), a)


def test_mixture_equals_sum_of_ops():
    a, b = torch.rand(5, 7), torch.rand(5, 7)
    p = torch.softmax(torch.randn(7, 16), -1)
    want = sum(p[:, i] * relaxed_gate(i, a, b) for i in range(16))
    torch.testing.assert_close(relaxed_gates(a, b, corner_values(p)), want)


def test_modes_and_residual_init():
    x = torch.rand(8, 20)
    for mode in ("soft", "hard", "gumbel", "gumbel_hard"):
        layer = LogicDense(20, 30, mode=mode)
        y = layer(x)
        y.sum().backward()
        assert y.shape == (8, 30) and layer.weight.grad is not None
        assert torch.isfinite(layer.weight.grad).all()
    layer = LogicDense(20, 30, init="residual", residual_logit=5.0)
    assert (layer.gate_ids() == 3).float().mean() > 0.9  # pass-through gate A
    layer.eval()
    xb = (torch.rand(8, 20) > 0.5).float()
    torch.testing.assert_close(layer(xb), xb[:, layer.idx_a])


def test_hard_mode_forward_is_discrete():
    layer = LogicDense(10, 12, mode="hard", init="random")
    xb = (torch.rand(4, 10) > 0.5).float()
    want = logic_layer(xb, layer.idx_a, layer.idx_b, layer.gate_ids())
    # hard + p - p.detach() is one-hot up to float rounding
    torch.testing.assert_close(layer(xb), want, rtol=0, atol=1e-6)


def test_unique_wiring_uses_every_input():
    layer = LogicDense(100, 60, connections="unique")
    used = torch.cat([layer.idx_a, layer.idx_b]).unique()
    assert used.numel() == 100
    assert (layer.idx_a != layer.idx_b).all()


def test_grad_factor():
    x = torch.randn(10, requires_grad=True)
    gf = GradFactor(2.5)
    y = gf(x)
    assert torch.equal(y, x)
    g = torch.randn(10)
    y.backward(g)
    torch.testing.assert_close(x.grad, 2.5 * g, rtol=0, atol=0)
    gf.eval()
    assert gf(x) is x


def test_group_sum():
    x = torch.arange(12.0)[None]
    torch.testing.assert_close(GroupSum(3, 2.0)(x), torch.tensor([[3.0, 11.0, 19.0]]))
    with pytest.raises(ValueError, match="multiple"):
        GroupSum(5)(x)


# ---- discrete: PyTorch vs kernel vs fallback ----------------------------------------

def random_net(n_in=37, sizes=(70, 130, 40), seed=0):
    rng = np.random.default_rng(seed)
    widths = [n_in, *sizes[:-1]]
    ia = np.concatenate([rng.integers(0, w, s) for w, s in zip(widths, sizes)]).astype(np.int64)
    ib = np.concatenate([rng.integers(0, w, s) for w, s in zip(widths, sizes)]).astype(np.int64)
    g = np.concatenate([np.arange(16), rng.integers(0, 16, sum(sizes) - 16)]).astype(np.uint8)
    return ia, ib, g, list(sizes)


def net_model(ia, ib, g, sizes, k, tau, check=True):
    return single_node_model(NET, {"X": np.zeros((1, 1), np.float32)},
                             {"idx_a": ia, "idx_b": ib, "gate_ids": g}, out_ranks=[2],
                             check=check, layer_sizes=sizes, num_classes=k, tau=tau)


def torch_net(x, ia, ib, g, sizes, k, tau):
    return logic_net(torch.from_numpy(x), torch.from_numpy(ia), torch.from_numpy(ib),
                     torch.from_numpy(g), sizes, k, tau).numpy()


@pytest.mark.parametrize("n", BATCHES)
def test_logic_net_bitexact(n, isa):
    ia, ib, g, sizes = random_net()
    x = np.random.default_rng(n).random((n, 37)).astype(np.float32)
    x[x < 0.5] = 0.0  # nonzero values (not only 1.0) read as bit 1
    x[0, :3] = [np.nan, -0.0, -2.0]
    for tau, gint in ((0.7, False), (3.0, True)):
        gg = g.astype(np.int64) if gint else g
        ref = torch_net(x, ia, ib, gg, sizes, 4, tau)
        m = net_model(ia, ib, gg, sizes, 4, tau)
        assert_bitexact(run_steport(m, {"X": x})[0], ref, f"kernel[{isa}] n={n}")
        assert_bitexact(run_fallback(m, {"X": x})[0], ref, f"fallback n={n}")


@pytest.mark.parametrize("n", BATCHES)
def test_logic_layer_bitexact(n, isa):
    rng = np.random.default_rng(n)
    ia, ib = rng.integers(0, 29, 300), rng.integers(0, 29, 300)
    g = rng.integers(0, 16, 300).astype(np.uint8)
    x = (rng.random((n, 29)) > 0.4).astype(np.float32)
    ref = logic_layer(*map(torch.from_numpy, (x, ia, ib, g))).numpy()
    for a in (0, 1):
        for b in (0, 1):  # every gate id sees every input pair
            assert all(ref[(x[:, ia[j]] == a) & (x[:, ib[j]] == b), j].tolist() ==
                       [truth(int(g[j]), a, b)] * int(((x[:, ia[j]] == a) & (x[:, ib[j]] == b)).sum())
                       for j in range(300))
    m = single_node_model(LAYER, {"X": x}, {"idx_a": ia, "idx_b": ib, "gate_ids": g}, out_ranks=[2])
    assert_bitexact(run_steport(m, {"X": x})[0], ref, f"kernel[{isa}]")
    assert_bitexact(run_fallback(m, {"X": x})[0], ref, "fallback")


def test_threads_agree_large_batch():
    ia, ib, g, sizes = random_net(sizes=(300, 300, 100))
    x = (np.random.default_rng(3).random((5000, 37)) > 0.5).astype(np.float32)
    m = net_model(ia, ib, g, sizes, 10, 1.0)
    ref = torch_net(x, ia, ib, g, sizes, 10, 1.0)
    assert_bitexact(run_steport(m, {"X": x}, threads=1)[0], ref)
    assert_bitexact(run_steport(m, {"X": x}, threads=2)[0], ref)


@pytest.mark.parametrize("g", [1, 15, 16, 17, 31, 33, 255, 256, 257, 1037])
def test_group_sum_counter(g, isa):
    """Units per class around the carry-save tree's 16-unit steps and the plane boundaries;
    class 0 is all ones (count = g, the top plane), class 2 all zeros."""
    k, n = 3, 130
    ia, ib, gates, sizes = random_net(n_in=40, sizes=(50, k * g), seed=g)
    gates[50:50 + g] = 15
    gates[50 + 2 * g:] = 0
    x = (np.random.default_rng(g).random((n, 40)) > 0.5).astype(np.float32)
    ref = torch_net(x, ia, ib, gates, sizes, k, 1.0)
    assert ref[:, 0].tolist() == [g] * n and not ref[:, 2].any()
    assert_bitexact(run_steport(net_model(ia, ib, gates, sizes, k, 1.0), {"X": x})[0], ref,
                    f"kernel[{isa}] g={g}")


def test_wide_layers_use_the_narrow_block(isa):
    """Layers wider than 4096 units switch AVX-512 to 256-sample blocks."""
    ia, ib, g, sizes = random_net(sizes=(4100, 4097, 60))
    x = (np.random.default_rng(5).random((300, 37)) > 0.5).astype(np.float32)
    ref = torch_net(x, ia, ib, g, sizes, 3, 2.0)
    assert_bitexact(run_steport(net_model(ia, ib, g, sizes, 3, 2.0), {"X": x})[0], ref, isa)


def test_gate_inputs_fed_at_run_time():
    """idx_a / idx_b / gate_ids as graph inputs: validated and planned on every call (the
    constant-initializer plan cache is not used), so each call may bring another network."""
    ia, ib, g, sizes = random_net()
    x = (np.random.default_rng(2).random((70, 37)) > 0.5).astype(np.float32)
    feeds = {"X": x, "idx_a": ia, "idx_b": ib, "gate_ids": g}
    m = single_node_model(NET, feeds, out_ranks=[2], layer_sizes=sizes, num_classes=4, tau=1.5)
    sess = steport.session(m.SerializeToString())
    assert_bitexact(sess.run(None, feeds)[0], torch_net(x, ia, ib, g, sizes, 4, 1.5))
    ia2, ib2, g2, _ = random_net(seed=7)
    feeds2 = {"X": x, "idx_a": ia2, "idx_b": ib2, "gate_ids": g2}
    assert_bitexact(sess.run(None, feeds2)[0], torch_net(x, ia2, ib2, g2, sizes, 4, 1.5))
    bad = dict(feeds2, idx_b=np.where(np.arange(ib2.size) == 80, 70, ib2))
    with pytest.raises(Exception, match=r"layer 1: idx_b\[10\] = 70 is out of range \[0, 70\)"):
        sess.run(None, bad)


def test_constant_plan_checks_input_width():
    """A plan built from constant initializers still checks X's width on every call."""
    ia, ib, g, sizes = random_net()
    sess = steport.session(net_model(ia, ib, g, sizes, 4, 1.0).SerializeToString())
    narrow = int(max(ia[:70].max(), ib[:70].max()))
    with pytest.raises(Exception, match=rf"layer 0: idx_.\[\d+\] = {narrow} is out of range"):
        sess.run(None, {"X": np.ones((2, narrow), np.float32)})
    wide = np.ones((2, 50), np.float32)  # wider inputs are fine: extra features unused
    assert_bitexact(sess.run(None, {"X": wide})[0], torch_net(wide, ia, ib, g, sizes, 4, 1.0))


def test_empty_batch():
    ia, ib, g, sizes = random_net()
    m = net_model(ia, ib, g, sizes, 4, 1.0)
    x = np.zeros((0, 37), np.float32)
    assert run_steport(m, {"X": x})[0].shape == (0, 4)
    assert run_fallback(m, {"X": x})[0].shape == (0, 4)  # regression: Reshape with -1
    layer = single_node_model(LAYER, {"X": x}, {"idx_a": ia[:5], "idx_b": ib[:5],
                                                "gate_ids": g[:5]}, out_ranks=[2])
    assert run_steport(layer, {"X": x})[0].shape == (0, 5)
    assert run_fallback(layer, {"X": x})[0].shape == (0, 5)


# ---- training -> export -> ORT ------------------------------------------------------

def test_digits_train_export_ort(tmp_path):
    data, model, _, ref, proto = train_export_digits(tmp_path, "logic_net", 10, 0.85,
                                                     widths=[1000, 1000], tau=10.0)
    ops = [(n.domain, n.op_type) for n in proto.graph.node]
    assert ("ai.steport.logic", "LogicNet") in ops
    assert not any(op == "LogicLayer" for _, op in ops)
    x = data.test.x
    assert_bitexact(run_fallback(proto, {"input": x[:70].numpy()})[0], ref[:70], "fallback")
    # discretize() matches the exported initializers
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    node = next(n for n in proto.graph.node if n.op_type == "LogicNet")
    parts = model.discretize()
    assert np.array_equal(inits[node.input[3]], torch.cat([p[2] for p in parts]).numpy())
    assert not any(k.startswith("_deploy") for k in model.state_dict())


def test_standalone_logic_dense_exports_logic_layer(tmp_path):
    model = torch.nn.Sequential(ThresholdBinarize([0.5]), LogicDense(16, 24, init="random"))
    x = torch.rand(5, 16)
    model.eval()
    proto = export_model(model, x, tmp_path / "l.onnx")
    assert any(n.op_type == "LogicLayer" for n in proto.graph.node)
    xs = torch.rand(65, 16)
    with torch.no_grad():
        ref = model(xs).numpy()
    assert_bitexact(run_steport(proto, {"input": xs.numpy()})[0], ref)


def test_learnable_wiring(tmp_path):
    gen = torch.Generator().manual_seed(0)
    layer = LogicDense(20, 30, connections="learnable", candidates=3, mode="hard", generator=gen)
    fixed = LogicDense(20, 30, connections="unique", generator=torch.Generator().manual_seed(0))
    a, b = layer.wiring()
    assert (a == layer.cand_a[:, 0]).all() and (b == layer.cand_b[:, 0]).all()  # starts at unique
    assert len(torch.cat([a, b]).unique()) == 20
    with torch.no_grad():  # move some operands to other candidates
        layer.wire_a[:, 2] += 10 * (torch.arange(30) % 2)
        layer.weight.copy_(torch.randn(30, 16, generator=gen) * 3)
    ia, ib, g = layer.discretize()
    assert (ia[1::2] == layer.cand_a[1::2, 2]).all() and (ia[0::2] == layer.cand_a[0::2, 0]).all()
    xb = (torch.rand(9, 20, generator=gen) > 0.5).float()
    layer.train()
    y_train = layer(xb)  # hard mode: straight-through one-hots pick the discrete operands
    y_train.sum().backward()
    assert layer.wire_a.grad.abs().sum() > 0 and layer.wire_b.grad.abs().sum() > 0
    layer.eval()
    with torch.no_grad():
        want = logic_layer(xb, ia, ib, g)
        torch.testing.assert_close(layer(xb), want, atol=0, rtol=0)
    # hard + p - p.detach() is the one-hot up to rounding
    torch.testing.assert_close(y_train.detach(), want, atol=1e-6, rtol=0)
    proto = export_model(torch.nn.Sequential(layer), xb[:2], tmp_path / "lw.onnx")
    assert_bitexact(run_steport(proto, {"input": xb.numpy()})[0], want.numpy())
    net = LogicNetwork([layer, LogicDense(30, 20, connections="learnable", generator=gen)],
                       GroupSum(4, 2.0)).eval()
    with torch.no_grad():
        ref = net(xb).numpy()
    proto = export_model(net, xb[:2], tmp_path / "lwnet.onnx")
    assert_bitexact(run_steport(proto, {"input": xb.numpy()})[0], ref)
    assert fixed.idx_a.shape == (30,)
    with pytest.raises(ValueError, match="candidates"):
        LogicDense(4, 4, connections="learnable", candidates=0)


def test_check_exportable():
    bad = LogicNetwork([LogicDense(8, 10), LogicDense(12, 10)], GroupSum(2))
    with pytest.raises(ExportError, match="chain"):
        export_model(bad, torch.rand(2, 8))
    bad = LogicNetwork([LogicDense(8, 10)], GroupSum(3))
    with pytest.raises(ExportError, match="multiple of num_classes"):
        export_model(bad, torch.rand(2, 8))


# ---- bad inputs ---------------------------------------------------------------------

def test_bad_index_and_gate():
    ia, ib, g, sizes = random_net()
    x = np.ones((3, 37), np.float32)
    for which, val, msg in (("ia", 37, "idx_a.*out of range"), ("ib", -1, "idx_b.*out of range"),
                            ("ia2", 70, r"layer 1: idx_a.*out of range \[0, 70\)"),
                            ("g", 16, "gate id 16")):
        a, b, gg = ia.copy(), ib.copy(), g.copy()
        if which == "ia":
            a[5] = val
        elif which == "ia2":
            a[70 + 3] = val
        elif which == "ib":
            b[0] = val
        else:
            gg[9] = val
        with pytest.raises(Exception, match=msg):
            run_steport(net_model(a, b, gg, sizes, 4, 1.0, check=False), {"X": x})
        with pytest.raises(ValueError, match="out of range"):
            torch_net(x, a, b, gg, sizes, 4, 1.0)


def test_bad_sizes_and_attrs():
    ia, ib, g, sizes = random_net()
    x = np.ones((3, 37), np.float32)
    with pytest.raises(Exception, match="sum\\(layer_sizes\\)"):
        run_steport(net_model(ia, ib, g, [70, 130, 44], 4, 1.0, check=False), {"X": x})
    with pytest.raises(Exception, match="multiple of num_classes"):
        steport.session(net_model(ia, ib, g, sizes, 3, 1.0, check=False).SerializeToString())
    with pytest.raises(Exception, match="tau"):
        steport.session(net_model(ia, ib, g, sizes, 4, -1.0, check=False).SerializeToString())
    with pytest.raises(Exception, match="lengths differ"):
        run_steport(net_model(ia, ib[:-1], g, sizes, 4, 1.0, check=False), {"X": x})
    with pytest.raises(Exception, match="X must be 2-D|Invalid rank"):
        run_steport(net_model(ia, ib, g, sizes, 4, 1.0, check=False), {"X": np.ones(37, np.float32)})
    with pytest.raises(ValueError, match="multiple of num_classes"):
        torch_net(x, ia, ib, g, sizes, 3, 1.0)


def test_bad_dtypes():
    ia, ib, g, sizes = random_net()
    x = np.ones((3, 37), np.float32)
    with pytest.raises(Exception, match="gate_ids.*uint8 or int64"):
        run_steport(net_model(ia, ib, g.astype(np.int32), sizes, 4, 1.0, check=False), {"X": x})
    # ORT rejects int32 indices at session creation, from the registry's port types
    with pytest.raises(InvalidGraph, match=r"Type 'tensor\(int32\)' of input parameter \(idx_a\)"):
        run_steport(net_model(ia.astype(np.int32), ib, g, sizes, 4, 1.0, check=False), {"X": x})
    with pytest.raises(ValueError, match="gate_ids"):
        torch_net(x, ia, ib, g.astype(np.int32), sizes, 4, 1.0)
    with pytest.raises(ValueError, match="idx_a"):
        torch_net(x, ia.astype(np.int32), ib, g, sizes, 4, 1.0)


def test_discrete_ops_have_no_gradient():
    x = torch.ones(2, 4, requires_grad=True)
    y = logic_layer(x, torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([1, 6], dtype=torch.uint8))
    with pytest.raises(RuntimeError, match="no gradient"):
        y.sum().backward()


def test_opcheck():
    ia, ib, g, sizes = random_net()
    x = (torch.rand(5, 37) > 0.5).float()
    torch.library.opcheck(torch.ops.steport.logic_net.default,
                          (x, *map(torch.from_numpy, (ia, ib, g)), sizes, 4, 1.5),
                          test_utils=("test_schema", "test_faketensor"))


def test_bench_c_generator_matches_torch(tmp_path):
    """The benchmark's generated-C baseline (both GroupSum counters) computes the same net."""
    from steport.bench.logic import c_runner, c_source, compile_c
    ia, ib, g, sizes = random_net(sizes=(100, 3 * 37))
    x = (np.random.default_rng(4).random((130, 37)) > 0.5).astype(np.float32)
    ref = torch_net(x, ia, ib, g, sizes, 3, 1.5)
    lib = compile_c(c_source(37, sizes, ia, ib, g, 3), str(tmp_path))
    for fn in (lib.logic_net, lib.logic_net_csa):
        assert_bitexact(c_runner(fn, x, 3, 1.5, 1)(), ref)
