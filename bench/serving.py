"""Serving: `steport serve` under N concurrent loopback clients, dynamic batching vs
batch-1 (each request run alone). Row.seconds = wall seconds per request (1/throughput);
p50/p99 latency, throughput and errors are in Row.extra."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from .common import Context, Row


def _models(folder: Path) -> dict[str, Path]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.deploy.models import FAMILY_MODELS

    return {name: build(folder)[0] for name, build in FAMILY_MODELS.items()}


def run(ctx: Context) -> list[Row]:
    from steport.deploy.loadtest import compare_batching

    rows: list[Row] = []
    seconds = 2.0 if ctx.quick else 10.0
    clients = 8 if ctx.quick else 16
    with tempfile.TemporaryDirectory() as d:
        for name, path in _models(Path(d)).items():
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
