"""steport.deploy.protocol alone (no server): requests built by tritonclient, the reference
client of the Open Inference Protocol, parse into the exact arrays it sent, in JSON and in
the binary tensor extension; responses encoded by steport decode in tritonclient to the
exact arrays; malformed requests are RequestErrors with a message naming the problem."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tritonclient.http as th

from steport.deploy.protocol import (NP_TO_V2, InferRequest, RequestError, TensorSpec,
                                     check_inputs, encode_response, parse_infer_request)

RNG = np.random.default_rng(0)
# one of every v2 datatype numpy can hold, with values at the type's edges
ARRAYS = {
    "BOOL": np.array([[True, False, True]]),
    "UINT8": np.array([[0, 7, 255]], np.uint8),
    "UINT16": np.array([[0, 7, 65535]], np.uint16),
    "UINT32": np.array([[0, 7, 2**32 - 1]], np.uint32),
    "UINT64": np.array([[0, 7, 2**64 - 1]], np.uint64),
    "INT8": np.array([[-128, 0, 127]], np.int8),
    "INT16": np.array([[-2**15, 0, 2**15 - 1]], np.int16),
    "INT32": np.array([[-2**31, 0, 2**31 - 1]], np.int32),
    "INT64": np.array([[-2**63, 0, 2**63 - 1]], np.int64),
    "FP16": np.array([[-65504, 0.5, 1e-7]], np.float16),
    "FP32": RNG.standard_normal((1, 3)).astype(np.float32),
    "FP64": RNG.standard_normal((1, 3)),
    "BYTES": np.array([[b"", b"a\x00b", "é".encode()]], dtype=object),
}


def _specs(arrays: dict[str, np.ndarray]) -> dict[str, TensorSpec]:
    return {n: TensorSpec(n, NP_TO_V2[a.dtype], [-1, *a.shape[1:]]) for n, a in arrays.items()}


def _request(arrays: dict[str, np.ndarray], binary: bool, **kw) -> tuple[bytes, int | None]:
    inputs = []
    for name, arr in arrays.items():
        i = th.InferInput(name, list(arr.shape), NP_TO_V2[arr.dtype])
        i.set_data_from_numpy(arr, binary_data=binary)
        inputs.append(i)
    body, json_size = th.InferenceServerClient.generate_request_body(inputs, **kw)
    return body, json_size


def _same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
    if a.dtype == object:
        assert a.ravel().tolist() == b.ravel().tolist()
    else:
        assert a.tobytes() == b.tobytes()  # bit for bit, -0.0 and NaN payloads included


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_requests_parse_to_the_arrays_sent(binary):
    arrays = {f"in_{dt.lower()}": a for dt, a in ARRAYS.items()}
    if not binary:  # JSON cannot carry arbitrary bytes: strings only
        arrays["in_bytes"] = np.array([[b"x", b"yz", "é".encode()]], dtype=object)
    body, json_size = _request(arrays, binary, request_id="r1")
    req = parse_infer_request(body, json_size, _specs(arrays), max_elements=1 << 20)
    assert req.id == "r1" and req.outputs is None
    assert set(req.inputs) == set(arrays)
    for name, arr in arrays.items():
        got = req.inputs[name]
        _same(got, arr.astype(got.dtype) if arr.dtype == object else arr)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_responses_decode_in_tritonclient_to_the_arrays_encoded(binary):
    arrays = dict(ARRAYS)
    if not binary:
        arrays["BYTES"] = np.array([[b"x", b"yz", "é".encode()]], dtype=object)
    names = [f"out_{dt.lower()}" for dt in arrays]
    request = parse_infer_request(*_request({"x": ARRAYS["FP32"]}, False, request_id="7"),
                                  _specs({"x": ARRAYS["FP32"]}), 1 << 20)
    request.binary_all = binary
    body, header_len = encode_response("m", "1", request, names, list(arrays.values()))
    assert (header_len is not None) == binary
    result = th.InferenceServerClient.parse_response_body(body, header_length=header_len)
    resp = result.get_response()
    assert (resp["model_name"], resp["model_version"], resp["id"]) == ("m", "1", "7")
    for name, arr in zip(names, arrays.values()):
        if arr.dtype == object and not binary:  # JSON carries BYTES as text: str comes back
            arr = np.array([[v.decode() for v in arr.ravel()]], dtype=object)
        _same(result.as_numpy(name), arr)


def test_nonfinite_json_outputs_become_null():
    req = InferRequest(id=None, inputs={}, outputs=None)  # JSON outputs (no binary_data)
    body, header_len = encode_response("m", "1", req, ["y"],
                                       [np.array([1.5, np.nan, -np.inf], np.float32)])
    assert header_len is None
    assert json.loads(body)["outputs"][0]["data"] == [1.5, None, None]


def _json_body(inputs: list[dict], **extra) -> bytes:
    return json.dumps({"inputs": inputs, **extra}).encode()


SPECS = {"x": TensorSpec("x", "FP32", [-1, 3]), "k": TensorSpec("k", "INT8", [-1, 3])}
GOOD_K = {"name": "k", "datatype": "INT8", "shape": [1, 3], "data": [1, 2, 3]}


@pytest.mark.parametrize("inputs,extra,header_len,match", [
    ([{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2]}, GOOD_K], {}, None,
     r"input 'x': shape holds 3 elements but data has 2"),
    ([{"name": "x", "datatype": "FP64", "shape": [1, 3], "data": [1, 2, 3]}, GOOD_K], {}, None,
     r"input 'x': datatype 'FP64' but the model takes FP32"),
    ([{"name": "y", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}], {}, None,
     r"unknown input 'y'; the model takes \['k', 'x'\]"),
    ([GOOD_K], {}, None, r"missing inputs \['x'\]"),
    ([GOOD_K, GOOD_K], {}, None, r"input 'k' given twice"),
    ([{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]},
      {"name": "k", "datatype": "INT8", "shape": [1, 3], "data": [1, 2, 128]}], {}, None,
     r"input 'k': value out of range for INT8"),
    ([{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [[1, 2], [3]]}, GOOD_K], {},
     None, r"input 'x': 'data' is nested unlike shape \[1, 3\]"),
    ([{"name": "x", "datatype": "FP32", "shape": [1, -3], "data": [1, 2, 3]}, GOOD_K], {}, None,
     r"input 'x': 'shape' must be a list of non-negative integers"),
    ([{"name": "x", "datatype": "FP32", "shape": [1, 3],
       "parameters": {"binary_data_size": 8}}, GOOD_K], {}, None,
     r"input 'x': binary_data_size 8 but shape \[1, 3\] of FP32 needs 12 bytes"),
    ([{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}, GOOD_K], {},
     10**6, r"Inference-Header-Content-Length 1000000 exceeds the body"),
    ([{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}, GOOD_K],
     {"outputs": [{"name": "y", "parameters": {"classification": 2}}]}, None,
     r"the classification extension is not supported"),
])
def test_malformed_requests_are_request_errors(inputs, extra, header_len, match):
    with pytest.raises(RequestError, match=match) as ei:
        parse_infer_request(_json_body(inputs, **extra), header_len, SPECS, max_elements=1000)
    assert ei.value.status == 400


def test_element_limit_is_413_and_binary_leftovers_are_refused():
    big = {"name": "x", "datatype": "FP32", "shape": [400, 3], "data": [0.0] * 1200}
    with pytest.raises(RequestError, match="more than 1000 input elements") as ei:
        parse_infer_request(_json_body([big, GOOD_K]), None, SPECS, max_elements=1000)
    assert ei.value.status == 413
    body, json_size = _request({"x": ARRAYS["FP32"], "k": ARRAYS["INT8"]}, True)
    with pytest.raises(RequestError, match="4 unused bytes of binary input data"):
        parse_infer_request(body + b"\0\0\0\0", json_size, SPECS, max_elements=1000)
    for bad in (b"{", b"[1]", b'{"inputs": []}'):
        with pytest.raises(RequestError):
            parse_infer_request(bad, None, SPECS, max_elements=1000)


def test_check_inputs_batch_rank_and_nonfinite_policy():
    x = np.zeros((4, 3), np.float32)
    k = np.zeros((4, 3), np.int8)
    assert check_inputs({"x": x, "k": k}, SPECS, allow_nonfinite=False, max_batch=8) == 4
    assert check_inputs({"x": x, "k": k}, SPECS, allow_nonfinite=False, max_batch=None) is None
    cases = [({"x": x, "k": k[:2]}, 8, False, r"inputs disagree on the batch size \(4 vs 2\)"),
             ({"x": x[:, :2], "k": k}, 8, False, r"input 'x': dim 1 is 2, the model takes 3"),
             ({"x": x[0], "k": k}, 8, False, r"input 'x': shape \[3\] has rank 1"),
             ({"x": x, "k": k}, 3, False, r"batch size 4 exceeds the model's max batch size 3"),
             ({"x": x[:0], "k": k[:0]}, 8, False, r"batch size 0"),
             ({"x": np.full((4, 3), np.inf, np.float32), "k": k}, 8, False, r"NaN or Inf")]
    for feeds, max_batch, nonfinite, match in cases:
        with pytest.raises(RequestError, match=match):
            check_inputs(feeds, SPECS, allow_nonfinite=nonfinite, max_batch=max_batch)
    nan = {"x": np.full((4, 3), np.nan, np.float32), "k": k}
    assert check_inputs(nan, SPECS, allow_nonfinite=True, max_batch=8) == 4
