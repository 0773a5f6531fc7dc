"""`steport train` end to end (subprocess) and its one-line errors (in process)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from steport.cli import main


def test_train_subprocess_and_resume(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "steport", "train", "float_cnn", "--epochs", "1", "--seed", "3",
           "--out", str(tmp_path), "--deterministic", "--device", "cpu"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "float_cnn: test accuracy" in r.stdout
    assert "epoch 1/1" in r.stdout + r.stderr  # progress / epoch summary
    m = json.loads((tmp_path / "float_cnn.json").read_text())
    assert m["epochs"] == 1 and m["history"][0]["test_acc"] > 0.3
    assert (tmp_path / "float_cnn.best.pt").is_file()
    ck = torch.load(tmp_path / "float_cnn.pt", weights_only=True)
    assert ck["train_state"]["fit"]["seed"] == 3 and ck["train_state"]["fit"]["deterministic"]
    # resume the same run to 2 epochs (in process: cheaper than another interpreter)
    assert main(["train", "float_cnn", "--epochs", "2", "--seed", "3", "--out", str(tmp_path),
                 "--resume", str(tmp_path / "float_cnn.pt"), "--no-progress"]) == 0
    assert len(json.loads((tmp_path / "float_cnn.json").read_text())["history"]) == 2


def _err(capsys, argv):
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc != 0
    assert len(err.splitlines()) == 1, err  # one line, no traceback
    return err


def test_cli_errors(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {arch: float_cnn}\ndata: {name: digits}\nbogus: 1\n")
    assert "steport train: error: unknown key(s) ['bogus']" in _err(capsys, ["train", str(bad)])
    assert "unknown recipe 'nope'" in _err(capsys, ["train", "nope"])
    miss = tmp_path / "mnist.yaml"
    miss.write_text(f"model: {{arch: float_cnn}}\ndata: {{name: mnist, kwargs: {{root: "
                    f"{tmp_path / 'none'}}}}}\n")
    assert "data root" in _err(capsys, ["train", str(miss), "--out", str(tmp_path)])
    notck = tmp_path / "x.pt"
    notck.write_bytes(b"nope")
    e = _err(capsys, ["train", "float_cnn", "--resume", str(notck), "--out", str(tmp_path)])
    assert "not a readable steport checkpoint" in e
    assert "--nproc must be >= 1" in _err(capsys, ["train", "float_cnn", "--nproc", "0"])
    assert "unknown device 'tpu'" in _err(capsys, ["train", "float_cnn", "--device", "tpu"])


def test_nproc_under_torchrun(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert "cannot be combined with torchrun" in _err(capsys, ["train", "float_cnn", "--nproc", "2"])
    monkeypatch.setenv("RANK", "5")
    assert "bad torchrun environment: RANK=5" in _err(capsys, ["train", "float_cnn"])


def test_cuda_unavailable(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    e = _err(capsys, ["train", "float_cnn", "--device", "cuda", "--epochs", "1"])
    assert "steport train: error: device 'cuda' requested but CUDA is not available" in e
