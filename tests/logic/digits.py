"""Shared by the logic tests: train a model-zoo logic net on digits, export it, and check
that ORT (steport kernels) reproduces the PyTorch discrete eval bit for bit."""
from __future__ import annotations

import torch

from steport.export import export_model

from ..conftest import assert_bitexact, run_steport


def train_export_digits(tmp_path, arch: str, epochs: int, min_acc: float, **kwargs):
    """-> (data, model in eval mode, test accuracy, PyTorch logits, exported ModelProto)."""
    from steport.train.data import load_digits
    from steport.train.loop import FitConfig, evaluate, fit
    from steport.train.models import build_model

    data = load_digits()
    model = build_model(arch, **kwargs)
    fit(model, data, FitConfig(epochs=epochs, lr=0.05, progress=False))
    acc = evaluate(model, data.test)
    assert acc > min_acc, f"{arch}: digits accuracy {acc}"
    model.eval()
    x = data.test.x
    with torch.no_grad():
        ref = model(x).numpy()
    proto = export_model(model, x[:2], tmp_path / f"{arch}.onnx")
    got = run_steport(proto, {"input": x.numpy()})[0]
    assert_bitexact(got, ref, "ORT vs PyTorch discrete")
    assert (got.argmax(1) == data.test.y.numpy()).mean() == acc
    return data, model, acc, ref, proto
