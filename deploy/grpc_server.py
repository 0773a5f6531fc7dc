"""gRPC for `steport serve`: the Open Inference Protocol's `inference.GRPCInferenceService`
(KServe v2 gRPC; Triton's service is a superset of it), so `tritonclient.grpc` and
`kserve.InferenceGRPCClient` work unchanged.

The messages and the service stubs are the ones `tritonclient[grpc]` ships, generated from
Triton's `grpc_service.proto` (package `inference`, the same method paths as KServe's
`grpc_predict_v2.proto`): one maintained copy instead of a proto of our own. Requests go
through the same validation (protocol.check_tensor_header / check_inputs) and the same
per-model batcher as HTTP (Server.infer).

Status codes: unknown model or version -> NOT_FOUND; bad input (datatype, shape/data
mismatch, missing or unknown inputs, rank, batch) -> INVALID_ARGUMENT; a message above the
size limit or too many elements -> RESOURCE_EXHAUSTED; queue full or shutting down ->
UNAVAILABLE; no result in time -> DEADLINE_EXCEEDED; a session failure -> INTERNAL.
Methods outside the v2 core (shared memory, model control, trace) answer UNIMPLEMENTED."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Iterator

import grpc
import numpy as np
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from .protocol import (V2_TO_NP, RequestError, _parse_bytes_binary, check_inputs,
                       check_tensor_header)

if TYPE_CHECKING:
    from .repository import Model
    from .server import Server

_STATUS_TO_CODE = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND,
                   408: grpc.StatusCode.DEADLINE_EXCEEDED, 413: grpc.StatusCode.RESOURCE_EXHAUSTED,
                   415: grpc.StatusCode.INVALID_ARGUMENT, 503: grpc.StatusCode.UNAVAILABLE,
                   504: grpc.StatusCode.DEADLINE_EXCEEDED}

# v2 datatype -> the typed InferTensorContents field that carries it (FP16/BF16: raw only)
_CONTENTS_FIELD = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
                   "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
                   "UINT16": "uint_contents", "UINT32": "uint_contents",
                   "UINT64": "uint64_contents", "FP32": "fp32_contents",
                   "FP64": "fp64_contents", "BYTES": "bytes_contents"}


def _code(status: int) -> grpc.StatusCode:
    return _STATUS_TO_CODE.get(status, grpc.StatusCode.INTERNAL)


def _typed_contents(name: str, dt: str, contents, n: int) -> np.ndarray:
    field = _CONTENTS_FIELD.get(dt)
    if field is None:
        raise RequestError(f"input '{name}': {dt} travels only in raw_input_contents")
    values = getattr(contents, field)
    if len(values) != n:
        raise RequestError(f"input '{name}': shape holds {n} elements but {field} has "
                           f"{len(values)}")
    if dt == "BYTES":
        arr = np.empty(n, dtype=object)
        arr[:] = list(values)
        return arr
    npdt = V2_TO_NP[dt]
    if dt not in ("BOOL", "FP32", "FP64"):  # int fields are wider than the datatype
        info = np.iinfo(npdt)
        if n and (min(values) < info.min or max(values) > info.max):
            raise RequestError(f"input '{name}': value out of range for {dt}")
    # fromiter: no intermediate Python list (memory stays ~ the tensor's own size)
    return np.fromiter(values, dtype=npdt, count=n)


def parse_grpc_request(request, model: "Model") -> tuple[dict[str, np.ndarray], list[str], int | None]:
    """A ModelInferRequest validated like an HTTP one: (inputs, output names, batch rows)."""
    specs = model.inputs
    if not request.inputs:
        raise RequestError("'inputs' must be a non-empty list")
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise RequestError(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs "
                           "(give every input raw, or none)")
    inputs: dict[str, np.ndarray] = {}
    total = 0
    for i, t in enumerate(request.inputs):
        shape = list(t.shape)
        if any(d < 0 for d in shape):
            raise RequestError(f"input '{t.name}': 'shape' must be non-negative")
        n = check_tensor_header(t.name, t.datatype, shape, specs, inputs,
                                model.policy.max_elements)
        total += n
        if total > model.policy.max_elements:
            raise RequestError(f"request has more than {model.policy.max_elements} input "
                               "elements", 413)
        if raw:
            if t.HasField("contents"):
                raise RequestError(f"input '{t.name}': both contents and raw_input_contents")
            if t.datatype == "BYTES":
                arr = _parse_bytes_binary(t.name, memoryview(raw[i]), n)
            else:
                nbytes = n * V2_TO_NP[t.datatype].itemsize
                if len(raw[i]) != nbytes:
                    raise RequestError(f"input '{t.name}': raw_input_contents has {len(raw[i])} "
                                       f"bytes but shape {shape} of {t.datatype} needs {nbytes}")
                arr = np.frombuffer(raw[i], dtype=V2_TO_NP[t.datatype]).copy()
        else:
            arr = _typed_contents(t.name, t.datatype, t.contents, n)
        inputs[t.name] = arr.reshape(shape)
    missing = sorted(set(specs) - set(inputs))
    if missing:
        raise RequestError(f"missing inputs {missing}")
    names = [o.name for o in request.outputs] or list(model.outputs)
    unknown = [n for n in names if n not in model.outputs]
    if unknown:
        raise RequestError(f"unknown outputs {unknown}; the model has {list(model.outputs)}")
    if model.adapter is None:  # image models: the adapter decodes and checks their BYTES
        rows = check_inputs(inputs, specs, model.policy.allow_nonfinite, model.max_batch)
    else:
        rows = None
    return inputs, names, rows


def _response(model: "Model", request_id: str, names: list[str], arrays: list[np.ndarray]):
    resp = pb.ModelInferResponse(model_name=model.name, model_version=model.version,
                                 id=request_id)
    for name, arr in zip(names, arrays):
        arr = np.ascontiguousarray(arr)
        if arr.dtype == object:
            items = [v if isinstance(v, bytes) else str(v).encode() for v in arr.ravel().tolist()]
            blob, dt = b"".join(len(v).to_bytes(4, "little") + v for v in items), "BYTES"
        else:
            dt = {v: k for k, v in V2_TO_NP.items()}.get(arr.dtype)
            if dt is None:
                raise RuntimeError(f"output '{name}' has dtype {arr.dtype}, which v2 cannot carry")
            blob = arr.tobytes()
        resp.outputs.add(name=name, datatype=dt, shape=list(arr.shape))
        resp.raw_output_contents.append(blob)
    return resp


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, app: "Server"):
        self.app = app

    # -- health and metadata --
    def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=self.app.ready)

    def ModelReady(self, request, context):
        model = self._model(request.name, request.version, context, "ModelReady")
        return pb.ModelReadyResponse(ready=self.app.ready and model is not None)

    def ServerMetadata(self, request, context):
        meta = self.app.server_metadata()
        return pb.ServerMetadataResponse(name=meta["name"], version=meta["version"],
                                         extensions=meta["extensions"])

    def ModelMetadata(self, request, context):
        model = self._model(request.name, request.version, context, "ModelMetadata")
        md = model.metadata()
        return pb.ModelMetadataResponse(
            name=md["name"], versions=md["versions"], platform=md["platform"],
            inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in md["inputs"]],
            outputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in md["outputs"]])

    def RepositoryIndex(self, request, context):
        return pb.RepositoryIndexResponse(models=[
            pb.RepositoryIndexResponse.ModelIndex(name=m.name, version=m.version, state="READY")
            for m in self.app.repo.models.values()])

    # -- inference --
    def ModelInfer(self, request, context):
        try:
            return self._infer(request)
        except RequestError as e:
            context.abort(_code(e.status), str(e))

    def ModelStreamInfer(self, request_iterator, context) -> Iterator:
        """Bidirectional stream: one response (or error_message) per request, in order; a bad
        request does not end the stream."""
        for request in request_iterator:
            try:
                yield pb.ModelStreamInferResponse(infer_response=self._infer(request))
            except RequestError as e:
                yield pb.ModelStreamInferResponse(error_message=str(e))

    def _infer(self, request):
        app, t0 = self.app, time.perf_counter()
        model_label, status = None, 500
        try:
            model = app.repo.get(request.model_name)
            if model is None:
                model_label = "_unknown"
                raise RequestError(f"unknown model '{request.model_name}'; serving "
                                   f"{sorted(app.repo.models)}", 404)
            model_label = model.name
            if request.model_version not in ("", model.version):
                raise RequestError(f"model '{model.name}' has no version "
                                   f"{request.model_version!r}; it has {model.version!r}", 404)
            inputs, names, rows = parse_grpc_request(request, model)
            outs = app.infer(model, inputs, rows)
            by_name = dict(zip(model.outputs, outs))
            resp = _response(model, request.id, names, [by_name[n] for n in names])
            status = 200
            return resp
        except RequestError as e:
            status = e.status
            raise
        except Exception as e:  # noqa: BLE001 - a bug must still answer, not kill the stream
            app.log("exception", level="error", error=repr(e), protocol="grpc")
            raise RequestError(f"internal error: {e}", 500) from None
        finally:
            dt = time.perf_counter() - t0
            app.metrics.grpc.labels(method="ModelInfer", code=_code(status).name
                                    if status != 200 else "OK").inc()
            if model_label is not None:
                app.metrics.requests.labels(model=model_label, status=str(status)).inc()
                app.metrics.latency.labels(model=model_label).observe(dt)
            app.log("request", level="info" if status < 500 else "error", protocol="grpc",
                    method="ModelInfer", model=model_label, status=status,
                    duration_ms=round(dt * 1e3, 3))

    def _model(self, name: str, version: str, context, method: str) -> "Model":
        model = self.app.repo.get(name)
        if model is None or version not in ("", model.version):
            self.app.metrics.grpc.labels(method=method, code="NOT_FOUND").inc()
            context.abort(grpc.StatusCode.NOT_FOUND,
                          f"unknown model '{name}' version {version!r}; serving "
                          f"{sorted(self.app.repo.models)}")
        return model


class GrpcServer:
    """The gRPC listener of one steport Server (shares its repository, batchers, metrics)."""

    def __init__(self, app: "Server", host: str, port: int, workers: int = 32):
        cfg = app.config
        self.app = app
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="grpc")
        options = [("grpc.max_receive_message_length", cfg.max_body_bytes),
                   ("grpc.max_send_message_length", max(cfg.max_body_bytes, 64 << 20)),
                   ("grpc.so_reuseport", 0),  # a second server on the port must fail, not share
                   ("grpc.keepalive_time_ms", 60_000),
                   ("grpc.max_connection_idle_ms", int(cfg.idle_timeout_s * 4 * 1000))]
        # more concurrent RPCs than this are refused with RESOURCE_EXHAUSTED at once
        self._server = grpc.server(self._pool, options=options,
                                   maximum_concurrent_rpcs=cfg.max_connections)
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(app), self._server)
        addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            self.port = self._server.add_insecure_port(addr)
        except RuntimeError as e:
            raise OSError(f"gRPC cannot listen on {addr}: {e}") from None
        if not self.port:
            raise OSError(f"gRPC cannot listen on {addr}")

    def start(self) -> "GrpcServer":
        self._server.start()
        return self

    def stop(self, grace_s: float) -> None:
        """New RPCs are refused at once; in-flight ones get up to grace_s to finish."""
        self._server.stop(grace_s).wait(grace_s + 1)
        self._pool.shutdown(wait=False)
