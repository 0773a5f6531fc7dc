"""Serving: `steport serve` under N concurrent loopback clients, dynamic batching vs
batch-1 (each request run alone). Row.seconds = wall seconds per request (1/throughput);
p50/p99 latency, throughput and errors are in Row.extra.

Models: a memory-bound fp32 MLP (4096 -> 4096 -> 4096, 128 MiB of weights: a batch-1 call
reads every weight for one row, so merging requests is where batching pays off) and, from
a checkout, the tests' models of two families (small: there the HTTP/JSON work of the
Python server and the load generator, on the same 2 cores, dominates and batching cannot
help)."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from .common import Context, Row


def _heavy_mlp(folder: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from steport.registry import IR_VERSION, ONNX_OPSET

    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((4096, 4096)) * 0.02).astype(np.float32)
    w2 = (rng.standard_normal((4096, 4096)) * 0.02).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "W2"], ["y"])], "heavy_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4096])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4096])],
        [numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(w2, "W2")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
                          ir_version=IR_VERSION)
    path = folder / "heavy_mlp.onnx"
    onnx.save(m, path)
    return path


def _models(folder: Path, quick: bool) -> dict[str, Path]:
    models = {"heavy_mlp": _heavy_mlp(folder)}
    root = Path(__file__).resolve().parent.parent
    if (root / "tests" / "deploy" / "models.py").is_file():  # a checkout, not a wheel
        sys.path.insert(0, str(root))
        from tests.deploy.models import FAMILY_MODELS

        names = ["pact"] if quick else ["pact", "binary"]
        models.update({n: FAMILY_MODELS[n](folder)[0] for n in names})
    return models


def run(ctx: Context) -> list[Row]:
    from steport.deploy.loadtest import compare_batching

    rows: list[Row] = []
    seconds = 2.0 if ctx.quick else 8.0
    clients = 8 if ctx.quick else 16
    with tempfile.TemporaryDirectory() as d:
        for name, path in _models(Path(d), ctx.quick).items():
            for t in ctx.threads:
                res = compare_batching(path, clients=clients, seconds=seconds, threads=t)
                case = f"{name} clients={clients} rows=1"
                for impl, key, base in (("batch-1", "batch1", None),
                                        ("dynamic-batching", "batching", "batch-1")):
                    r = res[key]
                    rows.append(Row("serving", case, impl, t, 1.0 / max(r["throughput_rps"], 1e-9),
                                    baseline=base, items=1,
                                    extra={k: r[k] for k in ("p50_ms", "p99_ms", "throughput_rps",
                                                             "requests", "errors")}))
    return rows
