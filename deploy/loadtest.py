"""Bounded loopback load test for `steport serve` (stdlib + numpy only).

    python -m steport.deploy.loadtest MODEL.onnx [--clients 8] [--seconds 5] [--rows 1]

Starts the server in a subprocess on 127.0.0.1 (ephemeral port) twice, with dynamic
batching and without, drives N keep-alive clients for T seconds each, and prints p50/p99
latency, throughput, errors and the batching/batch-1 throughput ratio. Traffic goes only to
127.0.0.1; every loop is bounded in time and count."""
from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .protocol import V2_TO_NP


@dataclass
class LoadResult:
    clients: int
    seconds: float
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    throughput_rps: float
    rows_per_s: float

    def to_dict(self) -> dict:
        return asdict(self)


def spawn_server(target: str | os.PathLike, *args: str, timeout: float = 60.0,
                 python: str = sys.executable, module: str = "steport") -> tuple[subprocess.Popen, int]:
    """`steport serve TARGET --port 0 ARGS` in a subprocess; returns (process, port) once the
    JSON 'start' log line has come. stderr keeps being drained into proc.log_lines.
    module="steport.deploy" starts it without the other commands' imports (torch)."""
    proc = subprocess.Popen([python, "-m", module, "serve", str(target), "--host", "127.0.0.1",
                             "--port", "0", *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True, start_new_session=True)
    proc.log_lines = []  # type: ignore[attr-defined]
    port: list[int] = []
    started = threading.Event()

    def drain():
        for line in proc.stderr:
            proc.log_lines.append(line)  # type: ignore[attr-defined]
            if not port:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("event") == "start":
                    port.append(int(rec["port"]))
                    started.set()
        started.set()

    threading.Thread(target=drain, daemon=True).start()
    if not started.wait(timeout) or not port:
        stop_server(proc)
        raise RuntimeError("server did not start: " + "".join(proc.log_lines[-20:]))  # type: ignore[attr-defined]
    return proc, port[0]


def stop_server(proc: subprocess.Popen, timeout: float = 30.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def model_request(port: int, model: str, rows: int, seed: int = 0) -> tuple[bytes, dict]:
    """A binary-tensor infer request of `rows` random rows for the model's inputs."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", f"/v2/models/{model}")
    meta = json.loads(conn.getresponse().read())
    conn.close()
    rng = np.random.default_rng(seed)
    head, blobs = [], []
    for i in meta["inputs"]:
        shape = [rows if d == -1 and k == 0 else (1 if d == -1 else d) for k, d in enumerate(i["shape"])]
        arr = (rng.standard_normal(shape)).astype(V2_TO_NP[i["datatype"]])
        raw = arr.tobytes()
        head.append({"name": i["name"], "datatype": i["datatype"], "shape": shape,
                     "parameters": {"binary_data_size": len(raw)}})
        blobs.append(raw)
    h = json.dumps({"inputs": head, "parameters": {"binary_data_output": True}}).encode()
    return h + b"".join(blobs), {"Inference-Header-Content-Length": str(len(h)),
                                 "Content-Type": "application/octet-stream"}


def drive(port: int, model: str, *, clients: int = 8, seconds: float = 5.0, rows: int = 1,
          max_requests: int = 1_000_000) -> LoadResult:
    """N keep-alive clients send the same request back to back for `seconds`."""
    body, headers = model_request(port, model, rows)
    lat: list[list[float]] = [[] for _ in range(clients)]
    errs = [0] * clients
    stop_at = time.perf_counter() + seconds
    budget = max(1, max_requests // clients)

    def client(k: int):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            while time.perf_counter() < stop_at and len(lat[k]) + errs[k] < budget:
                t0 = time.perf_counter()
                try:
                    conn.request("POST", f"/v2/models/{model}/infer", body=body, headers=headers)
                    r = conn.getresponse()
                    r.read()
                    if r.status == 200:
                        lat[k].append(time.perf_counter() - t0)
                    else:
                        errs[k] += 1
                        if r.status == 503:
                            time.sleep(0.01)
                except (OSError, http.client.HTTPException):
                    errs[k] += 1
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        finally:
            conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    wall = time.perf_counter() - t0
    all_lat = np.array([x for xs in lat for x in xs]) * 1e3
    n = int(all_lat.size)
    return LoadResult(clients, round(wall, 3), n, int(sum(errs)),
                      float(np.percentile(all_lat, 50)) if n else float("nan"),
                      float(np.percentile(all_lat, 99)) if n else float("nan"),
                      n / wall, n * rows / wall)


def batch_stats(port: int, model: str) -> tuple[float, float]:
    """(executed batches, rows in them) so far, from the server's steport_batch_size
    histogram on /metrics."""
    from .metrics import parse_text

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        m = parse_text(r.read().decode())
    return (m.get(f'steport_batch_size_count{{model="{model}"}}', 0.0),
            m.get(f'steport_batch_size_sum{{model="{model}"}}', 0.0))


def compare_batching(model_path: str | os.PathLike, *, clients: int = 8, seconds: float = 5.0,
                     rows: int = 1, max_batch: int = 32, max_delay_ms: float = 2.0,
                     threads: int = 1) -> dict:
    """The same load against a server with dynamic batching and one without."""
    name = Path(model_path).name.removesuffix(".onnx")
    out = {}
    for label, extra in (("batching", ["--max-batch", str(max_batch), "--max-delay-ms", str(max_delay_ms)]),
                         ("batch1", ["--no-batching"])):
        proc, port = spawn_server(model_path, "--no-access-log", "--threads", str(threads), *extra)
        try:
            drive(port, name, clients=clients, seconds=min(1.0, seconds), rows=rows)  # warm-up
            before = batch_stats(port, name)
            res = drive(port, name, clients=clients, seconds=seconds, rows=rows).to_dict()
            after = batch_stats(port, name)
        finally:
            rc = stop_server(proc)
        # what the server executed during the measured run (its /metrics, warm-up excluded):
        # shows whether batching happened, whatever the timings say
        runs, executed_rows = after[0] - before[0], after[1] - before[1]
        out[label] = {**res, "exit_code": rc, "executed_batches": int(runs),
                      "mean_batch_rows": executed_rows / runs if runs else float("nan")}
    b, s = out["batching"]["throughput_rps"], out["batch1"]["throughput_rps"]
    out["throughput_ratio"] = b / s if s else float("nan")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rows", type=int, default=1, help="rows per request")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-delay-ms", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=1, help="ORT intra-op threads in the server")
    a = ap.parse_args(argv)
    res = compare_batching(a.model, clients=a.clients, seconds=a.seconds, rows=a.rows,
                           max_batch=a.max_batch, max_delay_ms=a.max_delay_ms, threads=a.threads)
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
