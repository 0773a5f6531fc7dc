"""Op specification types: the single source of truth that train, export, ort_ops and tests
derive from. Pure stdlib so the C++ build can import it to generate its constants header."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

# One ONNX domain per op family, version 1 (docs/ops.md). The one list of families: the
# registry loads steport.registry.<family> for each, the generated spec.h carries it to C++
# (STEPORT_FAMILIES: families.h, families.cc) and CMake reads it (`--families`).
DOMAINS: dict[str, str] = {
    "quant": "ai.steport.quant",
    "binary": "ai.steport.binary",
    "approx": "ai.steport.approx",
    "logic": "ai.steport.logic",
}
DOMAIN_VERSION = 1
# Standard ONNX opset the exporter and the fallback bodies target.
ONNX_OPSET = 18
# onnxruntime 1.31 reads IR <= 13 while onnx 1.23 writes 14 by default (docs/ops.md).
IR_VERSION = 10

REQUIRED = object()  # marker: attribute has no default


@dataclass(frozen=True)
class Port:
    """An input or output of an op. `types` are ONNX tensor element type names."""
    name: str
    types: tuple[str, ...]
    optional: bool = False
    doc: str = ""


@dataclass(frozen=True)
class Attr:
    """A node attribute. `lo`/`hi` bound ints/floats (inclusive); kernels enforce them too."""
    name: str
    kind: str  # "int" | "float" | "ints" | "floats" | "string"
    default: Any = REQUIRED
    lo: float | None = None
    hi: float | None = None
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


def _resolve(path: str | None) -> Callable | None:
    """'pkg.module:attr' -> object (imported lazily so the registry stays light)."""
    if path is None:
        return None
    mod, _, attr = path.partition(":")
    return getattr(importlib.import_module(mod), attr)


@dataclass(frozen=True)
class OpSpec:
    family: str
    name: str
    version: int
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    attrs: tuple[Attr, ...] = ()
    # "namespace::name" of the torch.library custom op; None for export-only ops (e.g. a
    # fused node that only the exporter builds).
    torch_op: str | None = None
    # "module:function" of the onnxscript translation used in custom_translation_table.
    translation: str | None = None
    # "module:function" returning the onnx.FunctionProto fallback body in standard ONNX.
    fallback: str | None = None
    # Execution providers with a kernel in libsteport_ops ("cpu", "cuda").
    kernels: tuple[str, ...] = ("cpu",)
    doc: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def domain(self) -> str:
        return DOMAINS[self.family]

    @property
    def qualname(self) -> str:
        return f"{self.domain}::{self.name}"

    def attr(self, name: str) -> Attr:
        for a in self.attrs:
            if a.name == name:
                return a
        raise KeyError(f"{self.qualname} has no attribute {name!r}")

    def translation_fn(self):
        return _resolve(self.translation)

    def fallback_fn(self):
        return _resolve(self.fallback)
