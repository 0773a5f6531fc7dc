"""The server's Prometheus metrics, on `prometheus-client` (the maintained implementation of
the exposition formats that scrapers are tested against; pure Python, no dependencies).
Each Server has its own CollectorRegistry, so several servers in one process (tests) do not
share counters. /metrics negotiates the format from the scraper's Accept header (text or
OpenMetrics) with the library's choose_encoder."""
from __future__ import annotations

import prometheus_client as prom
from prometheus_client.exposition import choose_encoder
from prometheus_client.parser import text_string_to_metric_families

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

# `*_created` series (one per label set, a start timestamp) double the series count and no
# steport dashboard uses them.
prom.disable_created_metrics()


class Registry:
    """The server's metrics. Label `model` is the requested name only when it is loaded
    (unknown names share one label value, so clients cannot grow the series set)."""

    def __init__(self):
        r = self.registry = prom.CollectorRegistry(auto_describe=True)
        self.requests = prom.Counter(
            "steport_requests_total", "Inference requests by model and status (HTTP status; "
            "gRPC requests count under the HTTP status their gRPC code corresponds to).",
            ("model", "status"), registry=r)
        self.http = prom.Counter("steport_http_requests_total",
                                 "HTTP requests by endpoint kind and status.",
                                 ("endpoint", "status"), registry=r)
        self.grpc = prom.Counter("steport_grpc_requests_total",
                                 "gRPC calls by method and status code.", ("method", "code"),
                                 registry=r)
        self.latency = prom.Histogram("steport_request_duration_seconds",
                                      "Inference request latency (receipt to response), seconds.",
                                      ("model",), buckets=LATENCY_BUCKETS, registry=r)
        self.run_time = prom.Histogram("steport_inference_duration_seconds",
                                       "ONNX Runtime session.run time per executed batch, seconds.",
                                       ("model",), buckets=LATENCY_BUCKETS, registry=r)
        self.batch = prom.Histogram("steport_batch_size", "Rows per executed batch.", ("model",),
                                    buckets=BATCH_BUCKETS, registry=r)
        self.batch_requests = prom.Histogram("steport_batch_requests",
                                             "Requests merged into one executed batch.",
                                             ("model",), buckets=BATCH_BUCKETS, registry=r)
        self.queue = prom.Gauge("steport_queue_depth",
                                "Requests waiting in the model's batcher queue.", ("model",),
                                registry=r)
        self.inflight = prom.Gauge("steport_http_connections", "Open HTTP connections.",
                                   registry=r)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """(body, content type) in the format the scraper's Accept header asks for."""
        encoder, ctype = choose_encoder(accept or "")
        return encoder(self.registry), ctype


def parse_text(text: str) -> dict[str, float]:
    """Exposition text -> {'name{label="v",...}': value} (tests, load test), parsed with
    prometheus-client's own parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            # the bucket bound last, as the exposition writes it
            items = sorted(s.labels.items(), key=lambda kv: kv[0] in ("le", "quantile"))
            labels = ",".join(f'{k}="{v}"' for k, v in items)
            out[s.name + ("{" + labels + "}" if labels else "")] = float(s.value)
    return out
