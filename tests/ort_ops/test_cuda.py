"""Every CUDA kernel against the CPU op, and the CUDA kernel list against the registry.

The registry's ``kernels`` field says which ops have a CUDA kernel. The bindings cannot
register one the registry lacks (glue.h ``CudaDesc`` static_asserts spec.h's ``kCudaKernel``);
the other direction is checked here from the CUDA variant's build info, which lists the ops its
bindings registered for the CUDA execution provider (no GPU needed, only the variant).

On a machine with onnxruntime-gpu and a GPU, each CUDA op runs the same inputs as
``tests/test_reference_evaluator.py`` (its corners: tails, zero points, NaN logic inputs, every
gate id) and must match the CPU kernel bit for bit (the CUDA code is built with --fmad=false and
sums integers exactly, as the CPU kernels do). Elsewhere those runs are skipped."""
from __future__ import annotations

import onnxruntime as ort
import pytest

import steport
from steport.ort_ops import build_info, has_cuda
from steport.registry import OPS

from ..conftest import assert_bitexact, run_steport
from ..test_reference_evaluator import _examples

CUDA_OPS = [op for op in OPS if "cuda" in op.kernels]
HAVE_GPU = "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.skipif(not has_cuda(), reason="CUDA variant not built (no nvcc at install time)")
def test_cuda_bindings_are_the_registry_cuda_kernels():
    assert sorted(build_info(cuda=True)["cuda_ops"]) == sorted(op.qualname for op in CUDA_OPS)
    assert build_info()["cuda_ops"] == []  # the CPU library registers no CUDA kernel


def test_every_cuda_op_has_examples():
    """The GPU comparison below takes its inputs from the reference-evaluator examples; an op
    given a CUDA kernel without examples would go untested."""
    for op in CUDA_OPS:
        assert _examples(op), op.qualname


@pytest.mark.skipif(not HAVE_GPU, reason="needs onnxruntime-gpu and a CUDA GPU")
@pytest.mark.parametrize("spec", CUDA_OPS, ids=lambda s: s.qualname)
def test_cuda_kernel_matches_cpu(spec):  # pragma: no cover - runs only on GPU machines
    for model, feeds in _examples(spec, seed=1):
        blob = model.SerializeToString()
        gpu = steport.session(blob, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
        # the CUDA provider is active (ORT then places the node on its CUDA kernel, which the
        # registration test above shows exists)
        assert gpu.get_providers()[0] == "CUDAExecutionProvider"
        got = gpu.run(None, feeds)
        for y, want in zip(got, run_steport(model, feeds)):
            assert_bitexact(y, want)
