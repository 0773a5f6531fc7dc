"""Benchmark helpers: timing, ORT sessions, result rows.

A bench module (bench/<family>.py) defines ``run(ctx: Context) -> list[Row]``: for each case
it times every implementation side by side in this one process; the runner turns rows into
ratios against the case's baseline, prints a table and writes JSON."""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort


@dataclass
class Context:
    quick: bool = False            # smaller cases / fewer repeats (smoke runs, CI)
    threads: tuple[int, ...] = (1, 2)
    min_time: float = 0.3          # seconds of timed calls per measurement
    repeats: int = 5               # measurements; the median is reported


@dataclass
class Row:
    bench: str                     # e.g. "pact"
    case: str                      # e.g. "n=1048576"
    impl: str                      # e.g. "steport", "ort-standard-ops", "torch"
    threads: int
    seconds: float                 # median seconds per call
    baseline: str | None = None    # impl name this case's ratios are taken against
    items: int | None = None       # work items per call (elements, images, ...) -> items/s
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.items:
            d["items_per_second"] = self.items / self.seconds
        return d


def timeit(fn: Callable[[], object], ctx: Context) -> float:
    """Median seconds per call over ctx.repeats measurements of >= ctx.min_time each."""
    fn()  # warm-up (allocations, first-run kernel set-up)
    t0, calls = time.perf_counter(), 0
    while time.perf_counter() - t0 < 0.05 or calls < 2:
        fn()
        calls += 1
    per = (time.perf_counter() - t0) / calls
    n = max(1, int((ctx.min_time / (2 if ctx.quick else 1)) / max(per, 1e-9)))
    samples = []
    for _ in range(max(2, ctx.repeats // (2 if ctx.quick else 1))):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n)
    return statistics.median(samples)


def session(model: onnx.ModelProto, threads: int, steport_ops: bool = True) -> ort.InferenceSession:
    """ORT session with a fixed intra-op thread count (and the steport library or not)."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if steport_ops:
        import steport

        so.register_custom_ops_library(steport.library_path())
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def time_session(sess: ort.InferenceSession, feeds: dict[str, np.ndarray], ctx: Context) -> float:
    out_names = [o.name for o in sess.get_outputs()]
    return timeit(lambda: sess.run(out_names, feeds), ctx)


def torch_threads(n: int):
    """Context manager: torch intra-op threads = n for a PyTorch baseline."""
    import contextlib

    import torch

    @contextlib.contextmanager
    def cm():
        old = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(old)
    return cm()
