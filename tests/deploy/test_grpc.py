"""`steport serve`'s v2 gRPC service with the official `tritonclient.grpc` client (and the raw
generated stub where tritonclient would refuse to send a malformed request): for a model of
each family the answer equals a direct `steport.session` run bit for bit, over gRPC and
over HTTP; metadata, readiness, large tensors, concurrent calls and streams; bad requests
get INVALID_ARGUMENT / NOT_FOUND / RESOURCE_EXHAUSTED and the server keeps serving."""
from __future__ import annotations

import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

grpcclient = pytest.importorskip("tritonclient.grpc")
import grpc  # noqa: E402
import tritonclient.http as httpclient  # noqa: E402
from tritonclient.grpc import service_pb2 as pb  # noqa: E402
from tritonclient.grpc import service_pb2_grpc as pb_grpc  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

import steport  # noqa: E402
from steport.deploy.metrics import parse_text  # noqa: E402

from .models import FAMILY_MODELS  # noqa: E402

FAMILIES = sorted(FAMILY_MODELS)


@pytest.fixture
def grpc_server(make_server):
    return make_server(grpc_port=0)


def gclient(srv):
    return grpcclient.InferenceServerClient(f"127.0.0.1:{srv.grpc_port}")


def session_outputs(path, x):
    sess = steport.session(str(path), threads=1)
    return sess.run(None, {sess.get_inputs()[0].name: x})


def grpc_infer(c, name, x, input_name, dtype="FP32"):
    inp = grpcclient.InferInput(input_name, list(x.shape), dtype)
    inp.set_data_from_numpy(x)
    return c.infer(name, [inp], client_timeout=60)


@pytest.mark.parametrize("family", FAMILIES)
def test_grpc_and_http_bit_identical_to_session(grpc_server, model_dir, family):
    path, x, _ = model_dir[1][family]
    sess = steport.session(str(path), threads=1)
    in_name, out_names = sess.get_inputs()[0].name, [o.name for o in sess.get_outputs()]
    want = session_outputs(path, x)
    res = grpc_infer(gclient(grpc_server), family, x, in_name)
    hc = httpclient.InferenceServerClient(grpc_server.url)
    hin = httpclient.InferInput(in_name, list(x.shape), "FP32")
    hin.set_data_from_numpy(x, binary_data=True)
    hres = hc.infer(family, [hin], outputs=[httpclient.InferRequestedOutput(n, binary_data=True)
                                            for n in out_names])
    for name, w in zip(out_names, want):
        for got in (res.as_numpy(name), hres.as_numpy(name)):
            assert got.dtype == w.dtype and got.shape == w.shape
            assert np.array_equal(got.view(np.uint8), w.view(np.uint8)), family  # bits, not values
    assert res.get_response().model_name == family


def test_health_and_metadata(grpc_server, model_dir):
    c = gclient(grpc_server)
    assert c.is_server_live() and c.is_server_ready()
    assert c.is_model_ready("float") and c.is_model_ready("float", "1")
    meta = c.get_model_metadata("float", as_json=True)
    assert meta["name"] == "float" and meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": ["-1", "5"]}]
    assert meta["outputs"] == [{"name": "y", "datatype": "FP32", "shape": ["-1", "3"]}]
    smeta = c.get_server_metadata(as_json=True)
    assert smeta["name"] == "steport" and "binary_tensor_data" in smeta["extensions"]
    fixed = c.get_model_metadata("fixed", as_json=True)
    assert fixed["inputs"][0] == {"name": "a", "datatype": "INT32", "shape": ["4"]}
    names = {m["name"] for m in c.get_model_repository_index(as_json=True)["models"]}
    assert names == {"fixed", *FAMILIES}
    with pytest.raises(InferenceServerException) as e:
        c.get_model_metadata("nope")
    assert "NOT_FOUND" in e.value.status()


def _status(fn) -> str:
    with pytest.raises(InferenceServerException) as e:
        fn()
    return e.value.status()


def test_bad_requests_get_grpc_codes_and_server_keeps_serving(make_server, model_dir):
    srv = make_server(grpc_port=0, max_body_bytes=1 << 20)
    c = gclient(srv)
    x = model_dir[1]["float"][1]
    # wrong datatype
    assert "INVALID_ARGUMENT" in _status(lambda: grpc_infer(c, "float", x.astype(np.float64), "x",
                                                            "FP64"))
    # unknown model, unknown version
    assert "NOT_FOUND" in _status(lambda: grpc_infer(c, "nope", x, "x"))
    assert "NOT_FOUND" in _status(lambda: c.infer("float", [], model_version="7"))
    # unknown input name, wrong rank / fixed dim
    assert "INVALID_ARGUMENT" in _status(lambda: grpc_infer(c, "float", x, "nope"))
    assert "INVALID_ARGUMENT" in _status(lambda: grpc_infer(c, "float", x[:, :4].copy(), "x"))
    # a message above the server's limit (2 MiB of FP32 against 1 MiB)
    big = np.zeros((1 << 17, 4), np.float32)
    assert "RESOURCE_EXHAUSTED" in _status(lambda: grpc_infer(c, "float", big, "x"))

    # what tritonclient refuses to send: the raw stub
    stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}"))

    def code(req):
        with pytest.raises(grpc.RpcError) as e:
            stub.ModelInfer(req, timeout=30)
        return e.value.code(), e.value.details()

    def request(shape, raw=None, **contents):
        r = pb.ModelInferRequest(model_name="float")
        t = r.inputs.add(name="x", datatype="FP32", shape=shape)
        if contents:
            t.contents.CopyFrom(pb.InferTensorContents(**contents))
        if raw is not None:
            r.raw_input_contents.append(raw)
        return r

    cases = {
        "shape/data mismatch (raw)": request([2, 5], raw=np.zeros(7, np.float32).tobytes()),
        "shape/data mismatch (typed)": request([2, 5], fp32_contents=[1.0] * 9),
        "typed field of another datatype": request([1, 5], int_contents=[1] * 5),
        "negative dim": request([-1, 5], fp32_contents=[1.0] * 5),
        "huge dim": request([0, 1 << 62], raw=b""),
        "NaN": request([1, 5], fp32_contents=[float("nan")] * 5),
        "no inputs": pb.ModelInferRequest(model_name="float"),
    }
    for what, req in cases.items():
        st, msg = code(req)
        assert st == grpc.StatusCode.INVALID_ARGUMENT, (what, st, msg)
    st, msg = code(request([1 << 21, 5], raw=b""))  # more elements than max_elements allows
    assert st in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED), msg
    bad_out = request([1, 5], fp32_contents=[1.0] * 5)
    bad_out.outputs.add(name="nope")
    assert code(bad_out)[0] == grpc.StatusCode.INVALID_ARGUMENT
    # still serving, and the typed-contents form answers like raw
    ok = stub.ModelInfer(request([1, 5], fp32_contents=[1, 2, 3, 4, 5]), timeout=30)
    got = np.frombuffer(ok.raw_output_contents[0], np.float32).reshape(1, 3)
    want = session_outputs(model_dir[1]["float"][0], np.arange(1, 6, dtype=np.float32)[None])[0]
    assert np.array_equal(got, want)
    assert c.is_server_ready()


