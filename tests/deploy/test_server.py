"""The v2 server end to end with the official tritonclient HTTP client, for a model of
each family, plus raw-HTTP error cases: every bad request gets a clear 4xx JSON error and
the server keeps serving."""
from __future__ import annotations

import gzip
import http.client
import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

tc = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

from steport.deploy.metrics import parse_text  # noqa: E402

from .models import FAMILY_MODELS  # noqa: E402

FAMILIES = sorted(FAMILY_MODELS)


def client(srv):
    return tc.InferenceServerClient(url=srv.url, connection_timeout=10, network_timeout=30)


def infer(c, name, x, input_name, binary_in=True, binary_out=True, **kw):
    inp = tc.InferInput(input_name, list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary_in)
    out = tc.InferRequestedOutput(c.get_model_metadata(name)["outputs"][0]["name"],
                                  binary_data=binary_out)
    return c.infer(name, [inp], outputs=[out], **kw)


def raw(srv, method, path, body=None, headers=None):
    """(status, headers, parsed JSON or bytes) with http.client: no client-side checks."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        try:
            data = json.loads(data)
        except ValueError:
            pass
        return r.status, dict(r.getheaders()), data
    finally:
        conn.close()


def test_health_and_server_metadata(server):
    c = client(server)
    assert c.is_server_live() and c.is_server_ready()
    meta = c.get_server_metadata()
    assert meta["name"] == "steport" and "binary_tensor_data" in meta["extensions"]
    assert c.is_model_ready("float") and not c.is_model_ready("nope")


@pytest.mark.parametrize("family", FAMILIES)
def test_metadata_matches_model(server, model_dir, family):
    import onnxruntime as ort

    path, x, _ = model_dir[1][family]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]) \
        if family == "float" else server.repo.get(family).session
    meta = client(server).get_model_metadata(family)
    assert meta["name"] == family and meta["platform"] == "onnxruntime_onnx"
    assert [i["name"] for i in meta["inputs"]] == [i.name for i in sess.get_inputs()]
    assert [o["name"] for o in meta["outputs"]] == [o.name for o in sess.get_outputs()]
    assert meta["inputs"][0]["datatype"] == "FP32"
    assert meta["inputs"][0]["shape"] == [-1, *x.shape[1:]], "batch dim is dynamic (-1)"
    cfg = client(server).get_model_config(family)
    assert cfg["max_batch_size"] == 32 and cfg["input"][0]["dims"] == list(x.shape[1:])


@pytest.mark.parametrize("binary_in,binary_out", [(True, True), (False, False), (True, False)])
@pytest.mark.parametrize("family", FAMILIES)
def test_infer_matches_reference(server, model_dir, family, binary_in, binary_out):
    _, x, ref = model_dir[1][family]
    c = client(server)
    iname = c.get_model_metadata(family)["inputs"][0]["name"]
    oname = c.get_model_metadata(family)["outputs"][0]["name"]
    res = infer(c, family, x, iname, binary_in, binary_out, request_id="r1")
    assert res.get_response()["id"] == "r1"
    np.testing.assert_allclose(res.as_numpy(oname), ref(x), rtol=1e-5, atol=1e-5)


def test_gzip_request_body(server, model_dir):
    _, x, ref = model_dir[1]["float"]
    c = client(server)
    res = infer(c, "float", x, "x", request_compression_algorithm="gzip")
    np.testing.assert_allclose(res.as_numpy("y"), ref(x), rtol=1e-5, atol=1e-6)


def test_concurrent_requests_are_batched_and_split_correctly(make_server, model_dir):
    srv = make_server({"threads": 1, "max_batch": 16, "max_delay_ms": 300})
    _, _, ref = model_dir[1]["float"]
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((k, 5)).astype(np.float32) for k in (1, 2, 3, 1, 2, 1)]

    def one(x):
        c = client(srv)
        return infer(c, "float", x, "x").as_numpy("y")

    with ThreadPoolExecutor(len(xs)) as ex:
        outs = list(ex.map(one, xs))
    for x, y in zip(xs, outs):  # each request gets exactly its own rows back
        np.testing.assert_allclose(y, ref(x), rtol=1e-5, atol=1e-6)
    m = parse_text(raw(srv, "GET", "/metrics")[2].decode())
    n_batches = m['steport_batch_size_count{model="float"}']
    assert n_batches < len(xs), "concurrent requests were merged into fewer session runs"
    assert m['steport_batch_size_sum{model="float"}'] == sum(len(x) for x in xs)
    assert m['steport_requests_total{model="float",status="200"}'] == len(xs)


def test_fixed_shape_model_runs_alone(server):
    c = client(server)
    meta = c.get_model_metadata("fixed")
    assert meta["inputs"][0] == {"name": "a", "datatype": "INT32", "shape": [4]}
    assert c.get_model_config("fixed")["max_batch_size"] == 0
    inp = tc.InferInput("a", [4], "INT32")
    inp.set_data_from_numpy(np.array([1, -2, 3, 40000], np.int32))
    np.testing.assert_array_equal(c.infer("fixed", [inp]).as_numpy("sq"),
                                  np.array([1, 4, 9, 40000 * 40000], np.int64).astype(np.int32))
    inp = tc.InferInput("a", [5], "INT32")
    inp.set_data_from_numpy(np.zeros(5, np.int32))
    with pytest.raises(InferenceServerException, match="dim 0 is 5, the model takes 4"):
        c.infer("fixed", [inp])


# ---- errors ----------------------------------------------------------------------------

def _req(x, name="x", dt="FP32", shape=None):
    return {"inputs": [{"name": name, "datatype": dt, "shape": list(shape or np.shape(x)),
                        "data": np.asarray(x).ravel().tolist()}]}


BAD = [
    ("wrong input name", _req(np.zeros((1, 5)), name="z"), 400, "unknown input 'z'"),
    ("wrong datatype", _req(np.zeros((1, 5)), dt="FP64"), 400, "datatype 'FP64' but the model takes FP32"),
    ("unknown datatype", _req(np.zeros((1, 5)), dt="FP8"), 400, "datatype 'FP8'"),
    ("wrong rank", _req(np.zeros(5)), 400, "rank 1"),
    ("wrong dim", _req(np.zeros((1, 4))), 400, "dim 1 is 4, the model takes 5"),
    ("data/shape mismatch", _req(np.zeros((1, 5)), shape=[2, 5]), 400, "holds 10 elements but data has 5"),
    ("missing input", {"inputs": []}, 400, "'inputs' must be a non-empty list"),
    ("not numbers", {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 5],
                                 "data": ["a"] * 5}]}, 400, "must be numbers"),
    ("negative dim", _req(np.zeros((1, 5)), shape=[-1, 5]), 400, "non-negative integers"),
    ("batch too big", _req(np.zeros((33, 5))), 400, "exceeds the model's max batch size 32"),
    ("NaN rejected", _req(np.array([[np.nan, 0, 0, 0, 0]])), 400, "NaN or Inf"),
    ("Inf rejected", _req(np.array([[np.inf, 0, 0, 0, 0]])), 400, "NaN or Inf"),
    ("unknown output", {**_req(np.zeros((1, 5))), "outputs": [{"name": "q"}]}, 400, "unknown outputs"),
    ("too many elements", _req(np.zeros((1, 5)), shape=[1 << 20, 1 << 5]), 413, "more than"),
]


@pytest.mark.parametrize("what,body,status,msg", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_clear_errors(server, what, body, status, msg):
    st, _, data = raw(server, "POST", "/v2/models/float/infer", body)
    assert st == status and msg in data["error"], (what, st, data)
    assert client(server).is_server_ready(), "server keeps serving"


def test_malformed_and_protocol_errors(server, model_dir):
    st, _, d = raw(server, "POST", "/v2/models/float/infer", b"{not json")
    assert st == 400 and "malformed JSON" in d["error"]
    st, _, d = raw(server, "POST", "/v2/models/float/infer", b"[1, 2]")
    assert st == 400 and "JSON object" in d["error"]
    st, _, d = raw(server, "POST", "/v2/models/nope/infer", _req(np.zeros((1, 5))))
    assert st == 404 and "unknown model 'nope'" in d["error"]
    st, _, d = raw(server, "GET", "/v2/models/float/versions/7")
    assert st == 404 and "no version" in d["error"]
    st, _, d = raw(server, "GET", "/nothing")
    assert st == 404 and "error" in d
    st, _, d = raw(server, "POST", "/v2/models/float/infer", b"{}", {"Content-Encoding": "br"})
    assert st == 415
    # binary extension: header length past the body, and a wrong binary size
    st, _, d = raw(server, "POST", "/v2/models/float/infer", b"{}",
                   {"Inference-Header-Content-Length": "99"})
    assert st == 400 and "exceeds the body" in d["error"]
    head = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 5],
                                   "parameters": {"binary_data_size": 16}}]}).encode()
    st, _, d = raw(server, "POST", "/v2/models/float/infer", head + bytes(16),
                   {"Inference-Header-Content-Length": str(len(head))})
    assert st == 400 and "needs 20 bytes" in d["error"]
    # tritonclient sees the same errors as exceptions carrying the message and status
    inp = tc.InferInput("x", [1, 5], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 5), np.float32))
    with pytest.raises(InferenceServerException, match="unknown model") as ei:
        client(server).infer("nope", [inp])
    assert ei.value.status() == "404"


def test_oversized_body_is_413(make_server):
    srv = make_server(max_body_bytes=1000)
    st, h, d = raw(srv, "POST", "/v2/models/float/infer", b"x" * 2000)
    assert st == 413 and "exceeds the limit of 1000 bytes" in d["error"]
    assert h.get("Connection") == "close"
    gz = gzip.compress(json.dumps(_req(np.zeros((40, 5)))).encode())
    assert len(gz) < 1000
    st, _, d = raw(srv, "POST", "/v2/models/float/infer", gz, {"Content-Encoding": "gzip"})
    assert st == 413 and "decompressed" in d["error"]
    assert client(srv).is_server_ready()


def test_nonfinite_policy_can_allow(make_server, tmp_path, model_dir):
    import shutil

    shutil.copy(model_dir[1]["float"][0], tmp_path / "float.onnx")
    (tmp_path / "float.serve.json").write_text('{"allow_nonfinite": true}')
    srv = make_server(target=tmp_path)
    st, _, d = raw(srv, "POST", "/v2/models/float/infer", _req(np.array([[np.nan, 1, 1, 1, 1]])))
    assert st == 200 and d["outputs"][0]["name"] == "y"  # NaN in, JSON null/finite out


def test_queue_full_is_503_with_retry_after(model_dir):
    from steport.deploy import JsonLog, Policy, Repository, Server, ServerConfig

    repo = Repository.load(model_dir[1]["float"][0], Policy().updated({"max_queue": 1, "threads": 1}))
    m = repo.get("float")
    gate = threading.Event()
    real = m.run
    m.run = lambda feeds: (gate.wait(10), real(feeds))[1]  # hold the worker
    srv = Server(repo, ServerConfig(port=0), JsonLog(io.StringIO())).start()
    try:
        body = _req(np.zeros((1, 5), np.float32))
        with ThreadPoolExecutor(2) as ex:
            first = ex.submit(raw, srv, "POST", "/v2/models/float/infer", body)
            time.sleep(0.3)  # the worker now holds request 1 (blocked in run)
            second = ex.submit(raw, srv, "POST", "/v2/models/float/infer", body)
            while m.batcher.depth() < 1:
                time.sleep(0.01)
            st, h, d = raw(srv, "POST", "/v2/models/float/infer", body)
            assert st == 503 and h.get("Retry-After") == "1" and "queue is full" in d["error"]
            gate.set()
            assert first.result()[0] == 200 and second.result()[0] == 200
    finally:
        gate.set()
        srv.stop()


def test_metrics_and_json_logs(server, model_dir):
    c = client(server)
    infer(c, "float", model_dir[1]["float"][1], "x")
    raw(server, "POST", "/v2/models/float/infer", b"{bad")
    raw(server, "POST", "/v2/models/nope/infer", b"{}")
    st, h, text = raw(server, "GET", "/metrics")
    assert st == 200 and h["Content-Type"].startswith("text/plain; version=0.0.4")
    text = text.decode()
    for name in ("steport_requests_total", "steport_request_duration_seconds_bucket",
                 "steport_batch_size_bucket", "steport_queue_depth", "steport_inference_duration_seconds"):
        assert f"# TYPE {name.removesuffix('_bucket')}" in text
    m = parse_text(text)
    assert m['steport_requests_total{model="float",status="200"}'] == 1
    assert m['steport_requests_total{model="float",status="400"}'] == 1
    assert m['steport_requests_total{model="_unknown",status="404"}'] == 1
    assert m['steport_request_duration_seconds_bucket{model="float",le="+Inf"}'] == 2
    assert m['steport_queue_depth{model="float"}'] == 0
    lines = [json.loads(x) for x in server.log_buffer.getvalue().splitlines()]
    assert lines[0]["event"] == "start" and lines[0]["port"] == server.port
    reqs = [x for x in lines if x["event"] == "request" and x["path"].endswith("/infer")]
    assert {x["status"] for x in reqs} == {200, 400, 404}
    assert all({"ts", "level", "duration_ms", "model"} <= set(x) for x in reqs)
    assert any("malformed JSON" in (x.get("error") or "") for x in reqs)


def test_repository_index_and_keepalive(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for _ in range(3):  # one connection, several requests (HTTP/1.1 keep-alive)
            conn.request("POST", "/v2/repository/index", body=b"{}")
            r = conn.getresponse()
            names = {m["name"] for m in json.loads(r.read())}
            assert r.status == 200 and names == {"fixed", *FAMILIES}
    finally:
        conn.close()
