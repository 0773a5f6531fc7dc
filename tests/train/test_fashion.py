"""Fashion-MNIST as a named data set (finding the files, clear errors on bad files), the
fashion recipes, the demo's per-recipe rows merged into one table with speed against the
float baseline and its ORT int8 twin, init_from retraining, model metadata and `steport
info`. Everything runs on small IDX files written here (real headers and magic numbers);
the real files are only used by test_fashion_real.py."""
from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import onnx
import pytest
import torch

from steport.train import data as data_mod
from steport.train.data import DataError, load_dataset, read_idx

FILES = data_mod.FASHION_MNIST_FILES


def _idx(arr: np.ndarray) -> bytes:
    arr = np.asarray(arr, np.uint8)
    return bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}i", *arr.shape) + arr.tobytes()


def write_fashion(root, n_train=64, n_test=32, gz=True, seed=0):
    """Four IDX files with class-dependent images (a learnable toy problem)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(y):  # class c lights row band c
            x[i, 2 * c + 4:2 * c + 7, 4:24] = 250
        for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
            raw = _idx(arr)
            name = root / f"{prefix}-{kind}-ubyte"
            if gz:
                (root / f"{name.name}.gz").write_bytes(gzip.compress(raw))
            else:
                name.write_bytes(raw)
    return root


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No real Fashion-MNIST in sight: the Debian folder, STEPORT_DATA and the user cache all
    point into tmp_path."""
    monkeypatch.setattr(data_mod, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "system")
    monkeypatch.delenv("STEPORT_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def test_missing_files_say_how_to_get_them(isolated):
    with pytest.raises(DataError) as e:
        load_dataset("fashion-mnist")
    msg = str(e.value)
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "zalandoresearch/fashion-mnist" in msg
    assert str(isolated / "cache" / "steport" / "fashion-mnist") in msg
    assert str(isolated / "system") in msg
    assert not data_mod.fashion_mnist_available()


def test_search_order(isolated, monkeypatch):
    write_fashion(isolated / "system", n_train=11)
    assert len(load_dataset("fashion-mnist").train) == 11
    write_fashion(isolated / "cache" / "steport" / "fashion-mnist", n_train=12)
    assert len(load_dataset("fashion_mnist").train) == 12
    write_fashion(isolated / "env", n_train=13, gz=False)
    monkeypatch.setenv("STEPORT_DATA", str(isolated / "env"))
    assert len(load_dataset("fashion-mnist").train) == 13
    write_fashion(isolated / "env" / "fashion-mnist", n_train=14)
    assert len(load_dataset("fashion-mnist").train) == 14
    write_fashion(isolated / "explicit", n_train=15)
    d = load_dataset("fashion-mnist", root=str(isolated / "explicit"), train_limit=5)
    assert d.name == "fashion_mnist" and d.input_shape == (1, 28, 28) and len(d.train) == 5
    assert data_mod.fashion_mnist_available()


def test_explicit_root_with_a_file_missing(isolated):
    root = write_fashion(isolated / "part")
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\[\.gz\] not found.*"
                                        r"apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", root=root)
    # an incomplete folder in the search path is skipped, not half-read
    write_fashion(isolated / "system")
    (isolated / "system" / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="were not found"):
        load_dataset("fashion-mnist")


def test_wrong_image_size(isolated):
    root = isolated / "small"
    root.mkdir()
    for prefix, n in (("train", 4), ("t10k", 2)):
        (root / f"{prefix}-images-idx3-ubyte").write_bytes(_idx(np.zeros((n, 8, 8))))
        (root / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx(np.zeros(n)))
    with pytest.raises(DataError, match=r"images in .*small are 8x8, Fashion-MNIST's are 28x28"):
        load_dataset("fashion-mnist", root=root)


