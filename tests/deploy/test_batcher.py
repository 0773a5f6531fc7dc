"""steport.deploy.batcher alone, with a recording run function instead of a model: what is
merged (compatible requests up to max_batch rows), what is not (other trailing shapes or
dtypes, requests without a batch dim), that every request gets exactly its own rows back,
that one bad request in a merged batch fails alone, and the queue limit and shutdown."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from steport.deploy.batcher import DynamicBatcher, QueueFull, Stopped

TIMEOUT = 30


class Recorder:
    """run(feeds) -> [feeds['x'] * 2, row sums]; records the batch sizes it was called with.
    ``gate`` (when set) holds every call until released, so requests pile up in the queue."""

    def __init__(self, gate: threading.Event | None = None, fail_on: float | None = None):
        self.calls: list[int] = []
        self.gate, self.fail_on = gate, fail_on
        self.started = threading.Event()

    def __call__(self, feeds):
        x = feeds["x"]
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(TIMEOUT)
        self.calls.append(x.shape[0] if x.ndim else 0)
        if self.fail_on is not None and (x == self.fail_on).any():
            raise ValueError(f"bad value {self.fail_on}")
        return [x * 2, x.reshape(x.shape[0], -1).sum(axis=1) if x.ndim else x]


def rows(n: int, start: float, width: int = 3, dtype=np.float32) -> dict:
    return {"x": (start + np.arange(n * width, dtype=dtype)).reshape(n, width)}


def test_compatible_requests_merge_and_each_gets_its_own_rows():
    run = Recorder()
    batches = []
    b = DynamicBatcher(run, max_batch=6, max_delay_s=5.0,
                       on_batch=lambda r, n, s: batches.append((r, n)))
    try:
        feeds = [rows(1, 0), rows(2, 100), rows(3, 200)]
        futs = [b.submit(f, f["x"].shape[0]) for f in feeds]
        outs = [f.result(TIMEOUT) for f in futs]
    finally:
        b.stop()
    assert run.calls == [6]  # one run: the batch closed when full, not after the 5 s delay
    assert batches == [(6, 3)]
    for f, (doubled, sums) in zip(feeds, outs):
        np.testing.assert_array_equal(doubled, f["x"] * 2)
        np.testing.assert_array_equal(sums, f["x"].sum(axis=1))


def test_incompatible_and_oversized_requests_run_apart_in_order():
    gate = threading.Event()
    run = Recorder(gate)
    b = DynamicBatcher(run, max_batch=4, max_delay_s=0.05)
    try:
        first = b.submit(rows(1, 0), 1)
        assert run.started.wait(TIMEOUT)  # the worker holds `first`; the rest queue
        futs = [b.submit(rows(2, 10, width=4), 2),             # other trailing shape
                b.submit(rows(2, 20, dtype=np.float64), 2),    # other dtype
                b.submit(rows(5, 30), 5),                      # above max_batch alone
                b.submit(rows(3, 40), 3), b.submit(rows(1, 50), 1),  # these two merge
                b.submit({"x": np.float32(7)}, None)]          # no batch dim: alone
        gate.set()
        first.result(TIMEOUT)
        outs = [f.result(TIMEOUT) for f in futs]
    finally:
        b.stop()
    assert run.calls == [1, 2, 2, 5, 4, 0]
    np.testing.assert_array_equal(outs[3][0], rows(3, 40)["x"] * 2)
    np.testing.assert_array_equal(outs[4][0], rows(1, 50)["x"] * 2)
    assert outs[5][0] == np.float32(14)
    assert outs[1][0].dtype == np.float64


def test_one_bad_request_in_a_merged_batch_fails_alone():
    run = Recorder(fail_on=-1.0)
    b = DynamicBatcher(run, max_batch=3, max_delay_s=5.0)
    try:
        good1, good2 = rows(1, 0), rows(1, 10)
        bad = {"x": np.full((1, 3), -1.0, np.float32)}
        futs = [b.submit(good1, 1), b.submit(bad, 1), b.submit(good2, 1)]
        np.testing.assert_array_equal(futs[0].result(TIMEOUT)[0], good1["x"] * 2)
        with pytest.raises(ValueError, match="bad value -1.0"):
            futs[1].result(TIMEOUT)
        np.testing.assert_array_equal(futs[2].result(TIMEOUT)[0], good2["x"] * 2)
    finally:
        b.stop()
    assert run.calls == [3, 1, 1, 1]  # the merged run failed; each request reran alone


def test_outputs_that_are_not_batch_major_rerun_each_request_alone():
    calls = []

    def run(feeds):
        calls.append(feeds["x"].shape[0])
        return [np.float32(feeds["x"].sum())]  # a scalar: cannot be split by rows

    b = DynamicBatcher(run, max_batch=2, max_delay_s=5.0)
    try:
        a, c = rows(1, 0), rows(1, 10)
        fa, fc = b.submit(a, 1), b.submit(c, 1)
        assert fa.result(TIMEOUT)[0] == a["x"].sum() and fc.result(TIMEOUT)[0] == c["x"].sum()
    finally:
        b.stop()
    assert calls == [2, 1, 1]


def test_queue_limit_and_shutdown():
    gate = threading.Event()
    run = Recorder(gate)
    depths = []
    b = DynamicBatcher(run, max_batch=1, max_delay_s=0.0, max_queue=2, on_queue=depths.append)
    held = b.submit(rows(1, 0), 1)
    assert run.started.wait(TIMEOUT)
    queued = [b.submit(rows(1, 1), 1), b.submit(rows(1, 2), 1)]
    assert b.depth() == 2
    with pytest.raises(QueueFull, match=r"queue is full \(2 waiting\)"):
        b.submit(rows(1, 3), 1)
    stopper = threading.Thread(target=b.stop)
    stopper.start()  # stop() finishes what is queued...
    while not b._stopping:  # noqa: SLF001 - wait until stop() has begun
        threading.Event().wait(0.01)
    with pytest.raises(Stopped, match="shutting down"):  # ...and takes nothing new
        b.submit(rows(1, 4), 1)
    gate.set()
    stopper.join(TIMEOUT)
    assert not stopper.is_alive()
    for f in [held, *queued]:
        assert f.result(TIMEOUT)[0].shape == (1, 3)
    assert run.calls == [1, 1, 1]
    assert max(depths) == 2 and depths[-1] == 0


def test_stop_timeout_answers_what_is_left():
    gate = threading.Event()
    run = Recorder(gate)
    b = DynamicBatcher(run, max_batch=1, max_delay_s=0.0)
    held = b.submit(rows(1, 0), 1)
    assert run.started.wait(TIMEOUT)
    left = b.submit(rows(1, 1), 1)
    b.stop(timeout=0.2)  # the worker is stuck in `held`: the queued request is answered
    with pytest.raises(Stopped, match="server shut down"):
        left.result(TIMEOUT)
    gate.set()
    assert held.result(TIMEOUT)[0].shape == (1, 3)
