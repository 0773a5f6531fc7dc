"""The registry of steport's numpy reference kernels: one function per op, found by
(domain, name). The kernels themselves live in this package's family modules
(quant.py, binary.py, approx.py, logic.py); importing the package registers them all.

Adding a kernel for a new op: write a numpy function in its family's module and decorate it
with ``@numpy_kernel("<family>", "<OpName>")``. It receives the node's inputs as numpy arrays
(omitted optional inputs as ``None``) and its attributes as keyword arguments (decoded to
Python values, registry defaults filled in), and returns one array per output (a tuple when
the op has several). The onnxruntime-extensions bridge (export/ort_extensions.py) and the
onnx.reference ops (evaluator.py) derive everything else from the OpSpec."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable

import onnx

from steport.registry import DOMAINS, get


class PythonBackendError(RuntimeError):
    """The python backend cannot run this model (missing kernel, unsupported type...)."""


@dataclass(frozen=True)
class Kernel:
    domain: str
    name: str
    fn: Callable[..., Any]


_KERNELS: dict[tuple[str, str], Kernel] = {}


def numpy_kernel(domain_or_family: str, name: str):
    """Decorator: register ``fn`` as the numpy kernel of a registry op."""
    spec = get(domain_or_family, name)  # KeyError for ops the registry does not know

    def deco(fn):
        _KERNELS[(spec.domain, spec.name)] = Kernel(spec.domain, spec.name, fn)
        return fn
    return deco


def kernel_for(domain: str, name: str) -> Kernel:
    try:
        return _KERNELS[(domain, name)]
    except KeyError:
        have = sorted(f"{d}::{n}" for d, n in _KERNELS)
        raise PythonBackendError(f"no python kernel for {domain}::{name} (have: {have}); add "
                                 "one with @numpy_kernel in its family's module of "
                                 "steport/export/reference_kernels/") from None


@contextlib.contextmanager
def override_kernel(domain_or_family: str, name: str, fn: Callable[..., Any]):
    """Temporarily replace an op's numpy kernel (e.g. to try a fix, or to plant a bug in a
    test); sessions already created pick it up too, since kernels are looked up per call."""
    spec = get(domain_or_family, name)
    key = (spec.domain, spec.name)
    old = _KERNELS.get(key)
    _KERNELS[key] = Kernel(spec.domain, spec.name, fn)
    try:
        yield
    finally:
        if old is None:
            _KERNELS.pop(key, None)
        else:
            _KERNELS[key] = old


def registered_kernels() -> list[str]:
    return sorted(f"{d}::{n}" for d, n in _KERNELS)


def kernels_cover(model: onnx.ModelProto) -> list[str]:
    """Steport ops of ``model`` that have no numpy kernel (empty list: all covered)."""
    ours = set(DOMAINS.values())
    return sorted({f"{n.domain}::{n.op_type}" for n in model.graph.node
                   if n.domain in ours and (n.domain, n.op_type) not in _KERNELS})
