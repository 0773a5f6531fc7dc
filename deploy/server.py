"""HTTP server for the Open Inference Protocol (KServe v2 / Triton HTTP), on the stdlib's
ThreadingHTTPServer (HTTP/1.1 keep-alive, one thread per connection, bounded).

Endpoints: GET /v2, /v2/health/{live,ready}, /v2/models/{m}[/versions/{v}][/ready|/config],
POST /v2/models/{m}[/versions/{v}]/infer, POST /v2/repository/index, GET /metrics.
Every error is a JSON {"error": "..."} with a 4xx/5xx status; the server keeps serving.
With ServerConfig.grpc_port the same models, validation and batchers are also served over
the v2 gRPC service (grpc_server.py). Why this stdlib core and not an event-loop server:
the measurements in docs/deploy.md ("Which HTTP engine")."""
from __future__ import annotations

import ctypes
import json
import select
import socket
import struct
import sys
import threading
import time
import zlib
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO
from urllib.parse import unquote, urlsplit

from .batcher import DynamicBatcher, QueueFull, Stopped
from .metrics import Registry
from .protocol import RequestError, encode_response
from .repository import Repository

JSON = "application/json"


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 64 << 20      # after decompression too
    request_timeout_s: float = 30.0     # waiting for a result; then 504
    idle_timeout_s: float = 15.0        # socket reads (keep-alive idle, slow bodies)
    max_connections: int = 256          # then the idlest waiting one is evicted; all busy -> 503
    drain_timeout_s: float = 30.0       # graceful shutdown bound
    access_log: bool = True
    grpc_port: int | None = None        # the v2 gRPC service too (0 = any free port)
    # JSON costs ~12x its size once parsed into Python objects (a 60 MB body of floats peaked
    # at ~730 MB): a JSON header above this is refused (413: send the binary extension), and
    # all requests together parse at most json_budget_bytes of JSON at a time (the rest wait).
    max_json_bytes: int = 16 << 20
    json_budget_bytes: int = 32 << 20


class JsonLog:
    """JSON-lines structured log (one object per line), thread-safe."""

    def __init__(self, stream: IO[str] | None = None, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self._lock = threading.Lock()

    def __call__(self, event: str, level: str = "info", **fields) -> None:
        if not self.enabled and level == "info" and event == "request":
            return
        rec = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) +
               f".{int(time.time() * 1000) % 1000:03d}Z", "level": level, "event": event, **fields}
        line = json.dumps(rec, default=str, separators=(",", ":"))
        with self._lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass


class ByteBudget:
    """A counting semaphore in bytes: acquire(n) waits until n bytes are free (a request
    larger than the whole budget waits for it to be empty, then runs alone)."""

    def __init__(self, capacity: int):
        self.capacity, self.used = capacity, 0
        self._cv = threading.Condition()

    def acquire(self, n: int, timeout: float) -> bool:
        n = min(n, self.capacity)
        with self._cv:
            if not self._cv.wait_for(lambda: self.used + n <= self.capacity, timeout):
                return False
            self.used += n
            return True

    def release(self, n: int) -> None:
        with self._cv:
            self.used -= min(n, self.capacity)
            self._cv.notify_all()


def _ort_error_status(e: BaseException) -> int:
    """ORT's InvalidArgument (bad shapes/values the checks above let through) is the
    client's fault; anything else is ours."""
    if type(e).__name__ in ("InvalidArgument", "InvalidGraph"):
        return 400
    # image models: an undecodable image fails inside the decoder node
    return 400 if "ImageDecoder" in str(e) or "steport_bad_image" in str(e) else 500


# How long the accept queue must stay empty, after new SYNs are dropped, before the listener
# closes: a handshake the kernel answered just before the filter completes within one
# round trip (microseconds on loopback, tens of milliseconds across a cluster network).
_HANDSHAKE_SETTLE_S = 0.2
# A connection accepted during the drain that has not sent its first request yet is given
# this long to send it before its read is shut (its client connected to be answered; closing
# it at once would answer a request sent a moment later with a reset).
_FIRST_REQUEST_GRACE_S = 1.0


