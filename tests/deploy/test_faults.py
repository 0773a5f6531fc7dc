"""Server faults on loopback (bounded in time): clients that vanish mid-request, slowloris
clients, bursts beyond the queue and connection limits, bad model files at start-up, and
SIGTERM under load. The server must answer or drop only the faulty client, keep serving
everyone else, and stay ready. (Queue-full with a held worker and the single-request
SIGTERM drain are in test_server.py / test_process.py.)"""
from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from steport.deploy.loadtest import spawn_server, stop_server

BODY = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 5],
                               "data": [1, 2, 3, 4, 5]}]}).encode()
INFER = "/v2/models/float/infer"


def post(port: int, body: bytes = BODY, timeout: float = 30) -> tuple[int, dict, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", INFER, body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), json.loads(r.read() or b"{}")
    finally:
        conn.close()


def ok(port: int) -> bool:
    st, _, d = post(port)
    return st == 200 and d["outputs"][0]["shape"] == [1, 3]


def ready(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/v2/health/ready")
        return conn.getresponse().status == 200
    finally:
        conn.close()


def closed_by_server(s: socket.socket) -> bool:
    """True once the server has closed (EOF / reset) or answered and closed."""
    try:
        data = s.recv(4096)
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    while data:  # an error response first (e.g. 408/400), then EOF
        try:
            data = s.recv(4096)
        except (ConnectionResetError, socket.timeout):
            break
    return True


def test_client_disconnects_mid_request(make_server):
    """Headers + part of the body, then close; and a full request whose client leaves before
    the answer. Neither hurts the server; later requests succeed."""
    srv = make_server({"threads": 1, "max_delay_ms": 300})
    for cut in (0, 1, len(BODY) // 2, len(BODY) - 1):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(BODY)}\r\n\r\n".encode() + BODY[:cut])
        s.close()
    for _ in range(3):  # complete request, client gone while it waits in the batcher
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(BODY)}\r\n\r\n".encode()
                  + BODY)
        s.shutdown(socket.SHUT_RDWR)
        s.close()
    # half a request line / half the headers, then gone
    for junk in (b"POS", b"POST /v2/models/float/infer HTTP/1.1\r\nHost: x\r\nContent-Le"):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(junk)
        s.close()
    assert ok(srv.port) and ready(srv.port)
    time.sleep(0.5)  # the abandoned requests' batches have run; the server still answers
    assert all(ok(srv.port) for _ in range(3))
    assert srv._httpd is not None and srv._thread.is_alive()


def test_slowloris_is_timed_out_while_others_are_served(make_server):
    """One client trickles header bytes (never finishing), another sends half the headers and
    stalls: both are cut off within the idle timeout (a header deadline, not per read), and
    meanwhile other clients are served normally."""
    srv = make_server({"threads": 1}, idle_timeout_s=1.0)
    trickle = socket.create_connection(("127.0.0.1", srv.port), timeout=0.2)
    stall = socket.create_connection(("127.0.0.1", srv.port), timeout=0.2)
    stall.sendall(f"POST {INFER} HTTP/1.1\r\nHost: x\r\n".encode())
    trickle.sendall(f"POST {INFER} HTTP/1.1\r\n".encode())
    t0 = time.monotonic()
    served = 0
    trickle_closed = stall_closed = None
    while time.monotonic() - t0 < 8 and (trickle_closed is None or stall_closed is None):
        if trickle_closed is None:
            try:
                trickle.sendall(b"X-Slow: 1\r\n")  # a byte every ~0.25 s resets a per-read timer
            except OSError:
                trickle_closed = time.monotonic() - t0
            else:
                if closed_by_server(trickle):
                    trickle_closed = time.monotonic() - t0
        if stall_closed is None and closed_by_server(stall):
            stall_closed = time.monotonic() - t0
        served += ok(srv.port)  # normal clients keep getting answers
    trickle.close()
    stall.close()
    assert stall_closed is not None and stall_closed < 5, stall_closed
    assert trickle_closed is not None and trickle_closed < 5, trickle_closed
    assert served >= 3 and ready(srv.port)


def test_burst_beyond_queue_limit_gets_503_and_server_stays_ready(make_server, model_dir):
    """60 concurrent requests into a queue of 2 while the model is held: the 3 that fit
    (1 running + 2 queued) get 200 once it is released, every other one 503 + Retry-After
    at once (no resets, no 500s); afterwards the server is ready and serves."""
    srv = make_server({"threads": 1, "max_queue": 2, "max_batch": 1})
    b = srv.repo.get("float").batcher  # the batcher bound m.run at start: hold it there
    real, gate = b.run, threading.Event()
    b.run = lambda feeds: (gate.wait(30), real(feeds))[1]
    try:
        with ThreadPoolExecutor(30) as ex:
            futs = [ex.submit(post, srv.port) for _ in range(60)]
            deadline = time.monotonic() + 30
            while sum(f.done() for f in futs) < 57 and time.monotonic() < deadline:
                time.sleep(0.02)
            gate.set()
            res = [f.result() for f in futs]
    finally:
        gate.set()
        b.run = real
    codes = [r[0] for r in res]
    print("burst", {c: codes.count(c) for c in set(codes)})
    assert set(codes) <= {200, 503}, codes
    assert codes.count(200) == 3 and codes.count(503) == 57, codes
    for st, h, d in res:
        if st == 503:
            assert h.get("Retry-After") == "1" and "queue is full" in d["error"]
    assert ready(srv.port) and ok(srv.port)


def test_connections_beyond_limit_evict_idle_then_503_when_all_busy(make_server):
    """At the connection limit, an idle connection (waiting for a request) gives its slot to
    the newcomer; only when every connection is running a request does a newcomer get 503."""
    srv = make_server({"threads": 1, "max_batch": 1, "max_queue": 8}, max_connections=3,
                      idle_timeout_s=5.0)
    held = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(3)]
    try:
        time.sleep(0.3)  # all three accepted and counted
        assert ok(srv.port)  # an idle one was evicted for it
        assert sum(closed_by_server(s) for s in held) >= 1
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and srv._httpd.active:  # the held ones' threads ended
        time.sleep(0.02)
    b = srv.repo.get("float").batcher
    real, gate = b.run, threading.Event()
    b.run = lambda feeds: (gate.wait(30), real(feeds))[1]
    try:
        with ThreadPoolExecutor(3) as ex:
            busy = [ex.submit(post, srv.port) for _ in range(3)]
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and srv._httpd.active < 3:
                time.sleep(0.02)
            time.sleep(0.2)
            st, h, d = post(srv.port, timeout=5)
            assert st == 503 and h.get("Retry-After") == "1" and "too many connections" in d["error"]
            gate.set()
            assert [f.result()[0] for f in busy] == [200, 200, 200], [f.result() for f in busy]
    finally:
        gate.set()
        b.run = real
    assert ok(srv.port)


