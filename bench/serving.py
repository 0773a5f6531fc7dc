"""Serving: `steport serve` under N concurrent loopback clients, dynamic batching vs
batch-1 (each request run alone). Row.seconds = wall seconds per request (1/throughput);
p50/p99 latency, throughput and errors are in Row.extra.

Models: a memory-bound fp32 MLP (4096 -> 4096 -> 4096, 128 MiB of weights: a batch-1 call
reads every weight for one row, so merging requests is where batching pays off) and, from
a checkout, the tests' models of two families (small: there the HTTP/JSON work of the
Python server and the load generator, on the same 2 cores, dominates and batching cannot
help)."""
from __future__ import annotations

import json
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


ENGINES = ("steport", "uvicorn-starlette", "kserve")
CLIENTS = (1, 16, 64)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(proc, port: int, timeout: float = 90.0) -> None:
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server on {port} not ready in {timeout}s")


def _start_engine(engine: str, path: Path) -> tuple[object, int, int | None]:
    """(process, HTTP port, gRPC port or None), 1 ORT thread, default batching policy."""
    import subprocess

    from steport.deploy.loadtest import spawn_server

    if engine == "steport":
        proc, port = spawn_server(path, "--no-access-log", "--threads", "1",
                                  module="steport.deploy")  # torch-free, as in the image
        grpc_port = next((json.loads(x).get("grpc_port") for x in proc.log_lines
                          if '"event":"start"' in x), None)
        return proc, port, grpc_port
    port = _free_port()
    if engine == "kserve":
        grpc_port = _free_port()
        cmd = ["-m", "steport.deploy", "serve", str(path), "--engine", "kserve", "--threads", "1",
               "--host", "127.0.0.1", "--port", str(port), "--grpc-port", str(grpc_port)]
    else:
        grpc_port = None
        cmd = ["-m", "steport.bench.serving_asgi", str(path), "--port", str(port)]
    proc = subprocess.Popen([sys.executable, *cmd], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    _wait_ready(proc, port)
    return proc, port, grpc_port


def _memory_mb(pid: int) -> dict:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0].lower() + "_mb"] = round(int(line.split()[1]) / 1024, 1)
    return out


def drive_grpc(port: int, model: str, *, clients: int, seconds: float, rows: int = 1) -> dict:
    """N tritonclient.grpc clients (one channel each) call ModelInfer back to back."""
    import threading
    import time

    import tritonclient.grpc as gc

    meta = gc.InferenceServerClient(f"127.0.0.1:{port}").get_model_metadata(model, as_json=True)
    spec = meta["inputs"][0]
    shape = [rows if int(d) == -1 and k == 0 else (1 if int(d) == -1 else int(d))
             for k, d in enumerate(spec["shape"])]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    lat: list[list[float]] = [[] for _ in range(clients)]
    errs = [0] * clients
    stop_at = time.perf_counter() + seconds

    def client(k: int):
        c = gc.InferenceServerClient(f"127.0.0.1:{port}")
        inp = gc.InferInput(spec["name"], shape, spec["datatype"])
        inp.set_data_from_numpy(x)
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            try:
                c.infer(model, [inp], client_timeout=30)
                lat[k].append(time.perf_counter() - t0)
            except Exception:  # noqa: BLE001 - counted
                errs[k] += 1
        c.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    wall = time.perf_counter() - t0
    all_lat = np.array([v for xs in lat for v in xs]) * 1e3
    n = int(all_lat.size)
    return {"requests": n, "errors": int(sum(errs)), "throughput_rps": n / wall,
            "p50_ms": float(np.percentile(all_lat, 50)) if n else float("nan"),
            "p99_ms": float(np.percentile(all_lat, 99)) if n else float("nan")}


