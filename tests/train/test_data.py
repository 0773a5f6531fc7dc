"""Loaders read small IDX / CIFAR files written here (real headers and magic numbers)."""
from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from steport.train.data import DataError, load_dataset, read_idx


def write_idx(path, arr: np.ndarray, gz: bool) -> None:
    arr = np.asarray(arr, np.uint8)
    raw = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}i", *arr.shape) + arr.tobytes()
    if gz:
        with gzip.open(f"{path}.gz", "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def write_mnist(root, n_train=12, n_test=5, hw=(28, 28), gz=True, seed=0):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    sets = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, *hw), dtype=np.uint8)
        y = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(root / f"{prefix}-images-idx3-ubyte", x, gz)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", y, gz)
        sets[prefix] = (x, y)
    return sets


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_mnist_idx(tmp_path, gz, name):
    sets = write_mnist(tmp_path, gz=gz)
    d = load_dataset(name, root=str(tmp_path))
    assert d.name == name and d.input_shape == (1, 28, 28) and d.num_classes == 10
    assert d.train.x.shape == (12, 1, 28, 28) and d.train.x.dtype == torch.float32
    assert d.test.y.dtype == torch.int64
    np.testing.assert_allclose(d.train.x[:, 0].numpy(), sets["train"][0] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(d.test.y.numpy(), sets["t10k"][1])
    small = load_dataset(name, root=str(tmp_path), train_limit=4, test_limit=2)
    assert len(small.train) == 4 and len(small.test) == 2


def test_mnist_torchvision_layout(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw", hw=(8, 8))
    assert load_dataset("mnist", root=tmp_path).input_shape == (1, 8, 8)


def test_idx_errors(tmp_path):
    with pytest.raises(DataError, match="needs data.kwargs.root"):
        load_dataset("mnist")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("mnist", root=tmp_path / "nope")
    write_mnist(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.*not found"):
        load_dataset("mnist", root=tmp_path)
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x12\x34\x08\x01\x00\x00\x00\x02ab")
    with pytest.raises(DataError, match="bad magic"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 2]) + struct.pack(">2i", 3, 3) + b"\0" * 8)
    with pytest.raises(DataError, match="need 9 data bytes, file has 8"):
        read_idx(short)
    notgz = tmp_path / "x.gz"
    notgz.write_bytes(b"plain")
    with pytest.raises(DataError, match="cannot read"):
        read_idx(notgz)


def test_mnist_label_count_mismatch(tmp_path):
    write_mnist(tmp_path, gz=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3), gz=False)
    with pytest.raises(DataError, match=r"\(3,\) labels for 12 images"):
        load_dataset("mnist", root=tmp_path)


def write_cifar(root, n=4, seed=0):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        y = rng.integers(0, 10, n).tolist()
        with open(root / name, "wb") as f:
            pickle.dump({b"data": x, b"labels": y, b"batch_label": name.encode()}, f)
        out[name] = (x, y)
    return out


def test_cifar10(tmp_path):
    batches = write_cifar(tmp_path / "cifar-10-batches-py")
    d = load_dataset("cifar10", root=tmp_path)
    assert d.input_shape == (3, 32, 32) and d.train.x.shape == (20, 3, 32, 32)
    assert d.test.x.dtype == torch.float32 and len(d.test) == 4
    x0, y0 = batches["data_batch_1"]
    # channel 0 of image 0 is the first 1024 bytes, row-major
    want = (x0[0, :1024].reshape(32, 32) / 255.0 - 0.4914) / 0.2470
    np.testing.assert_allclose(d.train.x[0, 0].numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(d.train.y[:4].numpy(), y0)


def test_cifar10_errors(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(DataError, match="missing data_batch_3"):
        load_dataset("cifar10", root=tmp_path)
    (tmp_path / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="data_batch_3: not a CIFAR-10 python batch"):
        load_dataset("cifar10", root=tmp_path)
    with open(tmp_path / "data_batch_3", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(DataError, match="uint8 N x 3072"):
        load_dataset("cifar10", root=tmp_path)


def test_unknown_dataset_and_kwargs():
    with pytest.raises(DataError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet")
    with pytest.raises(DataError, match="bad data.kwargs for dataset 'digits'"):
        load_dataset("digits", root="/x")


def test_digits_default():
    d = load_dataset("digits")
    assert d.input_shape == (1, 8, 8) and d.train.x.dtype == torch.float32
    assert 0.0 <= float(d.train.x.min()) and float(d.train.x.max()) <= 1.0


def test_train_on_idx_files(tmp_path):
    """Recipe data section -> loader -> training; a model that cannot take the image size
    fails before training with a clear message."""
    from steport.train.runner import train_recipe

    recipe = {"name": "m", "model": {"arch": "float_cnn", "kwargs": {"width": 4}},
              "data": {"name": "mnist", "kwargs": {"root": str(tmp_path / "small")}},
              "train": {"epochs": 1, "batch_size": 8}}
    write_mnist(tmp_path / "small", n_train=16, n_test=8, hw=(8, 8))
    _, m = train_recipe(recipe, tmp_path / "out", progress=False)
    assert m["history"][0]["epoch"] == 1
    ck = torch.load(tmp_path / "out" / "m.pt", weights_only=True)
    assert ck["dataset"] == "mnist" and ck["data"]["kwargs"]["root"] == str(tmp_path / "small")
    write_mnist(tmp_path / "big", n_train=4, n_test=2)
    recipe["data"]["kwargs"]["root"] = str(tmp_path / "big")
    with pytest.raises(ValueError, match=r"'float_cnn' does not accept mnist inputs of shape "
                                         r"\(1, 28, 28\)"):
        train_recipe(recipe, tmp_path / "out", progress=False)
