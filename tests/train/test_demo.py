"""`steport demo` on a subset, 1 epoch: report, plots, and a failing recipe reported."""
from __future__ import annotations

import json

from steport.pipeline import run_demo


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


def test_plots_and_multiplier_guard(tmp_path, monkeypatch):
    """Plots from synthetic rows; multiplier error comes from the multiplier library."""
    from steport import pipeline

    from steport.train.multipliers import get_multiplier

    recipe = {"family": "approx", "model": {"kwargs": {"multiplier": "drum_k4"}}}
    assert pipeline._multiplier_error(recipe) == ("MRED%", get_multiplier("drum_k4").metrics()["MRED%"])
    exact = {"family": "approx", "model": {"kwargs": {"multiplier": None}}}
    assert pipeline._multiplier_error(exact) == ("MRED%", 0.0)
    assert pipeline._multiplier_error({"family": "quant", "model": {"kwargs": {}}}) is None
    base = dict(status="ok", data="digits", torch_accuracy=0.9, ort_accuracy=0.9, verify=True,
                parameters=10, onnx_bytes=2048, latency_ms_b1_p50=0.1, latency_ms_b64_p50=1.0,
                train_seconds=1.0)
    rows = [dict(base, recipe="a", family="float"),
            dict(base, recipe="b", family="approx", multiplier="m1", multiplier_metric="MRED%",
                 multiplier_error=2.5),
            {"recipe": "c", "family": "logic", "status": "export", "error": "ExportError: x"}]
    plots = pipeline._plots(rows, tmp_path)
    assert plots == ["accuracy.png", "model_size.png", "latency.png", "multiplier_error.png"]
    md = pipeline._markdown(rows, plots)
    assert "| c | logic |  | FAILED at export: ExportError: x |" in md