def test_large_tensor_both_ways(make_server, model_dir):
    """~16 MB in, ~10 MB out in one call (no batching: the batch dim is not limited)."""
    srv = make_server({"threads": 1, "batching": False}, grpc_port=0)
    x = np.random.default_rng(0).standard_normal((800_000, 5)).astype(np.float32)
    res = grpc_infer(gclient(srv), "float", x, "x")
    assert np.array_equal(res.as_numpy("y"), session_outputs(model_dir[1]["float"][0], x)[0])


def test_concurrent_calls_and_streams_share_the_batcher(make_server, model_dir):
    srv = make_server({"threads": 1, "max_batch": 32, "max_delay_ms": 50}, grpc_port=0)
    path = model_dir[1]["float"][0]
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((k % 3 + 1, 5)).astype(np.float32) for k in range(48)]

    def unary(x):
        return grpc_infer(gclient(srv), "float", x, "x").as_numpy("y")

    with ThreadPoolExecutor(16) as ex:
        outs = list(ex.map(unary, xs))
    sess = steport.session(str(path), threads=1)
    for x, y in zip(xs, outs):  # each call gets its own rows (merged runs may round differently)
        np.testing.assert_allclose(y, sess.run(None, {"x": x})[0], rtol=1e-6, atol=1e-6)

    # two bidirectional streams at once, a bad request in the middle of one
    results: dict[int, list] = {0: [], 1: []}
    clients = [gclient(srv) for _ in range(2)]
    for k, c in enumerate(clients):
        c.start_stream(callback=lambda result, error, k=k: results[k].append((result, error)))
    for i in range(6):
        for k, c in enumerate(clients):
            name = "nope" if (k, i) == (1, 3) else "x"
            inp = grpcclient.InferInput(name, [1, 5], "FP32")
            inp.set_data_from_numpy(xs[i][:1])
            c.async_stream_infer("float", [inp], request_id=f"{k}-{i}")
    for c in clients:
        c.stop_stream()  # waits for the outstanding responses
    for k in (0, 1):
        assert len(results[k]) == 6
        errors = [e for _, e in results[k] if e is not None]
        assert len(errors) == (1 if k == 1 else 0), errors
        for result, error in results[k]:
            if error is None:
                i = int(result.get_response().id.split("-")[1])
                np.testing.assert_allclose(result.as_numpy("y"),
                                           sess.run(None, {"x": xs[i][:1]})[0], rtol=1e-6, atol=1e-6)
    with urllib.request.urlopen(f"http://{srv.url}/metrics", timeout=10) as r:
        m = parse_text(r.read().decode())
    assert m['steport_grpc_requests_total{code="OK",method="ModelInfer"}'] == 48 + 11
    assert m['steport_batch_requests_count{model="float"}'] < 48 + 11  # some calls merged


def test_stop_finishes_inflight_grpc_calls_then_refuses(make_server, model_dir):
    """Calls waiting in the batcher when the server stops are answered; after the stop a
    call fails with UNAVAILABLE (nothing listens), never hangs."""
    srv = make_server({"threads": 1, "max_batch": 32, "max_delay_ms": 400}, grpc_port=0)
    port = srv.grpc_port
    x = model_dir[1]["float"][1]
    want = session_outputs(model_dir[1]["float"][0], x)[0]
    with ThreadPoolExecutor(4) as ex:
        futs = [ex.submit(lambda: grpc_infer(grpcclient.InferenceServerClient(f"127.0.0.1:{port}"),
                                             "float", x, "x").as_numpy("y")) for _ in range(4)]
        time.sleep(0.15)  # all four are waiting for the 400 ms batch window
        assert srv.stop()
        for f in futs:
            np.testing.assert_allclose(f.result(timeout=30), want, rtol=1e-6, atol=1e-6)
    with pytest.raises(InferenceServerException) as e:
        grpc_infer(grpcclient.InferenceServerClient(f"127.0.0.1:{port}"), "float", x, "x")
    assert "UNAVAILABLE" in e.value.status()
