"""Open Inference Protocol (KServe v2 / Triton HTTP) tensors: datatypes, request parsing
(JSON and the binary tensor extension) and response encoding. No HTTP here."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class RequestError(Exception):
    """A client error: becomes a 4xx JSON {"error": ...} response."""

    def __init__(self, message: str, status: int = 400, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


# v2 datatype <-> numpy. BF16 has no numpy type. BYTES (strings / raw bytes) travels as
# numpy object arrays of bytes; in binary form each element is a 4-byte little-endian length
# followed by its bytes (the Triton binary tensor extension).
V2_TO_NP = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64), "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16), "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64),
}
NP_TO_V2 = {v: k for k, v in V2_TO_NP.items()}
NP_TO_V2[np.dtype(object)] = "BYTES"


def _parse_bytes_binary(name: str, raw: memoryview, n: int) -> np.ndarray:
    out, pos = [], 0
    for _ in range(n):
        if pos + 4 > len(raw):
            raise RequestError(f"input '{name}': BYTES data ends inside an element length")
        ln = int.from_bytes(raw[pos:pos + 4], "little")
        pos += 4
        if pos + ln > len(raw):
            raise RequestError(f"input '{name}': BYTES element of {ln} bytes ends past the data")
        out.append(bytes(raw[pos:pos + ln]))
        pos += ln
    if pos != len(raw):
        raise RequestError(f"input '{name}': {len(raw) - pos} bytes after the last BYTES element")
    arr = np.empty(n, dtype=object)
    arr[:] = out
    return arr


def _parse_bytes_json(name: str, data: Any, shape: list[int], n: int) -> np.ndarray:
    try:
        flat = _flatten(data, shape)
    except RequestError as e:
        raise RequestError(f"input '{name}': {e}") from None
    if len(flat) != n or not all(isinstance(v, str) for v in flat):
        raise RequestError(f"input '{name}': BYTES data must be {n} strings (send binary "
                           "content with the binary tensor extension)")
    arr = np.empty(n, dtype=object)
    arr[:] = [v.encode("utf-8") for v in flat]
    return arr


def _bytes_items(arr: np.ndarray) -> list[bytes]:
    return [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in arr.ravel().tolist()]
# onnxruntime's NodeArg.type strings
ORT_TO_V2 = {
    "tensor(bool)": "BOOL", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64", "tensor(int8)": "INT8",
    "tensor(int16)": "INT16", "tensor(int32)": "INT32", "tensor(int64)": "INT64",
    "tensor(float16)": "FP16", "tensor(float)": "FP32", "tensor(double)": "FP64",
    "tensor(string)": "BYTES", "tensor(bfloat16)": "BF16",
}
FLOAT_TYPES = {"FP16", "FP32", "FP64"}


@dataclass
class TensorSpec:
    name: str
    datatype: str          # v2 name
    shape: list[int]       # -1 = dynamic

    def to_json(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass
class InferRequest:
    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: list[str] | None               # None = all
    binary_outputs: set[str] = field(default_factory=set)
    binary_all: bool = False                # request-level binary_data_output


def _flatten(data: Any, shape: list[int] | None = None) -> list:
    """Row-major flatten of JSON tensor data. The protocol allows a flat list or lists nested
    exactly as `shape`; with `shape` given, anything else (ragged rows, the wrong nesting
    depth) is a RequestError. Level by level, no recursion: depth is bounded by the shape."""
    if not isinstance(data, list):
        return [data]
    if all(not isinstance(d, list) for d in data):
        return data
    if shape is None:
        shape = []
    level = [data]
    for i, dim in enumerate(shape):
        nxt: list = []
        for item in level:
            if not isinstance(item, list) or len(item) != dim:
                raise RequestError(f"'data' is nested unlike shape {shape}: at depth {i} a "
                                   f"{'list of ' + str(len(item)) if isinstance(item, list) else 'scalar'}"
                                   f" where the shape has {dim}")
            nxt.extend(item)
        level = nxt
    if any(isinstance(v, list) for v in level):
        raise RequestError(f"'data' is nested deeper than shape {shape}")
    return level


def _json_array(name: str, data: Any, dt: str, shape: list[int], n: int) -> np.ndarray:
    try:
        flat = _flatten(data, shape)
    except RequestError as e:
        raise RequestError(f"input '{name}': {e}") from None
    if len(flat) != n:
        raise RequestError(f"input '{name}': shape holds {n} elements but data has {len(flat)}")
    npdt = V2_TO_NP[dt]
    if dt == "BOOL":
        if not all(isinstance(v, bool) for v in flat):
            raise RequestError(f"input '{name}': BOOL data must be true/false")
    elif dt in FLOAT_TYPES:
        # JSON has no NaN/Inf literals; Python's json accepts them, the policy check decides.
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
            raise RequestError(f"input '{name}': {dt} data must be numbers")
    else:
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in flat):
            raise RequestError(f"input '{name}': {dt} data must be integers")
        info = np.iinfo(npdt)
        if flat and (min(flat) < info.min or max(flat) > info.max):
            raise RequestError(f"input '{name}': value out of range for {dt}")
    try:
        return np.asarray(flat, dtype=npdt)
    except (OverflowError, ValueError) as e:
        raise RequestError(f"input '{name}': bad {dt} data: {e}") from None


def check_tensor_header(name: Any, dt: Any, shape: Any, specs: dict[str, TensorSpec],
                        seen: dict, max_elements: int | None = None) -> int:
    """One input's name, datatype and shape against the model (JSON or gRPC alike); returns
    its element count. Rank and fixed dims are check_inputs()'s job."""
    if not isinstance(name, str):
        raise RequestError("input without a string 'name'")
    if name not in specs:
        raise RequestError(f"unknown input '{name}'; the model takes {sorted(specs)}")
    if name in seen:
        raise RequestError(f"input '{name}' given twice")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool)
                                              and d >= 0 for d in shape):
        raise RequestError(f"input '{name}': 'shape' must be a list of non-negative integers")
    if max_elements is not None and any(d > max_elements for d in shape):
        # also when another dim is 0: such a dim is never a valid tensor here, and numpy
        # cannot even describe dims past 2^63
        raise RequestError(f"input '{name}': shape {shape} has a dim above the limit of "
                           f"{max_elements} elements")
    want = specs[name].datatype
    if dt != want:
        raise RequestError(f"input '{name}': datatype {dt!r} but the model takes {want}")
    if want not in V2_TO_NP and want != "BYTES":
        raise RequestError(f"input '{name}': datatype {want} is not served")
    return math.prod(shape)


