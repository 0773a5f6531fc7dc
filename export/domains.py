"""onnxscript opsets for steport's custom domains, derived from the registry."""
from __future__ import annotations

from onnxscript import opset18 as op  # noqa: F401  (the standard opset = registry ONNX_OPSET)
from onnxscript.values import Opset

from steport.registry import DOMAIN_VERSION, DOMAINS, ONNX_OPSET

assert ONNX_OPSET == 18, "domains.py imports onnxscript.opset18; keep in step with the registry"

QUANT = Opset(DOMAINS["quant"], DOMAIN_VERSION)
BINARY = Opset(DOMAINS["binary"], DOMAIN_VERSION)
APPROX = Opset(DOMAINS["approx"], DOMAIN_VERSION)
LOGIC = Opset(DOMAINS["logic"], DOMAIN_VERSION)