def compare_engines(path: Path, *, clients=CLIENTS, seconds: float = 3.0, rounds: int = 2,
                    engines=ENGINES) -> list[dict]:
    """Every engine serves the same model at once (idle while another is measured); for
    each client count the engines take turns (order rotated each round), so load from the
    other users of the machine falls on all of them alike. HTTP with binary tensors for all;
    gRPC (tritonclient.grpc) for the engines that have it."""
    from steport.deploy.loadtest import drive, stop_server

    import importlib.util

    name = path.name.removesuffix(".onnx")
    needs = {"kserve": ("kserve",), "uvicorn-starlette": ("uvicorn", "starlette")}
    engines = [e for e in engines if all(importlib.util.find_spec(m) for m in needs.get(e, ()))]
    procs = {e: _start_engine(e, path) for e in engines}
    results: list[dict] = []
    try:
        for r in range(rounds):
            for c in clients:
                order = list(engines[r % len(engines):]) + list(engines[:r % len(engines)])
                for e in order:
                    proc, port, gport = procs[e]
                    drive(port, name, clients=c, seconds=0.5)  # warm-up
                    res = drive(port, name, clients=c, seconds=seconds).to_dict()
                    results.append({"engine": e, "protocol": "http", "clients": c, "round": r,
                                    **{k: res[k] for k in ("throughput_rps", "p50_ms", "p99_ms",
                                                           "requests", "errors")},
                                    **_memory_mb(proc.pid)})
                    if gport is not None:
                        res = drive_grpc(gport, name, clients=c, seconds=seconds)
                        results.append({"engine": e, "protocol": "grpc", "clients": c, "round": r,
                                        **res, **_memory_mb(proc.pid)})
    finally:
        for proc, _, _ in procs.values():
            stop_server(proc)
    return results


def run(ctx: Context) -> list[Row]:
    from steport.deploy.loadtest import compare_batching

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as d:
        models = _models(Path(d), quick=True)
        for name in ("pact", "heavy_mlp"):
            if name not in models or (ctx.quick and name == "heavy_mlp"):
                continue
            res = compare_engines(models[name], seconds=1.0 if ctx.quick else 3.0,
                                  rounds=1 if ctx.quick else 2,
                                  clients=(1, 16) if ctx.quick else CLIENTS)
            for r in res:
                rows.append(Row("serving-engines", f"{name} {r['protocol']} clients={r['clients']}"
                                f" round={r['round']}", r["engine"], 1,
                                1.0 / max(r["throughput_rps"], 1e-9), baseline="steport", items=1,
                                extra={k: v for k, v in r.items() if k not in ("engine",)}))
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


def engines_table(results: list[dict]) -> str:
    """Markdown: per model/protocol/clients, each engine's median over rounds."""
    import statistics

    keys = sorted({(r["model"], r["protocol"], r["clients"]) for r in results},
                  key=lambda k: (k[0], k[1], k[2]))
    lines = ["| model | protocol | clients | engine | req/s (rounds) | p50 ms | p99 ms | errors | RSS MB (peak) |",
             "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for model, proto, c in keys:
        for e in ENGINES:
            rs = [r for r in results if (r["model"], r["protocol"], r["clients"], r["engine"]) ==
                  (model, proto, c, e)]
            if not rs:
                continue
            rps = [r["throughput_rps"] for r in rs]
            lines.append(
                f"| {model} | {proto} | {c} | {e} | {statistics.median(rps):,.0f} "
                f"({', '.join(f'{x:,.0f}' for x in rps)}) | "
                f"{statistics.median(r['p50_ms'] for r in rs):.1f} | "
                f"{statistics.median(r['p99_ms'] for r in rs):.1f} | {sum(r['errors'] for r in rs)} | "
                f"{max(r['vmrss_mb'] for r in rs):.0f} ({max(r['vmhwm_mb'] for r in rs):.0f}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """python -m steport.bench.serving [--seconds 3] [--rounds 2] [--json F]: the engine
    comparison alone, as a markdown table (docs/deploy.md) and JSON."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--models", default="pact,heavy_mlp")
    ap.add_argument("--json", default="reports/serving_engines.json")
    a = ap.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as d:
        models = _models(Path(d), quick=True)
        for name in a.models.split(","):
            for r in compare_engines(models[name], seconds=a.seconds, rounds=a.rounds):
                results.append({"model": name, **r})
                print(json.dumps(results[-1]), file=sys.stderr)
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(results, indent=1))
    print(engines_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
