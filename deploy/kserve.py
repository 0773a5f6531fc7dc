"""KServe predictor for steport models: `steport serve MODEL --engine kserve`.

A `kserve.Model` per steport `.onnx` (sessions opened with `steport.session()`, so the
`ai.steport.*` ops run on our kernels), served by KServe's own ModelServer (FastAPI/uvicorn
REST and grpc.aio gRPC, Open Inference Protocol v2 on both). Inputs are validated with the
same checks as `steport serve` (protocol.check_tensor_header / check_inputs) and requests
are merged by the same DynamicBatcher. Needs the `kserve` extra (`pip install
'steport[kserve]'`, kserve==0.21.0).

Notes from KServe 0.21 that this module handles:
- the model metadata endpoint is empty unless get_input_types / get_output_types say what
  the model takes: filled from the ONNX model;
- a response without response_id is a 500: the request's id, or a fresh uuid;
- its REST server binds 0.0.0.0 and its gRPC server [::] with no option: we start both
  ourselves (with KServe's RESTServer / InferenceServicer) on the requested host;
- kserve parses sys.argv when imported: imported with a clean argv;
- `tritonclient.grpc` and KServe's gRPC modules register the same protobuf names, so they
  cannot be imported in one process (run a KServe server in its own process)."""
from __future__ import annotations

import asyncio
import os
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .batcher import DynamicBatcher, QueueFull, Stopped
from .protocol import RequestError, check_inputs, check_tensor_header
from .repository import Model, Policy, Repository


def _import_kserve():
    argv = sys.argv
    sys.argv = argv[:1]  # kserve.model_server parses the command line at import
    try:
        import kserve
        from kserve.errors import InferenceError, InvalidInput
        from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
        from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor, LoggingInterceptor
        from kserve.protocol.grpc.servicer import InferenceServicer
        from kserve.protocol.rest.server import RESTServer
    except ImportError as e:
        raise SystemExit(f"--engine kserve needs the kserve extra: pip install 'steport[kserve]' "
                         f"({e})") from None
    finally:
        sys.argv = argv
    return (kserve, InvalidInput, InferenceError, grpc_predict_v2_pb2_grpc,
            (LoggingInterceptor(), ExceptionToStatusInterceptor()), InferenceServicer, RESTServer)


(kserve, InvalidInput, InferenceError, _pb_grpc, _INTERCEPTORS, _InferenceServicer,
 _RESTServer) = _import_kserve()


class SteportPredictor(kserve.Model):
    """One steport model as a KServe v2 model (REST and gRPC)."""

    def __init__(self, model: Model, request_timeout_s: float = 30.0):
        super().__init__(model.name)
        self.model = model
        self.request_timeout_s = request_timeout_s
        p = model.policy
        self.batcher = DynamicBatcher(model.run, max_batch=p.max_batch if model.batchable else 1,
                                      max_delay_s=p.max_delay_ms / 1e3, max_queue=p.max_queue,
                                      workers=p.instances, name=model.name)
        self.ready = True

    def load(self) -> bool:  # the session is open already
        self.ready = True
        return True

    def stop(self):
        self.batcher.stop(timeout=self.request_timeout_s)

    def get_input_types(self) -> list[dict]:
        return [s.to_json() for s in self.model.inputs.values()]

    def get_output_types(self) -> list[dict]:
        return [s.to_json() for s in self.model.outputs.values()]

    def _inputs(self, payload) -> tuple[dict[str, np.ndarray], int | None]:
        m = self.model
        inputs: dict[str, np.ndarray] = {}
        total = 0
        if not payload.inputs:
            raise RequestError("'inputs' must be a non-empty list")
        for t in payload.inputs:
            shape = [int(d) for d in t.shape]
            if any(d < 0 for d in shape):
                raise RequestError(f"input '{t.name}': 'shape' must be non-negative")
            n = check_tensor_header(t.name, t.datatype, shape, m.inputs, inputs,
                                    m.policy.max_elements)
            total += n
            if total > m.policy.max_elements:
                raise RequestError(f"request has more than {m.policy.max_elements} input "
                                   "elements", 413)
            try:
                arr = t.as_numpy()
            except (ValueError, TypeError) as e:  # ragged JSON, short raw data
                raise RequestError(f"input '{t.name}': data does not fit shape {shape}: {e}") \
                    from None
            if arr.size != n or list(arr.shape) != shape:
                raise RequestError(f"input '{t.name}': shape holds {n} elements but data has "
                                   f"{arr.size}")
            inputs[t.name] = np.ascontiguousarray(arr)
        missing = sorted(set(m.inputs) - set(inputs))
        if missing:
            raise RequestError(f"missing inputs {missing}")
        rows = None
        if m.adapter is None:
            rows = check_inputs(inputs, m.inputs, m.policy.allow_nonfinite, m.max_batch)
        return inputs, rows

    async def predict(self, payload, headers=None, response_headers=None):
        if not isinstance(payload, kserve.InferRequest):  # a raw gRPC ModelInferRequest
            payload = kserve.InferRequest.from_grpc(payload)
        try:
            inputs, rows = self._inputs(payload)
            names = [o.name for o in (payload.request_outputs or [])] or list(self.model.outputs)
            unknown = [n for n in names if n not in self.model.outputs]
            if unknown:
                raise RequestError(f"unknown outputs {unknown}; the model has "
                                   f"{list(self.model.outputs)}")
            try:
                fut = self.batcher.submit(inputs, rows if self.model.batchable else None)
            except (QueueFull, Stopped) as e:
                raise InferenceError(str(e), status=503) from None
            try:
                outs = await asyncio.wait_for(asyncio.wrap_future(fut), self.request_timeout_s)
            except RequestError:
                raise
            except asyncio.TimeoutError:
                raise InferenceError(f"no result within {self.request_timeout_s}s") from None
            except Exception as e:  # noqa: BLE001 - the session's error, told to the client
                if type(e).__name__ in ("InvalidArgument", "InvalidGraph"):
                    raise InvalidInput(f"inference failed: {e}") from None
                raise InferenceError(f"inference failed: {e}") from None
        except RequestError as e:
            if e.status == 404:
                raise kserve.errors.ModelNotFound(str(e)) from None
            raise InvalidInput(str(e)) from None
        by_name = dict(zip(self.model.outputs, outs))
        infer_outputs = []
        for n in names:
            out = kserve.InferOutput(name=n, shape=list(by_name[n].shape),
                                     datatype=_v2_type(by_name[n]))
            out.set_data_from_numpy(np.ascontiguousarray(by_name[n]),
                                    binary_data=bool(payload.from_grpc))
            infer_outputs.append(out)
        return kserve.InferResponse(response_id=payload.id or str(uuid.uuid4()),
                                    model_name=self.name, model_version=self.model.version,
                                    infer_outputs=infer_outputs, from_grpc=payload.from_grpc,
                                    use_binary_outputs=payload.use_binary_outputs,
                                    requested_outputs=payload.request_outputs)


