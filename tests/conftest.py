"""Shared fixtures: sessions with/without the op library, ISA paths, GPU skip."""
from __future__ import annotations

import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import steport
from steport.ort_ops import build_info

ISAS = ["portable", "avx2", "avx512"]


def available_isas() -> list[str]:
    best = build_info()["best_isa"]
    return ISAS[: ISAS.index(best) + 1]


@pytest.fixture(params=ISAS)
def isa(request, monkeypatch):
    """Each SIMD path in turn (STEPORT_ISA is read when a kernel is created)."""
    if request.param not in available_isas():
        pytest.skip(f"this CPU has no {request.param}")
    monkeypatch.setenv("STEPORT_ISA", request.param)
    return request.param


def run_steport(model: onnx.ModelProto, feeds: dict, threads: int = 2):
    """ORT with libsteport_ops registered."""
    return steport.session(model.SerializeToString(), threads=threads).run(None, feeds)


def run_fallback(model: onnx.ModelProto, feeds: dict):
    """Stock ORT, no library: the model-local fallback bodies run."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so).run(None, feeds)


def requires_cuda():
    try:
        import torch

        ok = torch.cuda.is_available()
    except Exception:  # pragma: no cover
        ok = False
    return pytest.mark.skipif(not ok, reason="needs a CUDA GPU")


def assert_bitexact(a, b, what=""):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, f"{what}: shapes {a.shape} vs {b.shape}"
    assert a.dtype == b.dtype, f"{what}: dtypes {a.dtype} vs {b.dtype}"
    np.testing.assert_array_equal(a, b, err_msg=what)


@pytest.fixture(autouse=True)
def _seed():
    np.random.seed(0)
    try:
        import torch

        torch.manual_seed(0)
    except ImportError:  # pragma: no cover
        pass
    yield


os.environ.setdefault("OMP_NUM_THREADS", "2")
