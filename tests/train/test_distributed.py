"""2-process DDP (gloo, 127.0.0.1, free port) matches 1-process training: same global batch,
same data order, loss scaled so DDP's gradient average is the global-batch mean. The model
has no BatchNorm (per-rank statistics on CPU would differ by design; see docs/training.md)."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from steport.train import distributed
from steport.train.runner import train_recipe
from steport.train.models import model_names, register_model

if "test_ddp_mlp" not in model_names():
    @register_model("test_ddp_mlp")
    def _mlp(in_channels: int = 1, num_classes: int = 10, hidden: int = 32) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 64, hidden), nn.ReLU(),
                             nn.Linear(hidden, num_classes))


RECIPE = {"name": "ddp", "family": "test", "model": {"arch": "test_ddp_mlp", "kwargs": {}},
          "data": {"name": "digits", "kwargs": {}},
          # 1347 train samples / 64: the last global batch has 3 (ranks get 2 and 1)
          "train": {"epochs": 2, "batch_size": 64, "lr": 0.05, "optimizer": "sgd"}}


def worker(out: str) -> None:  # runs in each spawned rank (this module is re-imported there)
    train_recipe(RECIPE, out, progress=False)


def test_sharding_covers_global_batch():
    idx = torch.arange(7)
    parts = [distributed.local_slice(idx, distributed.DistInfo(r, 2, r)) for r in range(2)]
    assert torch.equal(torch.cat(parts), idx)


@pytest.fixture(autouse=True)
def _short_timeout(monkeypatch):
    monkeypatch.setenv("STEPORT_DIST_TIMEOUT", "120")  # a stuck rank fails the test, not CI


def test_two_process_ddp_matches_single(tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    train_recipe(RECIPE, single, progress=False)
    distributed.spawn(2, worker, str(ddp))
    a = torch.load(single / "ddp.pt", weights_only=True)
    b = torch.load(ddp / "ddp.pt", weights_only=True)
    torch.manual_seed(RECIPE["train"].get("seed", 0))
    init = _mlp().state_dict() if "_mlp" in globals() else None
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][k], v, atol=2e-5, rtol=1e-4, msg=k)
        if init is not None:  # training moved the weights far more than the tolerance
            assert (v - init[k]).abs().max() > 1e-2, k
    ma = json.loads((single / "ddp.json").read_text())
    mb = json.loads((ddp / "ddp.json").read_text())
    assert mb["world_size"] == 2 and ma["world_size"] == 1
    for ha, hb in zip(ma["history"], mb["history"]):
        assert abs(ha["loss"] - hb["loss"]) < 1e-4 and abs(ha["test_acc"] - hb["test_acc"]) < 0.01


def test_spawn_reports_worker_failure(tmp_path):
    bad = dict(RECIPE, data={"name": "mnist", "kwargs": {"root": str(tmp_path / "none")}})
    with pytest.raises(RuntimeError, match="worker process . failed: .*does not exist"):
        distributed.spawn(2, train_recipe, bad, str(tmp_path))
