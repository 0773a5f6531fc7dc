"""Where the Python debug backend's public names used to live, kept for existing imports
(``from steport.export import pyops``; docs/extensions.md). The code is split by purpose:

- ``steport.export.reference_kernels``: the numpy reference kernels, one module per family,
  their registry (``numpy_kernel``, ``kernel_for``, ``override_kernel``) and their
  ``onnx.reference`` ops (``reference_evaluator``, ``reference_ops``);
- ``steport.export.ort_extensions``: running them inside ONNX Runtime through
  onnxruntime-extensions (``python_session``, ``to_python_backend``);
- ``steport.export.verify``: per-node mismatch localization (``localize_mismatch``)."""
from __future__ import annotations

from .ort_extensions import PY_DOMAIN, PythonSession, python_session, to_python_backend
from .reference_kernels import (PythonBackendError, approx_conv_integer, approx_matmul_integer,
                                approx_q_linear_conv, approx_q_linear_matmul, binary_conv2d, binary_gemm, kernel_for, kernels_cover,
                                logic_layer, logic_net, numpy_kernel, override_kernel, pact,
                                reference_evaluator, reference_ops, registered_kernels)
from .verify import NodeDiff, NodeReport, localize_mismatch

__all__ = ["numpy_kernel", "kernel_for", "registered_kernels", "to_python_backend",
           "python_session", "PythonSession", "localize_mismatch", "override_kernel",
           "NodeReport", "NodeDiff", "PythonBackendError", "kernels_cover", "PY_DOMAIN",
           "reference_evaluator", "reference_ops", "pact", "binary_gemm", "binary_conv2d",
           "approx_matmul_integer", "approx_conv_integer", "approx_q_linear_matmul",
           "approx_q_linear_conv", "logic_layer", "logic_net"]