def _serve(target, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "steport", "serve", str(target), "--port", "0",
                           *args], capture_output=True, text=True, timeout=timeout)


def test_missing_or_corrupt_model_fails_start_with_clear_error(tmp_path, model_dir):
    p = _serve(tmp_path / "nope.onnx")
    assert p.returncode != 0 and "nope.onnx" in p.stderr and "no such model" in p.stderr
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage, not a protobuf" * 10)
    p = _serve(bad)
    assert p.returncode != 0 and "bad.onnx" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    # truncated: a real model cut in half
    good = model_dir[1]["float"][0].read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(good[: len(good) // 2])
    p = _serve(cut)
    assert p.returncode != 0 and "cut.onnx" in p.stderr and "Traceback" not in p.stderr, p.stderr
    # a folder with one good and one corrupt model: refuse to start (no half-served repo)
    d = tmp_path / "repo"
    d.mkdir()
    (d / "float.onnx").write_bytes(good)
    (d / "broken.onnx").write_bytes(b"nonsense")
    p = _serve(d)
    assert p.returncode != 0 and "broken.onnx" in p.stderr and "Traceback" not in p.stderr, p.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    p = _serve(empty)
    assert p.returncode != 0 and "no *.onnx models" in p.stderr


def test_sigterm_under_load_finishes_inflight(model_dir):
    """6 clients loop over fresh connections; SIGTERM arrives while requests wait in the
    batcher. Every request that had been sent before the signal gets a 200; after it, only
    200, 503 (shutting down) or connection refused; exit 0 and a clean drain."""
    proc, port = spawn_server(model_dir[1]["float"][0], "--max-delay-ms", "400",
                              "--max-batch", "64", "--threads", "1", "--no-access-log")
    results: list[tuple[float, float, object]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client():
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                out: object = post(port, timeout=30)[0]
            except ConnectionRefusedError:
                out = "refused"
            except OSError as e:  # reset / EOF: recorded, judged below
                out = f"error:{type(e).__name__}"
            except http.client.HTTPException as e:
                out = f"error:{type(e).__name__}"
            with lock:
                results.append((t0, time.monotonic(), out))
            if out == "refused":
                return

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    t_sig = time.monotonic()
    rc = stop_server(proc)
    stop.set()
    for t in threads:
        t.join(30)
    assert rc == 0
    assert '"clean":true' in proc.log_lines[-1]
    before = [r for r in results if r[0] < t_sig - 0.05]  # sent before the signal
    inflight = [r for r in before if r[1] > t_sig]        # ... and answered after it
    assert before and all(r[2] == 200 for r in before), [r[2] for r in before if r[2] != 200]
    assert inflight, "no request was in flight at SIGTERM (test timing)"
    after = [r[2] for r in results if r[0] >= t_sig - 0.05]
    assert all(o in (200, 503, "refused") or str(o).startswith("error:") for o in after)
    errors = [o for o in after if str(o).startswith("error:")]
    # racing the listening socket's close may reset a connection still in the backlog; never
    # more than one per client
    assert len(errors) <= len(threads), errors
    counts = {
        "requests": len(results), "ok": sum(r[2] == 200 for r in results),
        "inflight_at_sigterm": len(inflight), "errors": len(errors)}
    print("sigterm-under-load", counts)