def _drop_new_syns(lsock: socket.socket) -> bool:
    """Attach a classic BPF filter to the listening socket that drops pure SYN segments (new
    connection attempts) and lets every other segment through (handshake ACKs, data of
    accepted connections, which inherit the filter). For TCP the filter sees the segment
    from the TCP header on: byte 13 holds the flags. True when the kernel took it (Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    so_attach_filter = getattr(socket, "SO_ATTACH_FILTER", 26)  # Python has no name for it
    ld_b_abs, and_k, jeq_k, ret_k = 0x30, 0x54, 0x15, 0x06
    syn, ack = 0x02, 0x10
    prog = [(ld_b_abs, 0, 0, 13),                 # A = TCP flags
            (and_k, 0, 0, syn | ack),             # A &= SYN|ACK
            (jeq_k, 0, 1, syn),                   # SYN without ACK: next (drop), else skip
            (ret_k, 0, 0, 0),                     # drop
            (ret_k, 0, 0, 0xFFFFFFFF)]            # keep the whole segment
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in prog))
    fprog = struct.pack("HP", len(prog), ctypes.addressof(code))
    try:
        lsock.setsockopt(socket.SOL_SOCKET, so_attach_filter, fprog)  # the kernel copies it
    except OSError:
        return False
    return True


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True        # shutdown joins connections itself, with a bound
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, handler, app: "Server"):
        self.app = app
        self.conn_lock = threading.Lock()
        self.conns: set = set()
        self.active = 0
        self.evicted: set = set()
        self.rejecting = threading.BoundedSemaphore(32)  # concurrent 503-at-accept answers
        super().__init__(addr, handler)

    def process_request(self, request, client_address):
        victim = None
        with self.conn_lock:
            over = self.active >= self.app.config.max_connections
            if over:
                # Full: the connection that has waited longest for a request line or headers
                # (idle keep-alive, slowloris) gives its slot to the newcomer, so idle or slow
                # sockets cannot lock legitimate clients out. Connections running a request
                # are never evicted.
                victim = min((c for c in self.conns if c.header_t0 is not None and not c.busy),
                             key=lambda c: c.header_t0, default=None)
                if victim is not None:  # its slot is the newcomer's: the count stays
                    victim.header_t0 = None
                    self.evicted.add(victim.connection)
                    over = False
            elif not over:
                self.active += 1
        if victim is not None:
            self.app.log("evicted", level="warning", client=victim.client_address[0],
                         reason="connection limit; waited longest for a request")
            try:
                victim.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if over:
            # Answer off the accept loop: the client may still be sending its request, and
            # closing with unread data would reset the connection before it reads the 503.
            if self.rejecting.acquire(blocking=False):
                threading.Thread(target=self._reject, args=(request,), daemon=True).start()
            else:  # a flood of rejects: don't spend a thread on each
                self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def _reject(self, request) -> None:
        body = b'{"error":"too many connections"}'
        try:
            request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                            b"Retry-After: 1\r\nConnection: close\r\nContent-Length: " +
                            str(len(body)).encode() + b"\r\n\r\n" + body)
            request.shutdown(socket.SHUT_WR)
            request.settimeout(0.2)  # drain what the client already sent, bounded
            drained, deadline = 0, time.monotonic() + 0.5
            while drained < (1 << 20) and time.monotonic() < deadline:
                chunk = request.recv(65536)
                if not chunk:
                    break
                drained += len(chunk)
        except OSError:
            pass
        finally:
            request.close()
            self.rejecting.release()

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.conn_lock:
                if request in self.evicted:  # its slot went to a newcomer already
                    self.evicted.discard(request)
                else:
                    self.active -= 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: the status line + headers and the body go out in separate writes; with
    # Nagle on, the body waits for the client's delayed ACK (~40 ms per request).
    disable_nagle_algorithm = True
    server_version = "steport"
    sys_version = ""
    server: _HTTPServer

    # -- connection bookkeeping (graceful shutdown wakes idle keep-alive connections) --
    def setup(self):
        self.timeout = self.server.app.config.idle_timeout_s
        super().setup()
        self.busy = False
        self.header_t0 = None
        self.accepted_t = time.monotonic()
        self.served = 0  # responses sent on this connection
        with self.server.conn_lock:
            self.server.conns.add(self)
        self.server.app.metrics.inflight.set(len(self.server.conns))

    def finish(self):
        try:
            super().finish()
        finally:
            with self.server.conn_lock:
                self.server.conns.discard(self)
            self.server.app.metrics.inflight.set(len(self.server.conns))

    def handle_one_request(self):
        # The request line and headers must all arrive within idle_timeout_s: the socket
        # timeout alone is per read, so a client trickling a byte at a time (slowloris)
        # would hold its thread forever. Server._reap enforces this deadline.
        self.header_t0 = time.monotonic()
        super().handle_one_request()

    def parse_request(self) -> bool:
        ok = super().parse_request()
        self.header_t0 = None
        if ok:
            self.busy = True
            self.t0 = time.perf_counter()
            self.model_label = None
        return ok

    def log_request(self, code="-", size="-"):
        pass  # _done() writes the "request" line (info level, off with --no-access-log)

    def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's name
        self.server.app.log("http", level="warning", client=self.client_address[0],
                            message=format % args)

    def send_error(self, code, message=None, explain=None):
        # errors raised by the stdlib parser (bad request line, huge headers): JSON too
        self.close_connection = True
        self._send(code, {"error": message or self.responses.get(code, ("error",))[0]})

    # -- responses --
    def _send(self, status: int, obj=None, body: bytes | None = None, ctype: str = JSON,
              headers: dict[str, str] | None = None) -> None:
        if body is None:
            body = json.dumps(obj, separators=(",", ":")).encode()
        app = self.server.app
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if app.draining or self.close_connection:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            self.close_connection = True
        finally:
            self._done(status, len(body))

    def _done(self, status: int, nbytes: int) -> None:
        app = self.server.app
        self.served += 1
        dt = time.perf_counter() - getattr(self, "t0", time.perf_counter())
        path = getattr(self, "path", "")
        kind = _endpoint_kind(path)
        app.metrics.http.labels(endpoint=kind, status=str(status)).inc()
        model_label = getattr(self, "model_label", None)
        if model_label is not None:
            app.metrics.requests.labels(model=model_label, status=str(status)).inc()
            app.metrics.latency.labels(model=model_label).observe(dt)
        if kind != "health" or status != 200:
            app.log("request", level="info" if status < 500 else "error",
                    method=getattr(self, "command", None), path=path, status=status,
                    model=model_label, duration_ms=round(dt * 1e3, 3), bytes=nbytes,
                    client=self.client_address[0], error=getattr(self, "err", None))
        self.busy = False

    def _error(self, e: RequestError) -> None:
        self.err = str(e)
        if self.command == "POST" and not getattr(self, "body_read", True) and \
                self.headers.get("Content-Length", "0") != "0":
            self.close_connection = True  # unread body left on the socket
        self._send(e.status, {"error": str(e)}, headers=e.headers)

    # -- routing --
    def do_GET(self):
        self.err = None
        try:
            self._route("GET")
        except RequestError as e:
            self._error(e)
        except Exception as e:  # noqa: BLE001 - a bug must still answer
            self.server.app.log("exception", level="error", error=repr(e))
            self._error(RequestError(f"internal error: {e}", 500))

    def do_POST(self):
        self.err = None
        self.body_read = False
        try:
            self._route("POST")
        except RequestError as e:
            self._error(e)
        except Exception as e:  # noqa: BLE001
            self.server.app.log("exception", level="error", error=repr(e))
            self._error(RequestError(f"internal error: {e}", 500))

    def _route(self, method: str) -> None:
        app = self.server.app
        parts = [unquote(p) for p in urlsplit(self.path).path.strip("/").split("/")]
        if parts == ["metrics"] and method == "GET":
            for m in app.repo.models.values():  # queue depth sampled at scrape time too
                app.metrics.queue.labels(model=m.name).set(m.batcher.depth() if m.batcher else 0)
            body, ctype = app.metrics.render(self.headers.get("Accept"))
            return self._send(200, body=body, ctype=ctype)
        if not parts or parts[0] != "v2":
            raise RequestError(f"no such endpoint {self.path}", 404)
        rest = parts[1:]
        if rest == [] and method == "GET":
            return self._send(200, app.server_metadata())
        if rest[:1] == ["health"] and len(rest) == 2 and method == "GET":
            if rest[1] == "live":
                return self._send(200, {"live": True})
            if rest[1] == "ready":
                ok = app.ready
                return self._send(200 if ok else 503, {"ready": ok})
        if rest == ["repository", "index"] and method == "POST":
            self._read_body()
            return self._send(200, [{"name": m.name, "version": m.version, "state": "READY"}
                                    for m in app.repo.models.values()])
        if rest[:1] == ["models"] and len(rest) >= 2:
            name, tail = rest[1], rest[2:]
            model = app.repo.get(name)
            if model is None:
                self.model_label = "_unknown" if tail == ["infer"] else None
                raise RequestError(f"unknown model '{name}'; serving {sorted(app.repo.models)}", 404)
            if tail[:1] == ["versions"]:
                if len(tail) < 2 or tail[1] != model.version:
                    raise RequestError(f"model '{name}' has no version "
                                       f"{tail[1] if len(tail) > 1 else ''!r}; it has {model.version!r}", 404)
                tail = tail[2:]
            if tail == [] and method == "GET":
                return self._send(200, model.metadata())
            if tail == ["ready"] and method == "GET":
                ok = app.ready
                return self._send(200 if ok else 503, {"name": name, "ready": ok})
            if tail == ["config"] and method == "GET":
                from .triton import model_config

                return self._send(200, model_config(model))
            if tail == ["infer"] and method == "POST":
                self.model_label = name
                return self._infer(model)
        raise RequestError(f"no such endpoint {method} {self.path}", 404 if method == "GET" else 405)

    def _read_body(self) -> bytes:
        limit = self.server.app.config.max_body_bytes
        if self.headers.get("Transfer-Encoding", "").lower() not in ("", "identity"):
            self.close_connection = True
            raise RequestError("chunked bodies are not supported: send Content-Length", 411)
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        try:
            n = int(raw)
            if n < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise RequestError(f"bad Content-Length {raw!r}") from None
        if n > limit:
            self.close_connection = True  # the body stays unread: this connection is done
            raise RequestError(f"body of {n} bytes exceeds the limit of {limit} bytes", 413)
        body = self._read_exactly(n)
        self.body_read = True
        enc = self.headers.get("Content-Encoding", "").lower()
        if enc in ("gzip", "deflate"):
            body = _decompress(body, enc, limit)
        elif enc not in ("", "identity"):
            raise RequestError(f"unsupported Content-Encoding {enc!r}", 415)
        return body

    def _read_exactly(self, n: int) -> bytearray:
        """The body, within idle_timeout_s in total (a deadline, not per read: a client
        trickling bytes cannot hold the thread). Short or late -> 408/400, connection closed."""
        limit_s = self.server.app.config.idle_timeout_s
        deadline = time.monotonic() + limit_s
        buf = bytearray(n)  # read in place: the body's memory once, not chunks + a join
        view, got = memoryview(buf), 0
        try:
            while got < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.connection.settimeout(left)
                k = self.rfile.readinto1(view[got:got + (1 << 20)])
                if not k:
                    break
                got += k
        except (TimeoutError, socket.timeout):
            self.close_connection = True
            raise RequestError(f"body incomplete after {limit_s:g}s: got {got} of the {n} bytes "
                               "Content-Length announced", 408) from None
        finally:
            try:
                self.connection.settimeout(limit_s)
            except OSError:
                pass
        view.release()
        if got != n:
            self.close_connection = True
            raise RequestError(f"body ended after {got} of {n} bytes")
        return buf

    def _infer(self, model) -> None:
        app = self.server.app
        body = self._read_body()
        # While draining, a request that reached us is still answered: only new connections
        # are refused (the listener is closed) and this connection closes after the answer.
        header = self.headers.get("Inference-Header-Content-Length")
        try:
            json_len = min(int(header), len(body)) if header is not None else len(body)
        except ValueError:
            json_len = len(body)  # parse_request words the error
        if json_len > app.config.max_json_bytes:
            raise RequestError(f"JSON part of {json_len} bytes exceeds the limit of "
                               f"{app.config.max_json_bytes}: send large tensors with the binary "
                               "tensor extension (binary_data_size)", 413)
        if not app.json_budget.acquire(json_len, app.config.request_timeout_s):
            raise RequestError("too much JSON being parsed; retry", 503, {"Retry-After": "1"})
        try:
            req, names, rows = model.parse_request(body, header)
        finally:
            app.json_budget.release(json_len)
        outs = app.infer(model, req.inputs, rows)
        by_name = dict(zip(model.outputs, outs))
        body, header_len = encode_response(model.name, model.version, req, names,
                                           [by_name[n] for n in names])
        if header_len is None:
            return self._send(200, body=body)
        return self._send(200, body=body, ctype="application/octet-stream",
                          headers={"Inference-Header-Content-Length": str(header_len)})

    def do_HEAD(self):
        self.do_GET()


def _decompress(body: bytes, enc: str, limit: int) -> bytes:
    """gzip (every member: RFC 1952 allows several, concatenated) or zlib-wrapped deflate,
    never more than `limit` bytes out (a small bomb is refused without inflating it all)."""
    out: list[bytes] = []
    size = 0
    rest = body
    while True:
        d = zlib.decompressobj(wbits=31 if enc == "gzip" else 15)
        try:
            chunk = d.decompress(rest, limit + 1 - size)
        except zlib.error as e:
            raise RequestError(f"bad {enc} body: {e}") from None
        size += len(chunk)
        out.append(chunk)
        if size > limit or d.unconsumed_tail:
            raise RequestError(f"decompressed body exceeds the limit of {limit} bytes", 413)
        if not d.eof:
            raise RequestError(f"bad {enc} body: truncated")
        rest = d.unused_data
        if not rest:
            return b"".join(out)
        if enc != "gzip":
            raise RequestError(f"bad {enc} body: {len(rest)} bytes after the end of the stream")


def _endpoint_kind(path: str) -> str:
    p = urlsplit(path).path
    if p.startswith("/v2/health"):
        return "health"
    if p.endswith("/infer"):
        return "infer"
    if p == "/metrics":
        return "metrics"
    if p.startswith("/v2/models") or p.startswith("/v2/repository"):
        return "model"
    return "server" if p in ("/v2", "/v2/") else "other"


class Server:
    """``Server(repo, config).start()`` serves in background threads; ``stop()`` drains:
    stop accepting, finish in-flight requests and queued batches, close."""

    def __init__(self, repo: Repository, config: ServerConfig | None = None,
                 log: JsonLog | None = None):
        self.repo, self.config = repo, config or ServerConfig()
        self.log = log or JsonLog(enabled=self.config.access_log)
        self.metrics = Registry()
        self.json_budget = ByteBudget(self.config.json_budget_bytes)
        self.draining = False
        self._started = False
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._grpc = None

    @property
    def ready(self) -> bool:
        return self._started and not self.draining

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def grpc_port(self) -> int | None:
        return self._grpc.port if self._grpc else None

    @property
    def url(self) -> str:
        return f"{self.config.host}:{self.port}"

    def server_metadata(self) -> dict:
        import steport

        return {"name": "steport", "version": steport.__version__,
                "extensions": ["binary_tensor_data"]}

    def start(self) -> "Server":
        for m in self.repo.models.values():
            p = m.policy
            m.batcher = DynamicBatcher(
                m.run, max_batch=p.max_batch if m.batchable else 1,
                max_delay_s=p.max_delay_ms / 1e3, max_queue=p.max_queue, workers=p.instances,
                name=m.name,
                on_batch=lambda rows, reqs, sec, n=m.name: self._on_batch(n, rows, reqs, sec),
                on_queue=lambda d, n=m.name: self.metrics.queue.labels(model=n).set(d))
        self._httpd = _HTTPServer((self.config.host, self.config.port), Handler, self)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="http-accept", daemon=True)
        self._thread.start()
        self._reaper_stop = threading.Event()
        threading.Thread(target=self._reap, name="http-reaper", daemon=True).start()
        if self.config.grpc_port is not None:
            from .grpc_server import GrpcServer  # grpcio only when gRPC is asked for

            try:
                self._grpc = GrpcServer(self, self.config.host, self.config.grpc_port).start()
            except BaseException:
                self._httpd.shutdown()
                self._httpd.server_close()
                raise
        self._started = True
        self.log("start", host=self.config.host, port=self.port, grpc_port=self.grpc_port,
                 models={m.name: {"batchable": m.batchable, "max_batch": m.policy.max_batch,
                                  "max_delay_ms": m.policy.max_delay_ms,
                                  "inputs": [s.to_json() for s in m.inputs.values()]}
                         for m in self.repo.models.values()})
        return self

    def _reap(self) -> None:
        """Closes connections whose request line + headers took longer than idle_timeout_s."""
        limit = self.config.idle_timeout_s
        httpd = self._httpd
        while not self._reaper_stop.wait(min(0.25, limit / 4)):
            now = time.monotonic()
            with httpd.conn_lock:
                conns = list(httpd.conns)
            for c in conns:
                t0 = getattr(c, "header_t0", None)
                if t0 is not None and not c.busy and now - t0 > limit:
                    c.header_t0 = None
                    self.log("slow_client", level="warning", client=c.client_address[0],
                             seconds=round(now - t0, 3))
                    try:
                        c.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

    def infer(self, model, inputs: dict, rows: int | None) -> list:
        """Run validated inputs through the model's batcher (HTTP and gRPC alike); the
        outputs in model.outputs order, or a RequestError with the status to answer."""
        try:
            fut = model.batcher.submit(inputs, rows if model.batchable else None)
        except QueueFull as e:
            raise RequestError(str(e), 503, {"Retry-After": "1"}) from None
        except Stopped as e:
            raise RequestError(str(e), 503, {"Retry-After": "1"}) from None
        try:
            outs = fut.result(timeout=self.config.request_timeout_s)
        except FutureTimeout:
            raise RequestError(f"no result within {self.config.request_timeout_s}s", 504) from None
        except Stopped as e:
            raise RequestError(str(e), 503, {"Retry-After": "1"}) from None
        except RequestError:
            raise  # the model's input adapter rejected the request
        except Exception as e:  # noqa: BLE001 - the session's error, told to the client
            raise RequestError(f"inference failed: {e}", _ort_error_status(e)) from None
        return outs

    def _on_batch(self, name: str, rows: int, reqs: int, sec: float) -> None:
        self.metrics.batch.labels(model=name).observe(rows)
        self.metrics.batch_requests.labels(model=name).observe(reqs)
        self.metrics.run_time.labels(model=name).observe(sec)

    def stop(self) -> bool:
        """Graceful: returns True when every in-flight request finished within the bound."""
        if not self._httpd:
            return True
        t0 = time.monotonic()
        self.draining = True
        httpd = self._httpd
        self.log("draining", connections=len(httpd.conns))
        httpd.shutdown()                # the accept loop ends
        if self._grpc:  # refuses new RPCs now; in-flight ones finish within the drain bound
            grpc_done = threading.Thread(target=self._grpc.stop,
                                         args=(self.config.drain_timeout_s,), daemon=True)
            grpc_done.start()
        self._drain_backlog(httpd)
        deadline = t0 + self.config.drain_timeout_s
        clean = True
        while True:
            with httpd.conn_lock:
                conns = list(httpd.conns)
                # accepted connections whose handler thread has not registered in conns yet
                # (thread start is slow under load) still count: their request is answered
                # before the batchers stop
                unregistered = httpd.active - len(conns)
            now = time.monotonic()
            for c in conns:
                if c.busy or c.header_t0 is None:
                    continue
                if not c.served and now - c.accepted_t < _FIRST_REQUEST_GRACE_S:
                    continue  # accepted moments ago: its client is about to send the request
                # idle keep-alive: wake its blocked read so the thread ends; but not if a
                # request is already arriving on it (it is served, then the connection closes)
                try:
                    arriving = select.select([c.connection], [], [], 0)[0]
                except (OSError, ValueError):
                    arriving = []
                if not arriving:
                    try:
                        c.connection.shutdown(socket.SHUT_RD)
                    except OSError:
                        pass
            if not conns and unregistered <= 0:
                break
            if time.monotonic() > deadline:
                clean = False
                break
            time.sleep(0.02)
        self._reaper_stop.set()
        if self._grpc:
            grpc_done.join(max(0.0, deadline - time.monotonic()) + 1)
            clean = clean and not grpc_done.is_alive()
            self._grpc = None
        for m in self.repo.models.values():
            if m.batcher:
                m.batcher.stop(timeout=max(0.0, deadline - time.monotonic()))
        self._httpd.server_close()
        self._httpd = None
        self.log("stopped", clean=clean, seconds=round(time.monotonic() - t0, 3))
        return clean

    def _drain_backlog(self, httpd: "_HTTPServer") -> None:
        """Answer every connection the kernel has completed, then close the listener.

        Closing a listener resets the connections in its accept queue, and the kernel keeps
        completing handshakes until the close: a connect landing between the last accept()
        and close() would be reset. So the kernel stops taking new connections first (a
        socket filter drops incoming SYNs: the client retries its SYN after ~1 s and then
        meets the closed port, ECONNREFUSED), handshakes already answered with a SYN-ACK
        still complete (their ACK passes the filter), and the queue is drained until it has
        been empty for one settle period. Without the filter (not Linux) the old race stays."""
        lsock = httpd.socket
        filtered = _drop_new_syns(lsock)
        lsock.setblocking(False)
        deadline = time.monotonic() + self.config.drain_timeout_s
        quiet_since = time.monotonic()
        while True:
            try:
                request, addr = lsock.accept()
            except OSError:
                now = time.monotonic()
                if not filtered or now - quiet_since >= _HANDSHAKE_SETTLE_S or now > deadline:
                    break
                select.select([lsock], [], [], _HANDSHAKE_SETTLE_S / 4)
                continue
            request.setblocking(True)
            httpd.process_request(request, addr)
            quiet_since = time.monotonic()
        lsock.close()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
