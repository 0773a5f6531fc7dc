"""The model-level benchmark runs end to end (tiny networks) and reports both ratios."""
from __future__ import annotations

from steport.bench import models
from steport.bench.common import Context


def test_models_bench_rows(monkeypatch):
    monkeypatch.setattr(models, "NETS", {"cnn28": models.NETS["cnn28"]})
    monkeypatch.setattr(models, "BATCHES", (2,))
    rows = models.run(Context(quick=True, threads=(1,), min_time=0.01, repeats=2))
    infer = {r.impl: r for r in rows if r.bench == "models"}
    variants = {f"steport-{v.name}" for v in models.VARIANTS if "cnn28" in v.archs}
    assert set(infer) == {"ort-fp32", "ort-int8"} | variants
    assert infer["ort-fp32"].baseline is None
    assert infer["steport-binary"].baseline == "ort-fp32"
    ratio = infer["ort-int8"].seconds / infer["steport-binary"].seconds
    assert abs(infer["steport-binary"].extra["vs_ort_int8"] - ratio) < 1e-12
    train = {r.impl for r in rows if r.bench == "models-train"}
    assert train == {"torch-fp32"} | variants
    assert all(r.seconds > 0 for r in rows)


def test_ort_int8_is_quantized(tmp_path):
    """The int8 twin really is ORT's QDQ int8 model (not the float one again)."""
    import numpy as np
    import torch

    from steport.export import export_model
    from steport.train.models import build_model

    m = build_model("cnn28", width=4).eval()
    export_model(m, torch.zeros(1, 1, 28, 28), tmp_path / "f.onnx")
    calib = [np.random.default_rng(0).standard_normal((4, 1, 28, 28), dtype=np.float32)]
    q = models.ort_int8(tmp_path / "f.onnx", tmp_path / "q.onnx", calib)
    ops = {n.op_type for n in q.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert any(i.data_type == 3 for i in q.graph.initializer)  # int8 weights
