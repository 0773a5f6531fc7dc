"""The op registry: every custom op steport knows, by family.

Train (torch custom ops), export (translations, fallback bodies), ort_ops (the generated
C++ constants header, see `python -m steport.registry --header`) and tests all derive from
`OPS`. Adding an op means adding an OpSpec to its family's module here."""
from __future__ import annotations

import importlib

from .model_check import model_problems
from .spec import DOMAIN_VERSION, DOMAINS, IR_VERSION, ONNX_OPSET, REQUIRED, Attr, OpSpec, Port

# Each family's ops live in the module of the same name (steport.registry.<family>); the
# family list itself is spec.DOMAINS, the one list C++ (generated spec.h) and CMake read too.
def _family_ops(family: str) -> list[OpSpec]:
    ops = importlib.import_module(f"{__name__}.{family}").OPS
    for op in ops:
        if op.family != family:  # pragma: no cover - guards against copy-paste between families
            raise RuntimeError(f"steport.registry.{family} declares {op.name} of family {op.family!r}")
    return ops


OPS: tuple[OpSpec, ...] = tuple(op for family in DOMAINS for op in _family_ops(family))

_BY_KEY = {(op.domain, op.name): op for op in OPS}
if len(_BY_KEY) != len(OPS):  # pragma: no cover - guards against copy-paste in a family file
    raise RuntimeError("duplicate op in steport.registry")


def get(domain_or_family: str, name: str) -> OpSpec:
    domain = DOMAINS.get(domain_or_family, domain_or_family)
    try:
        return _BY_KEY[(domain, name)]
    except KeyError:
        raise KeyError(f"no op {domain}::{name} in the steport registry") from None


def by_torch_op(qualname: str) -> OpSpec:
    for op in OPS:
        if op.torch_op == qualname:
            return op
    raise KeyError(f"no registry op for torch op {qualname}")


def check_model_ops(model) -> None:
    """Raise ValueError if an ONNX model (ModelProto) uses a steport domain version or op
    this registry does not have, anywhere (subgraphs and model-local functions included), or
    gives a steport node attributes the registry does not allow: better a clear error than
    a silent fallback body or a silent default (docs/ops.md "Models steport refuses")."""
    problems = model_problems(model, _BY_KEY)
    if problems:
        shown = problems[:10] + ([f"... and {len(problems) - 10} more"] if len(problems) > 10 else [])
        raise ValueError("model is refused by the steport registry: " + "; ".join(shown))


def families() -> dict[str, tuple[OpSpec, ...]]:
    return {f: tuple(op for op in OPS if op.family == f) for f in DOMAINS}


__all__ = ["OPS", "DOMAINS", "DOMAIN_VERSION", "IR_VERSION", "ONNX_OPSET", "REQUIRED",
           "Attr", "OpSpec", "Port", "get", "by_torch_op", "families", "check_model_ops"]
