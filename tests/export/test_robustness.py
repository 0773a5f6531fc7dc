"""Export robustness: configurations the deployed ops cannot represent fail AT EXPORT with an
ExportError that names the layer (not later in ORT); and export is deterministic: the same
checkpoint exported twice (fresh model objects, and once in another process with another
hash seed) gives byte-identical .onnx files, for a model of each family."""
from __future__ import annotations

import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

from steport.export import ExportError, export_model, save
from steport.train import build_model
from steport.train.layers.approx import ApproxConv2d, ApproxLinear
from steport.train.layers.binary import BinaryLinear
from steport.train.layers.logic import GroupSum, LogicDense, LogicNetwork
from steport.train.layers.quant import PACT

ROOT = Path(__file__).resolve().parents[2]


def _export_fails(model: nn.Module, x: torch.Tensor, layer: str, cls: str, msg: str):
    with pytest.raises(ExportError) as ei:
        export_model(model.eval(), x)
    text = str(ei.value)
    assert f"layer '{layer}' ({cls})" in text and msg in text, text


# ---- unsupported configurations -----------------------------------------------------------

@pytest.mark.parametrize("alpha", [0.0, -1.5, float("nan"), float("inf")])
def test_pact_with_unusable_learned_alpha(alpha):
    """Training can drive alpha to <= 0 / NaN; the Pact kernel would reject it only at run
    time, so export refuses (PACT.check_exportable)."""
    m = nn.Sequential(OrderedDict(fc=nn.Linear(4, 4), clip=PACT(4, 2.0)))
    with torch.no_grad():
        m.clip.alpha.fill_(alpha)
    _export_fails(m, torch.randn(2, 4), "clip", "PACT", "alpha must be positive and finite")


def test_binary_reduction_longer_than_float_exact():
    k = (1 << 24) + 1  # |dot| <= K must be exact in float32
    m = nn.Sequential(OrderedDict(wide=BinaryLinear(k, 1)))
    _export_fails(m, torch.randn(1, k), "wide", "BinaryLinear", f"reduction length {k}")


def test_approx_float_mode_and_model_mode_without_lut():
    m = nn.Sequential(OrderedDict(fc=ApproxLinear(8, 4, mode="float")))
    _export_fails(m, torch.randn(2, 8), "fc", "ApproxLinear", "mode 'float' has no integer form")
    conv = ApproxConv2d(1, 2, 3, mode="model", model=lambda a, b: a * b)
    m = nn.Sequential(OrderedDict(body=nn.Sequential(OrderedDict(conv=conv))))
    _export_fails(m, torch.randn(1, 1, 5, 5), "body.conv", "ApproxConv2d", "without a LUT")


@pytest.mark.parametrize("case", ["chain", "groups", "foreign", "empty"])
def test_logic_network_unsupported(case):
    layers = {"chain": [LogicDense(8, 10), LogicDense(12, 6)],
              "groups": [LogicDense(8, 10)],
              "foreign": [LogicDense(8, 10), nn.ReLU()],
              "empty": []}[case]
    k = 3 if case == "groups" else 2
    msg = {"chain": "do not chain", "groups": "multiple of num_classes",
           "foreign": "must be LogicDense or GradFactor, got ReLU",
           "empty": "no LogicDense layer"}[case]
    m = nn.Sequential(OrderedDict(gates=LogicNetwork(layers, GroupSum(k))))
    _export_fails(m, torch.rand(2, 8), "gates", "LogicNetwork", msg)


# ---- determinism ----------------------------------------------------------------------------

FAMILIES = {
    "quant": ("pact_cnn", dict(width=4), (2, 1, 8, 8)),
    "binary": ("binary_cnn", dict(width=8), (2, 1, 8, 8)),
    "approx": ("approx_cnn", dict(width=4), (2, 1, 8, 8)),
    "logic": ("logic_net", dict(widths=(48, 40), thresholds=2), (2, 1, 8, 8)),
}


def _fresh(family: str, seed: int) -> nn.Module:
    arch, kw, _ = FAMILIES[family]
    torch.manual_seed(seed)  # a different seed each time: the checkpoint must carry it all
    return build_model(arch, **kw)


def _export_checkpoint(family: str, ckpt: Path, out: Path, seed: int) -> bytes:
    m = _fresh(family, seed)
    m.load_state_dict(torch.load(ckpt, weights_only=True))
    x = torch.linspace(-1, 1, torch.Size(FAMILIES[family][2]).numel()).reshape(FAMILIES[family][2])
    save(export_model(m.eval(), x), out)
    return out.read_bytes()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_same_checkpoint_exports_byte_identical(family, tmp_path):
    m = _fresh(family, 0)
    m.train()
    with torch.no_grad():  # one training-mode pass: BN statistics, observed ranges
        m(torch.randn(*FAMILIES[family][2]))
    ckpt = tmp_path / "model.pt"
    torch.save(m.state_dict(), ckpt)
    a = _export_checkpoint(family, ckpt, tmp_path / "a.onnx", seed=1)
    b = _export_checkpoint(family, ckpt, tmp_path / "b.onnx", seed=2)
    assert len(a) > 100 and a == b, f"{family}: exports differ ({len(a)} vs {len(b)} bytes)"
    if family == "quant":  # and in another process with another hash seed
        env = dict(os.environ, PYTHONHASHSEED="12345")
        code = ("import sys; from pathlib import Path; from tests.export.test_robustness import "
                "_export_checkpoint as f; f(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), 3)")
        subprocess.run([sys.executable, "-c", code, family, str(ckpt), str(tmp_path / "c.onnx")],
                       cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
        assert (tmp_path / "c.onnx").read_bytes() == a, f"{family}: export differs across processes"
