"""Dynamic batcher: one bounded queue per model, worker threads that merge requests along
the batch dimension (up to max_batch rows, waiting at most max_delay after the first
request), run one session call and split the results back."""
from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import Future
from typing import Callable

import numpy as np

RunFn = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


class QueueFull(Exception):
    pass


class Stopped(Exception):
    pass


class _Item:
    __slots__ = ("feeds", "rows", "sig", "future", "t_enq")

    def __init__(self, feeds: dict[str, np.ndarray], rows: int | None):
        self.feeds, self.rows = feeds, rows
        # requests merge only when every non-batch dim and dtype agrees
        self.sig = tuple((k, v.dtype.str, v.shape[1:]) for k, v in sorted(feeds.items())) \
            if rows is not None else None
        self.future: Future = Future()
        self.t_enq = time.perf_counter()


class DynamicBatcher:
    """``submit(feeds, rows)`` returns a Future of the output list. ``rows`` is the request's
    batch size, or None for a request that must run alone (model without a batch dim)."""

    def __init__(self, run: RunFn, *, max_batch: int = 32, max_delay_s: float = 0.002,
                 max_queue: int = 256, workers: int = 1, name: str = "model",
                 on_batch: Callable[[int, int, float], None] | None = None,
                 on_queue: Callable[[int], None] | None = None):
        self.run, self.max_batch, self.max_delay = run, max(1, max_batch), max(0.0, max_delay_s)
        self.max_queue, self.name = max_queue, name
        self.on_batch, self.on_queue = on_batch, on_queue
        self._q: collections.deque[_Item] = collections.deque()
        self._cv = threading.Condition()
        self._stopping = False
        self._threads = [threading.Thread(target=self._loop, name=f"batcher-{name}-{i}", daemon=True)
                         for i in range(max(1, workers))]
        for t in self._threads:
            t.start()

    def depth(self) -> int:
        return len(self._q)

    def submit(self, feeds: dict[str, np.ndarray], rows: int | None) -> Future:
        item = _Item(feeds, rows)
        with self._cv:
            if self._stopping:
                raise Stopped(f"model '{self.name}' is shutting down")
            if len(self._q) >= self.max_queue:
                raise QueueFull(f"model '{self.name}' queue is full ({self.max_queue} waiting)")
            self._q.append(item)
            self._notify_depth()
            self._cv.notify()
        return item.future

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then end the workers."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        with self._cv:  # anything left after the timeout still gets an answer
            while self._q:
                self._q.popleft().future.set_exception(Stopped("server shut down"))

    def _notify_depth(self) -> None:
        if self.on_queue:
            self.on_queue(len(self._q))

    def _take(self) -> list[_Item] | None:
        """Block for a first item, then gather compatible items until the batch is full or
        the first item's delay is spent. Incompatible items stay queued, in order."""
        with self._cv:
            while not self._q:
                if self._stopping:
                    return None
                self._cv.wait()
            first = self._q.popleft()
            batch = [first]
            if first.rows is None or first.rows >= self.max_batch:
                self._notify_depth()
                return batch
            rows = first.rows
            deadline = first.t_enq + self.max_delay
            while rows < self.max_batch:
                # take every compatible queued item that fits
                kept: collections.deque[_Item] = collections.deque()
                while self._q and rows < self.max_batch:
                    it = self._q.popleft()
                    if it.sig == first.sig and rows + it.rows <= self.max_batch:
                        batch.append(it)
                        rows += it.rows
                    else:
                        kept.append(it)
                kept.extend(self._q)
                self._q = kept
                left = deadline - time.perf_counter()
                if rows >= self.max_batch or left <= 0 or self._stopping:
                    break
                self._cv.wait(left)
            self._notify_depth()
            if self._q:
                self._cv.notify()  # another worker may take the rest
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            batch = [it for it in batch if it.future.set_running_or_notify_cancel()]
            if batch:
                self._execute(batch)

    def _execute(self, batch: list[_Item]) -> None:
        if len(batch) == 1:
            self._run_one(batch[0])
            return
        rows = [it.rows for it in batch]
        total = sum(rows)
        t0 = time.perf_counter()
        try:
            feeds = {k: np.concatenate([it.feeds[k] for it in batch], axis=0) for k in batch[0].feeds}
            outs = self.run(feeds)
            if any(o.ndim == 0 or o.shape[0] != total for o in outs):
                raise _NotBatchMajor()
        except Exception:
            # one bad request (or outputs that are not batch-major) must not fail the others:
            # rerun each alone and give each its own result or error
            for it in batch:
                self._run_one(it)
            return
        if self.on_batch:
            self.on_batch(total, len(batch), time.perf_counter() - t0)
        start = 0
        for it in batch:
            it.future.set_result([o[start:start + it.rows] for o in outs])
            start += it.rows

    def _run_one(self, it: _Item) -> None:
        t0 = time.perf_counter()
        try:
            outs = self.run(it.feeds)
        except BaseException as e:  # noqa: BLE001 - handed to the waiting request
            it.future.set_exception(e)
            return
        if self.on_batch:
            self.on_batch(it.rows or 1, 1, time.perf_counter() - t0)
        it.future.set_result(outs)


class _NotBatchMajor(Exception):
    pass

