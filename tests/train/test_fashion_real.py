"""Real-data smoke test: the actual Fashion-MNIST files (Debian's dataset-fashion-mnist, or
STEPORT_DATA / the user cache) through the whole demo pipeline on a subset, one epoch. CI
installs the package (.ci/run); without it this test is skipped with the reason, and the
rest of the suite (small written IDX files) still covers the code."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from steport.train.data import fashion_mnist_available, load_dataset

pytestmark = pytest.mark.skipif(
    not fashion_mnist_available(),
    reason="Fashion-MNIST files not found (apt-get install dataset-fashion-mnist, or see "
           "docs/training.md); real-data smoke test skipped")


def test_real_files():
    d = load_dataset("fashion-mnist")
    assert (len(d.train), len(d.test), d.input_shape) == (60000, 10000, (1, 28, 28))
    # the published split is balanced: 6000 / 1000 images per class
    assert np.bincount(d.train.y.numpy()).tolist() == [6000] * 10
    assert np.bincount(d.test.y.numpy()).tolist() == [1000] * 10
    assert 0.0 <= float(d.train.x.min()) and float(d.train.x.max()) <= 1.0


def test_demo_on_a_subset(tmp_path):
    from steport.pipeline import load_rows, run_demo
    from steport.train.recipes import load_recipe

    r = load_recipe("fashion_float_cnn")
    r["name"] = "smoke_fashion_float_cnn"
    r["data"]["kwargs"] = {"train_limit": 2000, "test_limit": 500}
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(r))
    assert run_demo(str(tmp_path / "out"), recipes=[str(path)], epochs=1, progress=False) == 0
    (row,) = load_rows(tmp_path / "out")
    assert row["status"] == "ok" and row["verify"] and row["data"] == "fashion_mnist"
    assert row["torch_accuracy"] > 0.4  # 16 Adam steps on real images: far above chance
    assert abs(row["ort_accuracy"] - row["torch_accuracy"]) <= 2 / 500
    assert row["int8_accuracy"] > 0.3 and row["int8_bytes"] < row["onnx_bytes"]
