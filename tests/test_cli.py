"""The steport command: export + verify round trip, bench JSON, clear errors."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from steport.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "steport", *args], capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def pact_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    r = run_cli("train", "pact_cnn", "-o", str(out), "--epochs", "2", "--no-progress")
    assert r.returncode == 0, r.stderr
    return out / "pact_cnn.pt"


def test_export_and_verify(pact_checkpoint, tmp_path):
    onnx_path = tmp_path / "m.onnx"
    r = run_cli("export", str(pact_checkpoint), "-o", str(onnx_path))
    assert r.returncode == 0, r.stderr
    assert "ai.steport.quant::Pact" in r.stdout
    r = run_cli("verify", str(onnx_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ort+steport vs ort-fallback" in r.stdout and "pytorch" in r.stdout and "PASS" in r.stdout


def test_export_is_deterministic(pact_checkpoint, tmp_path):
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    for p in (a, b):
        assert run_cli("export", str(pact_checkpoint), "-o", str(p)).returncode == 0
    assert a.read_bytes() == b.read_bytes()


def test_verify_fails_on_mismatch(pact_checkpoint, tmp_path):
    """A model whose weights differ from its checkpoint must fail verification."""
    import onnx
    import numpy as np
    from onnx import numpy_helper

    onnx_path = tmp_path / "m.onnx"
    assert run_cli("export", str(pact_checkpoint), "-o", str(onnx_path)).returncode == 0
    m = onnx.load(onnx_path)
    init = max(m.graph.initializer, key=lambda t: np.prod(t.dims))
    arr = numpy_helper.to_array(init).copy()
    arr += 1.0
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    onnx.save(m, onnx_path)
    r = run_cli("verify", str(onnx_path))
    assert r.returncode == 1 and "FAIL" in r.stdout


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["export", str(bad), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "not a readable steport checkpoint" in capsys.readouterr().err
    assert main(["train", "no_such_recipe"]) == 2
    assert "unknown recipe" in capsys.readouterr().err


def test_bench_writes_ratios(tmp_path):
    out = tmp_path / "bench.json"
    r = run_cli("bench", "--quick", "--only", "quant", "--threads", "1", "--json", str(out))
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert data["machine"]["cores"] >= 1
    rows = [x for x in data["rows"] if x["impl"] == "steport"]
    assert rows
    key = ("bench", "case", "threads")
    for x in data["rows"]:  # each ratio is its case's baseline time over this row's time
        if x["baseline"] is None:
            assert x["speedup_vs_baseline"] == 1.0
            continue
        base = [b for b in data["rows"] if [b[k] for k in key] == [x[k] for k in key]
                and b["impl"] == x["baseline"]]
        assert len(base) == 1, x
        assert x["speedup_vs_baseline"] == pytest.approx(base[0]["seconds"] / x["seconds"])
    # the printed table: a header, then one line per row with its ratio or "baseline"
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["bench", "case", "thr", "impl"] and "vs baseline" in lines[0]
    table = lines[1:1 + len(data["rows"])]
    assert len(table) == len(data["rows"])
    for line, x in zip(table, data["rows"]):
        assert line.split()[0] == x["bench"] and x["impl"][:26] in line  # as table() cuts it
        want = "baseline" if x["baseline"] is None else f"{x['speedup_vs_baseline']:.2f}x"
        assert want in line.split(), (line, want)
    md = out.with_suffix(".md").read_text()
    assert "### pact" in md and "| n=" in md
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
