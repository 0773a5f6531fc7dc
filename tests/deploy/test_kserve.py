"""The KServe predictor (`steport serve --engine kserve`, KServe's ModelServer) end to end in
a subprocess (KServe's gRPC modules and tritonclient.grpc cannot share a process), on
127.0.0.1: tritonclient.http and tritonclient.grpc get results bit-identical to
`steport.session` for a model of each family, metadata comes from the model, bad requests
get 400 / INVALID_ARGUMENT / NOT_FOUND; and the KServe manifests under deploy/manifests are
valid KServe objects."""
from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

if importlib.util.find_spec("kserve") is None:  # find, not import: see the docstring
    pytest.skip("kserve is not installed (pip install 'steport[kserve]')", allow_module_level=True)
grpcclient = pytest.importorskip("tritonclient.grpc")
import tritonclient.http as httpclient  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

import steport  # noqa: E402

from .models import FAMILY_MODELS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FAMILIES = sorted(FAMILY_MODELS)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def kserve_server(model_dir):
    http_port, grpc_port = _free_ports(2)
    proc = subprocess.Popen([sys.executable, "-m", "steport", "serve", str(model_dir[0]),
                             "--engine", "kserve", "--host", "127.0.0.1", "--port", str(http_port),
                             "--grpc-port", str(grpc_port), "--threads", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True).start()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("KServe server exited:\n" + "".join(log[-30:]))
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/health/ready", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        raise AssertionError("KServe server not ready in 90 s:\n" + "".join(log[-30:]))
    yield http_port, grpc_port, proc, log
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.mark.parametrize("family", FAMILIES)
def test_http_and_grpc_bit_identical_to_session(kserve_server, model_dir, family):
    http_port, grpc_port, _, _ = kserve_server
    path, x, _ = model_dir[1][family]
    sess = steport.session(str(path), threads=1)
    in_name, out_names = sess.get_inputs()[0].name, [o.name for o in sess.get_outputs()]
    want = sess.run(None, {in_name: x})

    hc = httpclient.InferenceServerClient(f"127.0.0.1:{http_port}")
    got = {}
    for binary in (False, True):
        hin = httpclient.InferInput(in_name, list(x.shape), "FP32")
        hin.set_data_from_numpy(x, binary_data=binary)
        # KServe reads a body without Content-Type: application/json as binary tensors
        res = hc.infer(family, [hin], request_id=f"h{binary}",
                       headers=None if binary else {"Content-Type": "application/json"}, outputs=[
            httpclient.InferRequestedOutput(n, binary_data=binary) for n in out_names])
        got[f"http binary={binary}"] = [res.as_numpy(n) for n in out_names]
    gc = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    gin = grpcclient.InferInput(in_name, list(x.shape), "FP32")
    gin.set_data_from_numpy(x)
    res = gc.infer(family, [gin], client_timeout=60)
    got["grpc"] = [res.as_numpy(n) for n in out_names]
    for how, outs in got.items():
        for w, g in zip(want, outs):
            assert g.dtype == w.dtype and g.shape == w.shape, how
            assert np.array_equal(g.view(np.uint8), w.view(np.uint8)), (family, how)


def test_metadata_from_the_model_and_errors(kserve_server, model_dir):
    http_port, grpc_port, proc, _ = kserve_server
    hc = httpclient.InferenceServerClient(f"127.0.0.1:{http_port}")
    gc = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    meta = hc.get_model_metadata("float")
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 5]}]
    assert meta["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 3]}]
    gmeta = gc.get_model_metadata("fixed", as_json=True)
    assert gmeta["inputs"] == [{"name": "a", "datatype": "INT32", "shape": ["4"]}]
    assert gc.is_server_ready() and gc.is_model_ready("pact")

    x = model_dir[1]["float"][1]

    def http_status(name, arr, dtype):
        i = httpclient.InferInput("x", list(arr.shape), dtype)
        i.set_data_from_numpy(arr, binary_data=False)
        with pytest.raises(InferenceServerException) as e:
            hc.infer(name, [i], headers={"Content-Type": "application/json"})
        return e.value.status()

    def grpc_status(name, arr, dtype):
        i = grpcclient.InferInput("x", list(arr.shape), dtype)
        i.set_data_from_numpy(arr)
        with pytest.raises(InferenceServerException) as e:
            gc.infer(name, [i], client_timeout=30)
        return e.value.status()

    assert http_status("float", x.astype(np.float64), "FP64") == "400"
    assert http_status("float", x[:, :4].copy(), "FP32") == "400"
    assert http_status("nope", x, "FP32") == "404"
    assert "INVALID_ARGUMENT" in grpc_status("float", x.astype(np.float64), "FP64")
    assert "INVALID_ARGUMENT" in grpc_status("float", np.full_like(x, np.nan), "FP32")
    assert "NOT_FOUND" in grpc_status("nope", x, "FP32")
    assert proc.poll() is None and hc.is_server_ready()


def test_manifests_are_valid_kserve_objects():
    p = subprocess.run([sys.executable, str(ROOT / "tests" / "deploy" / "kserve_manifests.py"),
                        str(ROOT / "deploy" / "manifests" / "kserve-servingruntime.yaml"),
                        str(ROOT / "deploy" / "manifests" / "kserve-inferenceservice.yaml")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("a valid") == 2
