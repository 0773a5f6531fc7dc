"""The built libraries: entry points, CUDA variant loading without a GPU, ISA dispatch."""
from __future__ import annotations

import ctypes
import subprocess

import numpy as np
import onnxruntime as ort
import pytest

import steport
from steport.ort_ops import build_info, has_cuda, library_path
from steport.registry import get

from ..conftest import assert_bitexact, available_isas, run_steport
from ..helpers import single_node_model

PACT = get("quant", "Pact")


def _exported_symbols(path: str) -> set[str]:
    out = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True, text=True,
                         check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


# The ORT entry point, the info hook, and the C ABI the training ops call
# (ort_ops/include/steport/approx_abi.h); nothing else.
ENTRY_POINTS = {"RegisterCustomOps", "SteportBuildInfo", "steport_approx_matmul",
                "steport_approx_conv2d", "steport_approx_preparations"}


def test_only_entry_points_are_exported():
    """The version script keeps every internal symbol local."""
    syms = {s for s in _exported_symbols(library_path()) if not s.startswith("_")}
    assert syms == ENTRY_POINTS, syms


def test_build_info_reports_isa():
    info = build_info()
    assert info["best_isa"] in ("portable", "avx2", "avx512")
    assert info["cuda"] is False


def test_bad_isa_override_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("STEPORT_ISA", "sse9")
    model = single_node_model(PACT, {"X": np.ones(3, np.float32)},
                              {"alpha": np.array(1.0, np.float32)}, bits=4)
    with pytest.raises(Exception, match="STEPORT_ISA"):
        steport.session(model.SerializeToString())


@pytest.mark.skipif(not has_cuda(), reason="CUDA variant not built (no nvcc at install time)")
def test_cuda_variant_loads_and_runs_cpu_kernels_without_gpu():
    """libsteport_ops_cuda.so links cudart statically: it loads on a machine with no CUDA
    runtime or GPU and its CPU kernels give the same results."""
    lib = ctypes.CDLL(library_path(cuda=True))
    lib.SteportBuildInfo.restype = ctypes.c_char_p
    assert b'"cuda": true' in lib.SteportBuildInfo()
    x = np.linspace(-2, 5, 1001, dtype=np.float32)
    model = single_node_model(PACT, {"X": x}, {"alpha": np.array(3.0, np.float32)}, bits=5)
    so = ort.SessionOptions()
    so.register_custom_ops_library(library_path(cuda=True))
    y = ort.InferenceSession(model.SerializeToString(), so).run(None, {"X": x})[0]
    assert_bitexact(y, run_steport(model, {"X": x})[0])


@pytest.mark.skipif("CUDAExecutionProvider" not in ort.get_available_providers(),
                    reason="needs onnxruntime-gpu and a CUDA GPU")
def test_cuda_pact_matches_cpu():  # pragma: no cover - runs only on GPU machines
    x = (np.random.default_rng(0).standard_normal(1 << 20) * 3).astype(np.float32)
    model = single_node_model(PACT, {"X": x}, {"alpha": np.array(3.0, np.float32)}, bits=4)
    gpu = steport.session(model.SerializeToString(),
                          providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert_bitexact(gpu.run(None, {"X": x})[0], run_steport(model, {"X": x})[0])


def test_isa_fixture_covers_this_cpu():
    assert "portable" in available_isas()
