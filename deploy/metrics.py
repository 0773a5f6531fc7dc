"""Prometheus text exposition (format 0.0.4), written by hand: counters, gauges and
histograms with labels, thread-safe. Small on purpose: no client library in the image."""
from __future__ import annotations

import bisect
import math
import threading

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def _esc(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: tuple[str, ...], extra: str = "") -> str:
    parts = [f'{n}="{_esc(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v)) if not float(v).is_integer() else str(int(v))


class _Metric:
    kind = ""

    def __init__(self, name: str, help: str, labels: tuple[str, ...] = ()):
        self.name, self.help, self.labelnames = name, help, tuple(labels)
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> tuple[str, ...]:
        return tuple(str(labels.get(n, "")) for n in self.labelnames)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    kind = "counter"

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self._v: dict[tuple, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        k = self._key(labels)
        with self._lock:
            self._v[k] = self._v.get(k, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self._v.get(self._key(labels), 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._v.items())
        return self.header() + [f"{self.name}{_labels(self.labelnames, k)} {_num(v)}" for k, v in items]


class Gauge(Counter):
    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        with self._lock:
            self._v[self._key(labels)] = float(value)


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help: str, labels: tuple[str, ...] = (),
                 buckets: tuple[float, ...] = LATENCY_BUCKETS):
        super().__init__(name, help, labels)
        self.buckets = tuple(sorted(buckets))
        self._v: dict[tuple, list] = {}  # key -> [per-bucket counts..., +Inf count, sum]

    def observe(self, value: float, **labels: str) -> None:
        k = self._key(labels)
        i = bisect.bisect_left(self.buckets, value)
        with self._lock:
            row = self._v.setdefault(k, [0] * (len(self.buckets) + 1) + [0.0])
            row[i] += 1
            row[-1] += value

    def count(self, **labels: str) -> int:
        row = self._v.get(self._key(labels))
        return sum(row[:-1]) if row else 0

    def render(self) -> list[str]:
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._v.items())
        lines = self.header()
        for k, row in items:
            cum = 0
            for b, c in zip(self.buckets + (math.inf,), row[:-1]):
                cum += c
                le = 'le="' + _num(b) + '"'
                lines.append(f"{self.name}_bucket{_labels(self.labelnames, k, le)} {cum}")
            lines.append(f"{self.name}_sum{_labels(self.labelnames, k)} {_num(row[-1])}")
            lines.append(f"{self.name}_count{_labels(self.labelnames, k)} {cum}")
        return lines


class Registry:
    """The server's metrics. Label `model` is the requested name only when it is loaded
    (unknown names share one label value, so clients cannot grow the series set)."""

    def __init__(self):
        self.requests = Counter("steport_requests_total",
                                "Inference requests by model and HTTP status.", ("model", "status"))
        self.http = Counter("steport_http_requests_total",
                            "HTTP requests by endpoint kind and status.", ("endpoint", "status"))
        self.latency = Histogram("steport_request_duration_seconds",
                                 "Inference request latency (receipt to response), seconds.",
                                 ("model",))
        self.run_time = Histogram("steport_inference_duration_seconds",
                                  "ONNX Runtime session.run time per executed batch, seconds.",
                                  ("model",))
        self.batch = Histogram("steport_batch_size", "Rows per executed batch.", ("model",),
                               buckets=BATCH_BUCKETS)
        self.batch_requests = Histogram("steport_batch_requests",
                                        "Requests merged into one executed batch.", ("model",),
                                        buckets=BATCH_BUCKETS)
        self.queue = Gauge("steport_queue_depth", "Requests waiting in the model's batcher queue.",
                           ("model",))
        self.inflight = Gauge("steport_http_connections", "Open HTTP connections.", ())
        self._all = [self.requests, self.http, self.latency, self.run_time, self.batch,
                     self.batch_requests, self.queue, self.inflight]

    def render(self) -> bytes:
        lines: list[str] = []
        for m in self._all:
            lines += m.render()
        return ("\n".join(lines) + "\n").encode()


def parse_text(text: str) -> dict[str, float]:
    """Tiny parser of our own exposition (tests, load test): 'name{labels}' -> value."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, val = line.rpartition(" ")
        out[key] = float(val.replace("+Inf", "inf"))
    return out