def parse_infer_request(body: bytes, header_len: int | None, specs: dict[str, TensorSpec],
                        max_elements: int) -> InferRequest:
    """Parse and validate a v2 infer request against the model's input specs. Shape checks
    against the model (rank, fixed dims, batch) happen in check_inputs()."""
    if header_len is not None:
        if header_len < 0 or header_len > len(body):
            raise RequestError(f"Inference-Header-Content-Length {header_len} exceeds the body "
                               f"({len(body)} bytes)")
        head, binary = body[:header_len], memoryview(body)[header_len:]
    else:
        head, binary = body, memoryview(b"")
    try:
        req = json.loads(head)
    except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError, integers over 4300 digits
        raise RequestError(f"malformed JSON: {e}") from None
    except RecursionError:
        raise RequestError("malformed JSON: nested too deeply") from None
    if not isinstance(req, dict):
        raise RequestError("request body must be a JSON object")
    raw_inputs = req.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise RequestError("'inputs' must be a non-empty list")
    inputs: dict[str, np.ndarray] = {}
    offset = 0
    total = 0
    for t in raw_inputs:
        if not isinstance(t, dict):
            raise RequestError("each input must be an object")
        name, dt, shape = t.get("name"), t.get("datatype"), t.get("shape")
        n = check_tensor_header(name, dt, shape, specs, inputs, max_elements)
        want = dt
        total += n
        if total > max_elements:
            raise RequestError(f"request has more than {max_elements} input elements", 413)
        params = t.get("parameters") or {}
        if not isinstance(params, dict):
            raise RequestError(f"input '{name}': 'parameters' must be an object")
        size = params.get("binary_data_size")
        if size is not None and want == "BYTES":
            if "data" in t:
                raise RequestError(f"input '{name}': both 'data' and binary_data_size")
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise RequestError(f"input '{name}': binary data ends past the body")
            arr = _parse_bytes_binary(name, binary[offset:offset + size], n)
            offset += size
        elif want == "BYTES":
            if "data" not in t:
                raise RequestError(f"input '{name}': no 'data' and no binary_data_size")
            arr = _parse_bytes_json(name, t["data"], shape, n)
        elif size is not None:
            if "data" in t:
                raise RequestError(f"input '{name}': both 'data' and binary_data_size")
            nbytes = n * V2_TO_NP[want].itemsize
            if not isinstance(size, int) or size != nbytes:
                raise RequestError(f"input '{name}': binary_data_size {size!r} but shape {shape} "
                                   f"of {want} needs {nbytes} bytes")
            if offset + size > len(binary):
                raise RequestError(f"input '{name}': binary data ends past the body")
            arr = np.frombuffer(binary[offset:offset + size], dtype=V2_TO_NP[want]).copy()
            offset += size
        else:
            if "data" not in t:
                raise RequestError(f"input '{name}': no 'data' and no binary_data_size")
            arr = _json_array(name, t["data"], want, shape, n)
        inputs[name] = arr.reshape(shape)
    if offset != len(binary):
        raise RequestError(f"{len(binary) - offset} unused bytes of binary input data")
    missing = sorted(set(specs) - set(inputs))
    if missing:
        raise RequestError(f"missing inputs {missing}")

    outputs, bin_outs = None, set()
    params = req.get("parameters") or {}
    if not isinstance(params, dict):
        raise RequestError("'parameters' must be an object")
    raw_outputs = req.get("outputs")
    if raw_outputs is not None:
        if not isinstance(raw_outputs, list):
            raise RequestError("'outputs' must be a list")
        outputs = []
        for o in raw_outputs:
            if not isinstance(o, dict) or not isinstance(o.get("name"), str):
                raise RequestError("each requested output must be an object with a 'name'")
            outputs.append(o["name"])
            op = o.get("parameters") or {}
            if isinstance(op, dict) and op.get("binary_data"):
                bin_outs.add(o["name"])
            if isinstance(op, dict) and op.get("classification"):
                raise RequestError("the classification extension is not supported")
    rid = req.get("id")
    return InferRequest(id=str(rid) if rid is not None else None, inputs=inputs, outputs=outputs,
                        binary_outputs=bin_outs, binary_all=bool(params.get("binary_data_output")))


