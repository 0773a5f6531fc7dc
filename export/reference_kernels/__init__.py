"""numpy reference kernels of every steport op: a third, independent implementation (next to
the C++ kernels and the standard-ONNX fallback bodies), one module per family.

They run three ways: called directly (``reference_kernels.pact(x, alpha, bits=4)``), as
``onnx.reference`` ops (``reference_evaluator(model)``, evaluator.py),
and inside ONNX Runtime through onnxruntime-extensions (export/ort_extensions.py, used by
``steport verify --backend python`` and ``verify.localize_mismatch``). Importing this package
registers every family's kernels (kernels.py has the registry)."""
from __future__ import annotations

from .approx import (approx_conv_integer, approx_matmul_integer, approx_q_linear_conv,
                     approx_q_linear_matmul)
from .binary import binary_conv2d, binary_gemm
from .evaluator import reference_evaluator, reference_ops
from .kernels import (Kernel, PythonBackendError, kernel_for, kernels_cover, numpy_kernel,
                      override_kernel, registered_kernels)
from .logic import logic_layer, logic_net
from .quant import pact

__all__ = ["Kernel", "PythonBackendError", "kernel_for", "kernels_cover", "numpy_kernel",
           "override_kernel", "registered_kernels", "reference_evaluator", "reference_ops",
           "pact", "binary_gemm", "binary_conv2d", "approx_matmul_integer",
           "approx_conv_integer", "approx_q_linear_matmul", "approx_q_linear_conv",
           "logic_layer", "logic_net"]