def _v2_type(arr: np.ndarray) -> str:
    from .protocol import NP_TO_V2

    dt = NP_TO_V2.get(arr.dtype)
    if dt is None:
        raise InferenceError(f"output dtype {arr.dtype} cannot travel in v2")
    return dt


class _GRPCServer:
    """KServe's gRPC servicer and interceptors (exceptions -> status codes) on grpc.aio,
    bound to `host` (KServe's own GRPCServer always binds [::])."""

    def __init__(self, host: str, port: int, server, max_message_bytes: int,
                 grace_s: float):
        self.host, self.port, self.ms = host, port, server
        self.max_message_bytes, self.grace_s = max_message_bytes, grace_s
        self._server = None

    async def start(self, max_workers: int):
        from grpc import aio

        self._server = aio.server(
            ThreadPoolExecutor(max_workers=max_workers), interceptors=_INTERCEPTORS,
            options=[("grpc.max_send_message_length", max(self.max_message_bytes, 64 << 20)),
                     ("grpc.max_receive_message_length", self.max_message_bytes)])
        _pb_grpc.add_GRPCInferenceServiceServicer_to_server(
            _InferenceServicer(self.ms.dataplane, self.ms.model_repository_extension), self._server)
        addr = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        self._server.add_insecure_port(addr)
        await self._server.start()
        await self._server.wait_for_termination()

    async def stop(self, sig: int | None = None):
        if self._server:
            await self._server.stop(grace=self.grace_s)


def serve(target: str | os.PathLike, policy: Policy | None = None, *, host: str = "127.0.0.1",
          http_port: int = 8080, grpc_port: int | None = 8081, max_body_bytes: int = 64 << 20,
          request_timeout_s: float = 30.0, drain_timeout_s: float = 30.0) -> int:
    """Serve every model of `target` with KServe's ModelServer until SIGTERM/SIGINT."""
    repo = Repository.load(target, policy or Policy())
    models = [SteportPredictor(m, request_timeout_s) for m in repo.models.values()]
    ms = kserve.ModelServer(http_port=http_port, grpc_port=grpc_port or 0,
                            enable_grpc=grpc_port is not None, workers=1,
                            grace_period=int(drain_timeout_s), enable_latency_logging=False)
    # ModelServer.start() for one worker, with our bind address for REST and gRPC
    ms._register_and_check_atleast_one_model_is_ready(models)
    ms._rest_server = _RESTServer("kserve.model_server:app", ms.dataplane,
                                  ms.model_repository_extension, http_port,
                                  grace_period=int(drain_timeout_s))
    ms._rest_server.config.host = host
    ms.servers.append(ms._rest_server.start())
    if grpc_port is not None:
        ms._grpc_server = _GRPCServer(host, grpc_port, ms, max_body_bytes, drain_timeout_s)
        ms.servers.append(ms._grpc_server.start(ms.max_threads))
    ms.setup_event_loop()
    ms.register_signal_handler()
    try:
        asyncio.run(ms._serve())
    finally:
        for m in models:
            m.stop()
    return 0