def check_inputs(inputs: dict[str, np.ndarray], specs: dict[str, TensorSpec],
                 allow_nonfinite: bool, max_batch: int | None) -> int | None:
    """Rank / fixed dims / NaN policy / batch limit. Returns the batch size (first dim, when
    every input has a dynamic first dim and agrees on it) or None."""
    batch: int | None = None
    batched = max_batch is not None
    for name, arr in inputs.items():
        spec = specs[name]
        if len(spec.shape) != arr.ndim:
            raise RequestError(f"input '{name}': shape {list(arr.shape)} has rank {arr.ndim}, "
                               f"the model takes rank {len(spec.shape)} {spec.shape}")
        for i, (got, want) in enumerate(zip(arr.shape, spec.shape)):
            if want >= 0 and got != want:
                raise RequestError(f"input '{name}': dim {i} is {got}, the model takes {want} "
                                   f"(model shape {spec.shape})")
        if batched:
            if batch is None:
                batch = arr.shape[0]
            elif arr.shape[0] != batch:
                raise RequestError(f"inputs disagree on the batch size ({batch} vs {arr.shape[0]})")
        if not allow_nonfinite and spec.datatype in FLOAT_TYPES and arr.size and \
                not np.isfinite(arr).all():
            raise RequestError(f"input '{name}' holds NaN or Inf; this model's policy rejects "
                               "non-finite values")
    if batched and batch is not None:
        if batch == 0:
            raise RequestError("batch size 0")
        if batch > max_batch:
            raise RequestError(f"batch size {batch} exceeds the model's max batch size {max_batch}")
    return batch


def encode_response(model: str, version: str, req: InferRequest, names: list[str],
                    arrays: list[np.ndarray]) -> tuple[bytes, int | None]:
    """Response body and, when any output is binary, the JSON header length."""
    outs, blobs = [], []
    for name, arr in zip(names, arrays):
        arr = np.ascontiguousarray(arr)
        dt = NP_TO_V2.get(arr.dtype)
        if dt is None:
            raise RuntimeError(f"output '{name}' has dtype {arr.dtype}, which v2 cannot carry")
        o: dict[str, Any] = {"name": name, "datatype": dt, "shape": list(arr.shape)}
        if dt == "BYTES":
            items = _bytes_items(arr)
            if req.binary_all or name in req.binary_outputs:
                raw = b"".join(len(v).to_bytes(4, "little") + v for v in items)
                o["parameters"] = {"binary_data_size": len(raw)}
                blobs.append(raw)
            else:
                o["data"] = [v.decode("utf-8", "replace") for v in items]
        elif req.binary_all or name in req.binary_outputs:
            raw = arr.tobytes()
            o["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            if dt in FLOAT_TYPES and arr.size and not np.isfinite(arr).all():
                # JSON cannot carry NaN/Inf: write them as null rather than invalid JSON
                o["data"] = [None if not math.isfinite(v) else v for v in arr.ravel().tolist()]
            else:
                o["data"] = arr.ravel().tolist()
        outs.append(o)
    resp: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": outs}
    if req.id is not None:
        resp["id"] = req.id
    head = json.dumps(resp, separators=(",", ":")).encode()
    if not blobs:
        return head, None
    return b"".join([head, *blobs]), len(head)
