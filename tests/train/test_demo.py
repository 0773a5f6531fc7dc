"""`steport demo` on a subset, 1 epoch: report, plots, and a failing recipe reported."""
from __future__ import annotations

import json

from steport.train.demo import run_demo


def test_demo_subset_with_failure(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text(f"family: test\nmodel: {{arch: float_cnn}}\n"
                   f"data: {{name: mnist, kwargs: {{root: {tmp_path / 'none'}}}}}\n")
    out = tmp_path / "report"
    rc = run_demo(str(out), recipes=["pact_cnn", str(bad)], epochs=1, progress=False)
    assert rc == 1  # the broken recipe makes the job fail, after the others ran
    rows = {r["recipe"]: r for r in json.loads((out / "report.json").read_text())}
    ok = rows["pact_cnn"]
    assert ok["status"] == "ok" and ok["verify"], ok
    assert abs(ok["ort_accuracy"] - ok["torch_accuracy"]) < 0.02
    assert ok["onnx_bytes"] > 0 and ok["latency_ms_b1_p50"] > 0
    assert rows["broken"]["status"] == "train" and "does not exist" in rows["broken"]["error"]
    md = (out / "report.md").read_text()
    assert "| pact_cnn | quant | digits |" in md and "FAILED at train" in md
    for png in ("accuracy.png", "model_size.png", "latency.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
        assert f"({png})" in md
