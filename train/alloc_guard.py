"""Refuse impossible tensor sizes BEFORE they are allocated (docs/hardening.md, threat model).

A checkpoint names an architecture and its arguments; `hidden=2e6` or a logic width of 1e9
would make PyTorch allocate terabytes while rebuilding the model (or the OS kill the
process half-way). `allocation_budget(limit)` is a TorchFunctionMode that looks at every
tensor factory call (`torch.empty`, `zeros`, `randn`, `randperm`, ...) made inside it, adds
up the bytes requested and raises `AllocationRefused` (a ValueError: one clear line in the
CLI) as soon as a request would pass `limit` — before the call runs."""
from __future__ import annotations

import os
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from steport.errors import AllocationRefused  # noqa: F401  (defined there, re-exported)

# Factory functions whose size comes from their arguments (tensor methods and ops on
# existing tensors produce at most what their inputs, already counted, imply).
_FACTORIES = {torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn,
              torch.randint, torch.randperm, torch.empty_strided, torch.eye}


def default_limit() -> int:
    """`STEPORT_MAX_BYTES` if set (the limit steport.session() also applies), else half of
    this machine's physical memory."""
    from steport.memory import limit_from_env

    env = limit_from_env()
    if env is not None:
        return env
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 << 30


def _numel(func, args, kwargs) -> int | None:
    size: Any = kwargs.get("size")
    if size is None:
        for a in args:  # randint(high, size) / full(size, v) / empty(size) / empty(*dims)
            if isinstance(a, (tuple, list, torch.Size)):
                size = a
                break
    if size is None:
        dims = []
        for a in args:
            if isinstance(a, bool) or not isinstance(a, int):
                break
            dims.append(a)
        if func is torch.eye and dims:
            size = (dims[0], dims[1] if len(dims) > 1 else dims[0])
        elif func is torch.randint:
            return None  # randint(low, high, size): size is a sequence, seen above
        else:
            size = dims
    n = 1
    for d in size:
        if not isinstance(d, int) or isinstance(d, bool):
            return None  # symbolic sizes (tracing): not an allocation request
        if d < 0:
            raise AllocationRefused(f"negative tensor size {tuple(size)} requested")
        n *= d
    return n


class allocation_budget(TorchFunctionMode):
    """Counts the bytes of factory calls made inside; refuses the one that passes `limit`."""

    def __init__(self, limit: int | None = None, what: str = "this model"):
        super().__init__()
        self.limit = default_limit() if limit is None else int(limit)
        self.what = what
        self.used = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _FACTORIES:
            n = _numel(func, args, kwargs)
            if n is not None:
                dtype = kwargs.get("dtype") or (torch.int64 if func in (torch.randint, torch.randperm)
                                                else torch.get_default_dtype())
                nbytes = n * dtype.itemsize
                if self.used + nbytes > self.limit:
                    raise AllocationRefused(
                        f"{self.what} would need more than {_human(self.limit)} (a tensor of "
                        f"{n:,} elements, {_human(nbytes)}, after {_human(self.used)}); refused "
                        f"before allocating (limit: STEPORT_MAX_BYTES or half the RAM)")
                self.used += nbytes
        return func(*args, **kwargs)


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover
