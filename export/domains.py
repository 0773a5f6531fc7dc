"""onnxscript opsets for steport's custom domains, derived from the registry. Each family's
export module makes its own (``QUANT = family_opset("quant")``), so the family list stays
the registry's (spec.DOMAINS) alone."""
from __future__ import annotations

from onnxscript import opset18 as op  # noqa: F401  (the standard opset = registry ONNX_OPSET)
from onnxscript.values import Opset

from steport.registry import DOMAIN_VERSION, DOMAINS, ONNX_OPSET

assert ONNX_OPSET == 18, "domains.py imports onnxscript.opset18; keep in step with the registry"


def family_opset(family: str) -> Opset:
    """The onnxscript opset of a family's domain (``ai.steport.<family>``, version 1)."""
    return Opset(DOMAINS[family], DOMAIN_VERSION)
