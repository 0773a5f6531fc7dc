"""`steport serve` as a process: graceful SIGTERM (in-flight request finishes, exit 0) and
a short loopback load test, batching vs batch-1 (numbers are not asserted: noisy machine)."""
from __future__ import annotations

import json
import threading
import time
import urllib.request

import numpy as np
import pytest

from steport.deploy.loadtest import compare_batching, spawn_server, stop_server


def test_sigterm_finishes_inflight_then_exits_0(model_dir):
    proc, port = spawn_server(model_dir[1]["float"][0], "--max-delay-ms", "1500", "--max-batch", "8")
    got = {}

    def call():
        body = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 5],
                                       "data": [1, 2, 3, 4, 5]}]}).encode()
        with urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{port}/v2/models/float/infer", body), timeout=30) as r:
            got["status"], got["body"] = r.status, json.loads(r.read())

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.5)  # the request now waits in the batcher (1.5 s delay)
    t_sig = time.monotonic()
    rc = stop_server(proc)
    t.join(10)
    assert rc == 0
    assert got.get("status") == 200 and got["body"]["outputs"][0]["shape"] == [1, 3]
    assert time.monotonic() - t_sig < 20
    events = [json.loads(x)["event"] for x in proc.log_lines if x.startswith("{")]
    assert events[0] == "start" and "signal" in events and events[-1] == "stopped"
    assert '"clean":true' in proc.log_lines[-1]


def test_short_load_batching_vs_batch1(model_dir):
    """Speed is not asserted (noisy machine), but what the servers did is: the batch-1
    server ran every request alone, the batching one merged requests (its /metrics count
    fewer executed batches than requests), and the reported numbers agree with each other."""
    max_batch = 8
    res = compare_batching(model_dir[1]["float"][0], clients=4, seconds=1.0, max_batch=max_batch,
                           max_delay_ms=5.0)
    for label in ("batching", "batch1"):
        r = res[label]
        assert r["requests"] > 0 and r["errors"] == 0 and r["exit_code"] == 0, res
        assert np.isfinite(r["p99_ms"]) and r["p99_ms"] >= r["p50_ms"]
        assert r["throughput_rps"] == pytest.approx(r["requests"] / r["seconds"], rel=1e-3)
        # every measured request was executed (warm-up excluded), once
        assert r["executed_batches"] * r["mean_batch_rows"] == pytest.approx(r["requests"]), r
    assert res["batch1"]["mean_batch_rows"] == 1.0
    assert 1.0 < res["batching"]["mean_batch_rows"] <= max_batch, res["batching"]
    assert res["throughput_ratio"] == pytest.approx(
        res["batching"]["throughput_rps"] / res["batch1"]["throughput_rps"], rel=1e-9)
