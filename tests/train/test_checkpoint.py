"""Checkpoints: round trip, exact resume, and clear errors for incompatible files."""
from __future__ import annotations

import copy

import pytest
import torch

from steport.train.checkpoint import (FORMAT_VERSION, CheckpointError, load_checkpoint,
                                      read_checkpoint)
from steport.train.runner import train_recipe
from steport.train.recipes import load_recipe


def tiny_recipe(epochs=2, arch="float_cnn"):
    r = copy.deepcopy(load_recipe(arch))
    r["name"] = "tiny"
    r["model"]["kwargs"] = {"width": 4} if arch == "float_cnn" else dict(r["model"]["kwargs"], width=4)
    r["train"].update(epochs=epochs, batch_size=128, lr=0.01)
    return r


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    ckpt, metrics = train_recipe(tiny_recipe(), out, progress=False, deterministic=True)
    return out, ckpt, metrics


def test_round_trip(full_run):
    out, ckpt, metrics = full_run
    model, c = load_checkpoint(ckpt)
    assert c["model"]["arch"] == "float_cnn" and c["input_shape"] == [1, 8, 8]
    assert c["dataset"] == "digits" and c["train_state"]["epoch"] == 2
    assert (out / "tiny.best.pt").is_file() and (out / "tiny.json").is_file()
    assert len(metrics["history"]) == 2 and metrics["test_accuracy"] > 0.5
    x = torch.rand(5, 1, 8, 8)
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert model(x).shape == (5, 10) and not model.training


class Interrupted(Exception):
    pass


def test_resume_is_exact(full_run, tmp_path):
    """Crash after epoch 1 (its checkpoint written), resume to 2: same weights, bit for bit,
    and the same per-epoch history as the uninterrupted run."""
    _, full_ckpt, full_metrics = full_run

    def crash(epoch, stats):
        if epoch == 0:
            raise Interrupted

    with pytest.raises(Interrupted):
        train_recipe(tiny_recipe(), tmp_path, progress=False, deterministic=True, on_epoch=crash)
    assert read_checkpoint(tmp_path / "tiny.pt")["train_state"]["epoch"] == 1
    ckpt, metrics = train_recipe(tiny_recipe(), tmp_path, progress=False, deterministic=True,
                                 resume=tmp_path / "tiny.pt")
    a = torch.load(full_ckpt, weights_only=True)
    b = torch.load(ckpt, weights_only=True)
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    assert [h["loss"] for h in metrics["history"]] == [h["loss"] for h in full_metrics["history"]]
    sa, sb = a["train_state"]["optimizer"]["state"], b["train_state"]["optimizer"]["state"]
    assert all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)


def test_resume_errors(full_run, tmp_path):
    _, ckpt, _ = full_run
    with pytest.raises(CheckpointError, match="at epoch 2 of 2; pass --epochs"):
        train_recipe(tiny_recipe(), tmp_path, progress=False, resume=ckpt)
    with pytest.raises(CheckpointError, match="trained as arch 'float_cnn'.*builds 'pact_cnn'"):
        train_recipe(tiny_recipe(5, "pact_cnn"), tmp_path, progress=False, resume=ckpt)
    r = tiny_recipe(5)
    r["model"]["kwargs"]["width"] = 8
    with pytest.raises(CheckpointError, match="has model kwargs"):
        train_recipe(r, tmp_path, progress=False, resume=ckpt)
    p = _mutate(ckpt, tmp_path, lambda c: c["state_dict"].update({"0.weight": torch.zeros(1)}))
    with pytest.raises(CheckpointError, match="does not fit model float_cnn.*size mismatch"):
        train_recipe(tiny_recipe(5), tmp_path, progress=False, resume=p)


def _mutate(ckpt, tmp_path, fn):
    c = torch.load(ckpt, weights_only=True)
    fn(c)
    p = tmp_path / "m.pt"
    torch.save(c, p)
    return p


def test_incompatible_checkpoints(full_run, tmp_path):
    _, ckpt, _ = full_run
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="not a readable steport checkpoint"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not a steport checkpoint"):
        load_checkpoint(other)
    p = _mutate(ckpt, tmp_path, lambda c: c.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(CheckpointError, match="newer than this steport reads"):
        load_checkpoint(p)
    p = _mutate(ckpt, tmp_path, lambda c: c["model"].update(arch="no_such_arch"))
    with pytest.raises(CheckpointError, match="unknown model arch 'no_such_arch'"):
        load_checkpoint(p)
    p = _mutate(ckpt, tmp_path, lambda c: c["model"]["kwargs"].update(width=8))
    with pytest.raises(CheckpointError, match="does not fit model float_cnn.*size mismatch"):
        load_checkpoint(p)
    p = _mutate(ckpt, tmp_path, lambda c: c["state_dict"].pop("0.weight"))
    with pytest.raises(CheckpointError, match=r"missing \['0.weight'\]"):
        load_checkpoint(p)
    p = _mutate(ckpt, tmp_path, lambda c: c["model"]["kwargs"].update(depth=3))
    with pytest.raises(CheckpointError, match="cannot rebuild model 'float_cnn'"):
        load_checkpoint(p)
    p = _mutate(ckpt, tmp_path, lambda c: c.pop("input_shape"))
    with pytest.raises(CheckpointError, match="no valid input_shape"):
        load_checkpoint(p)