def test_gzip_detected_by_content(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    p = tmp_path / "images-no-suffix"
    p.write_bytes(gzip.compress(_idx(arr)))
    np.testing.assert_array_equal(read_idx(p), arr)


def test_truncated_and_corrupt_gzip_name_the_file(tmp_path):
    full = gzip.compress(_idx(np.zeros((50, 28, 28), np.uint8)))
    cut = tmp_path / "train-images-idx3-ubyte.gz"
    cut.write_bytes(full[:len(full) // 2])
    with pytest.raises(DataError, match=rf"{cut}: .*truncated gzip"):
        read_idx(cut)
    bad = tmp_path / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(full[:10] + b"\xff" * 40 + full[50:])
    with pytest.raises(DataError, match=rf"{bad}: .*corrupt gzip"):
        read_idx(bad)
    # truncated payload inside a valid gzip stream: the size check names the file
    short = tmp_path / "short.gz"
    short.write_bytes(gzip.compress(_idx(np.zeros((4, 28, 28), np.uint8))[:-10]))
    with pytest.raises(DataError, match=rf"{short}: IDX dims \(4, 28, 28\) need 3136"):
        read_idx(short)


def test_wrong_magic_and_count_mismatch_name_the_file(isolated):
    root = write_fashion(isolated / "d", gz=False)
    img = root / "train-images-idx3-ubyte"
    raw = bytearray(img.read_bytes())
    raw[0] = 8
    img.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=rf"{img}: not an IDX file \(bad magic"):
        load_dataset("fashion-mnist", root=root)
    write_fashion(root, gz=False)
    lab = root / "t10k-labels-idx1-ubyte"
    lab.write_bytes(_idx(np.zeros(7)))
    with pytest.raises(DataError, match=rf"{lab}: \(7,\) labels for 32 images"):
        load_dataset("fashion-mnist", root=root)


def test_fashion_recipes_fit_28x28():
    """Every built-in fashion recipe loads and its model takes a 28x28 batch."""
    from steport.train.runner import _check_input_shape
    from steport.pipeline import select_recipes
    from steport.train.models import build_model
    from steport.train.recipes import load_recipe

    names = select_recipes("fashion-mnist")
    assert names[0] == "fashion_float_cnn"  # the baseline runs first
    fams = set()
    for n in names:
        r = load_recipe(n)
        assert r["data"]["name"] == "fashion_mnist" and r.get("description")
        fams.add(r["family"])
        kw = dict(r["model"]["kwargs"], num_classes=10, in_channels=1)
        ds = type("D", (), {"input_shape": (1, 28, 28), "num_classes": 10, "name": "f"})
        _check_input_shape(build_model(r["model"]["arch"], **kw), r["model"]["arch"], ds)
        if r.get("init_from"):  # retraining recipes come after the run they start from
            assert names.index(r["init_from"]) < names.index(n)
    assert fams == {"float", "quant", "binary", "approx", "logic"}
    assert not any(n.startswith("fashion_") for n in select_recipes("digits"))


def test_latent_clip():
    from steport.train.layers import BinaryConv2d, BinaryLinear

    conv = BinaryConv2d(4, 4, 3, padding=1, latent_clip=1.0)
    with torch.no_grad():
        conv.weight.mul_(50)
    conv.apply_constraints()
    assert conv.weight.abs().max() <= 1.0 and conv.weight.abs().max() == 1.0
    lin = BinaryLinear(4, 4)  # no clip: untouched
    with torch.no_grad():
        lin.weight.fill_(3.0)
    lin.apply_constraints()
    assert (lin.weight == 3.0).all()
    with pytest.raises(ValueError, match="latent_clip"):
        BinaryLinear(4, 4, latent_clip=0)


def _recipe(path, name, family, arch, kwargs, epochs=1, lr=0.01, **extra):
    r = {"name": name, "family": family, "model": {"arch": arch, "kwargs": kwargs},
         "data": {"name": "fashion-mnist"}, "train": {"epochs": epochs, "batch_size": 16,
                                                      "lr": lr}, **extra}
    p = path / f"{name}.yaml"
    import yaml

    p.write_text(yaml.safe_dump(r))
    return str(p)


@pytest.fixture
def small_fashion(isolated, monkeypatch):
    write_fashion(isolated / "data")
    monkeypatch.setenv("STEPORT_DATA", str(isolated / "data"))
    return isolated


def test_fit_applies_latent_clip(small_fashion):
    from steport.train.runner import train_recipe
    from steport.train.recipes import load_recipe

    r = load_recipe(_recipe(small_fashion, "b", "binary", "binary_cnn28",
                            {"width": 4, "latent_clip": 0.05}, lr=0.5))
    ckpt, _ = train_recipe(r, small_fashion / "runs", progress=False)
    sd = torch.load(ckpt, weights_only=False)["state_dict"]
    binary_weights = [v for k, v in sd.items() if k.endswith("weight") and v.ndim == 4
                      and v.shape[1] > 1]
    assert binary_weights and all(w.abs().max() <= 0.05 + 1e-7 for w in binary_weights)


def test_demo_rows_merge_with_speed_vs_float_and_int8(small_fashion, capsys):
    from steport.cli import main
    from steport.pipeline import load_rows, run_demo

    out = small_fashion / "report"
    fl = _recipe(small_fashion, "tiny_float", "float", "cnn28", {"width": 4})
    bi = _recipe(small_fashion, "tiny_binary", "binary", "binary_cnn28",
                 {"width": 4, "latent_clip": 1.0})
    assert run_demo(str(out), recipes=[fl], epochs=1, progress=False) == 0
    assert run_demo(str(out), recipes=[bi], epochs=1, progress=False) == 0
    rows = {r["recipe"]: r for r in load_rows(out)}
    assert set(rows) == {"tiny_float", "tiny_binary"}  # the second run merged, not replaced
    f, b = rows["tiny_float"], rows["tiny_binary"]
    assert f["int8_accuracy"] is not None and f["int8_bytes"] > 0
    assert (out / "tiny_float.int8.onnx").is_file()
    for k in ("speedup_vs_fp32_b1", "speedup_vs_int8_b1", "speedup_vs_fp32_b64",
              "speedup_vs_int8_b64"):
        assert b[k] > 0, k
    assert b["fp32_baseline_ms_b1_p50"] > 0 and b["int8_baseline_ms_b64_p50"] > 0
    for r in (f, b):
        assert r["status"] == "ok" and r["verify"] and r["measured_at"].endswith("UTC")
        assert r["cpu"] and r["steport_version"] and r["train_seconds"] > 0
        assert abs(r["ort_accuracy"] - r["torch_accuracy"]) <= 1 / 32 + 1e-9
    md = (out / "report.md").read_text()
    assert "| tiny_binary | binary | fashion_mnist |" in md and "× ORT int8 b=1" in md
    assert "tiny_float → ORT int8" in md and "CPU 1:" in md
    assert "Published results" in md and "0.934" in md  # the data set README's 2 Conv+BN
    # a rerun with --reuse takes the finished checkpoint instead of training again
    assert run_demo(str(out), recipes=[bi], epochs=1, progress=False, reuse=True) == 0
    assert "reusing the finished run" in capsys.readouterr().out
    # a fresh full run drops old rows
    assert run_demo(str(out), recipes=[fl], epochs=1, progress=False, fresh=True) == 0
    assert [r["recipe"] for r in load_rows(out)] == ["tiny_float"]

    # exported model metadata and `steport info`
    model = onnx.load(str(out / "tiny_binary.onnx"))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["steport.recipe"] == "tiny_binary" and meta["steport.dataset"] == "fashion_mnist"
    assert meta["steport.family"] == "binary" and float(meta["steport.accuracy"]) == pytest.approx(
        b["torch_accuracy"], abs=1e-4)
    assert meta["steport.version"] and meta["steport.epochs"] == "1"
    capsys.readouterr()
    assert main(["info", str(out / "tiny_binary.onnx")]) == 0
    text = capsys.readouterr().out
    for s in ("recipe          tiny_binary", "dataset         fashion_mnist", "accuracy",
              "version", "ai.steport.binary::BinaryConv2d v1", "inputs          input"):
        assert s in text, (s, text)
    assert main(["info", "--json", str(out / "tiny_float.onnx")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["custom_ops"] == {} and info["metadata"]["steport.recipe"] == "tiny_float"


def test_info_bad_paths(tmp_path, capsys):
    from steport.cli import main

    assert main(["info", str(tmp_path / "nope.onnx")]) == 2
    assert "no such file" in capsys.readouterr().err
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00garbage\xff" * 10)
    assert main(["info", str(junk)]) == 2
    err = capsys.readouterr().err
    assert "not an ONNX model" in err and "Traceback" not in err
    assert main(["info", str(tmp_path)]) == 2


def test_init_from_keeps_the_multiplier(small_fashion):
    from steport.train.checkpoint import CheckpointError
    from steport.train.runner import train_recipe
    from steport.train.models import build_model
    from steport.train.recipes import load_recipe

    runs = small_fashion / "runs"
    kw = {"width": 4, "per_channel": True, "act_range": "observed", "mode": "lut"}
    ex = load_recipe(_recipe(small_fashion, "ex", "approx", "approx_cnn28",
                             dict(kw, multiplier=None)))
    rt = load_recipe(_recipe(small_fashion, "rt", "approx", "approx_cnn28",
                             dict(kw, multiplier="drum_k4"), init_from="ex"))
    with pytest.raises(CheckpointError, match="train ex first"):
        train_recipe(rt, runs, progress=False)
    ex_ckpt, _ = train_recipe(ex, runs, progress=False)
    ckpt, m = train_recipe(rt, runs, progress=False)
    assert 0.0 <= m["init_accuracy"] <= 1.0
    sd = torch.load(ckpt, weights_only=False)["state_dict"]
    drum = build_model("approx_cnn28", width=4, multiplier="drum_k4").state_dict()
    exact = torch.load(ex_ckpt, weights_only=False)["state_dict"]
    assert torch.equal(sd["0.lut"], drum["0.lut"]) and not torch.equal(sd["0.lut"],
                                                                        exact["0.lut"])
    bad = load_recipe(_recipe(small_fashion, "bad", "binary", "binary_cnn28", {"width": 4},
                              init_from="ex"))
    with pytest.raises(CheckpointError, match="does not fit the model"):
        train_recipe(bad, runs, progress=False)
