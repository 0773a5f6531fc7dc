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

from ..conftest import ISAS, assert_bitexact, available_isas, run_steport
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


def _register_with_fake_ort(version_string: bytes, served_versions: set[int]):
    """Call the library's RegisterCustomOps with a stand-in OrtApiBase that serves only the
    API versions in ``served_versions`` (an old onnxruntime answers GetApi(21) with nullptr). Returns
    (the status pointer it returned, [(code, message)] passed to CreateStatus)."""
    create_status = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p)
    get_api = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_uint32)
    # c_void_p, not c_char_p: a callback cannot hand out a Python bytes object's memory
    get_version = ctypes.CFUNCTYPE(ctypes.c_void_p)

    class OrtApiBase(ctypes.Structure):
        _fields_ = [("GetApi", get_api), ("GetVersionString", get_version)]

    made: list[tuple[int, str]] = []
    sentinel = ctypes.create_string_buffer(8)  # stands for the OrtStatus* the fake returns
    version = ctypes.create_string_buffer(version_string)

    def fake_create_status(code, msg):
        made.append((code, msg.decode()))
        return ctypes.addressof(sentinel)

    keep = [create_status(fake_create_status)]
    # OrtApi starts with CreateStatus in every version; the other slots are never reached
    table = (ctypes.c_void_p * 8)(ctypes.cast(keep[0], ctypes.c_void_p).value)
    base = OrtApiBase(get_api(lambda v: ctypes.addressof(table) if v in served_versions else None),
                      get_version(lambda: ctypes.addressof(version)))
    lib = ctypes.CDLL(library_path())
    lib.RegisterCustomOps.restype = ctypes.c_void_p
    lib.RegisterCustomOps.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    status = lib.RegisterCustomOps(None, ctypes.byref(base))
    return status, made, ctypes.addressof(sentinel)


def test_too_old_onnxruntime_is_refused_with_an_error_status():
    """onnxruntime < 1.21 serves no API version 21: registration must fail with a status
    that names both versions, not report success with no op registered."""
    status, made, sentinel = _register_with_fake_ort(b"1.20.1", {1})
    assert status == sentinel
    assert len(made) == 1
    code, msg = made[0]
    assert code == 9  # ORT_NOT_IMPLEMENTED
    assert "onnxruntime >= 1.21" in msg and "1.20.1" in msg, msg


def test_real_onnxruntime_registers_without_error():
    """The check passes on the onnxruntime we run with (its version is >= 1.21)."""
    so = ort.SessionOptions()
    so.register_custom_ops_library(library_path())  # raises on an error status
    assert tuple(int(p) for p in ort.__version__.split(".")[:2]) >= (1, 21)


def test_build_info_reports_isa():
    info = build_info()
    assert info["best_isa"] in ("portable", "avx2", "avx512")
    assert info["cuda"] is False


def test_bad_isa_override_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("STEPORT_ISA", "sse9")
    model = single_node_model(PACT, {"X": np.ones(3, np.float32)},
                              {"alpha": np.array(1.0, np.float32)}, bits=4)
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.RuntimeException, match="STEPORT_ISA"):
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


def _best_isa_from_cpuinfo() -> str | None:
    """The SIMD path the dispatch rule (ort_ops/core/common/cpu.cc, BestIsa) should pick,
    from the kernel's view of the CPU (flags the OS cannot save are not listed)."""
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return None
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), None)
    if line is None:  # not x86 Linux
        return None
    flags = set(line.split(":", 1)[1].split())
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx2", "fma"} <= flags:
        return "avx512"
    if {"avx2", "fma", "popcnt"} <= flags:
        return "avx2"
    return "portable"


def test_isa_fixture_covers_this_cpu():
    """The `isa` fixture runs every path this CPU has, and no more: the library's choice
    agrees with the CPU flags, so a broken detection cannot skip the AVX paths silently."""
    expected = _best_isa_from_cpuinfo()
    if expected is None:
        pytest.skip("no /proc/cpuinfo flags (not x86 Linux)")
    assert build_info()["best_isa"] == expected
    assert available_isas() == ISAS[: ISAS.index(expected) + 1]
