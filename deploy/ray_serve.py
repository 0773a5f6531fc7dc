"""Ray Serve deployment of a steport model: each replica holds one ORT session with the
steport op library (steport.session via load_model); requests speak the same v2 protocol as
`steport serve` (POST {"inputs": [{"name", "datatype", "shape", "data"}]}, binary tensors
with Inference-Header-Content-Length, GET = model metadata). Ray's @serve.batch collects
concurrent requests; requests with the same non-batch shapes run as one session call.

    from ray import serve
    from steport.deploy.ray_serve import build_app
    serve.run(build_app("model.onnx", num_replicas=2), route_prefix="/pact")

Every response carries X-Steport-Replica (Serve's replica id) and X-Steport-Pid headers, so
a client can see which replica answered. ray[serve] is an optional extra (steport[ray])."""
from __future__ import annotations

import os

import numpy as np

from .protocol import InferRequest, RequestError, encode_response
from .repository import Model, Policy, load_model

Response = tuple[int, bytes, dict[str, str]]   # status, body, headers


def _signature(feeds: dict[str, np.ndarray]) -> tuple:
    """Requests merge only when every input agrees on dtype and non-batch dims."""
    return tuple((k, v.dtype.str, v.shape[1:]) for k, v in sorted(feeds.items()))


def run_merged(model: Model, feeds_list: list[dict[str, np.ndarray]]) -> list[tuple]:
    """Run a list of validated requests; entry i is (request i's output list, or the
    exception its session call raised; how many requests shared that call). Requests with
    the same signature are concatenated along the batch dim, up to policy.max_batch rows
    per session call."""
    results: list = [None] * len(feeds_list)
    if not model.batchable:
        groups = [[i] for i in range(len(feeds_list))]
    else:
        by_sig: dict[tuple, list[list[int]]] = {}
        rows_in: dict[tuple, int] = {}
        for i, f in enumerate(feeds_list):
            sig, rows = _signature(f), next(iter(f.values())).shape[0]
            chunks = by_sig.setdefault(sig, [[]])
            if chunks[-1] and rows_in[sig] + rows > model.policy.max_batch:
                chunks.append([])
                rows_in[sig] = 0
            chunks[-1].append(i)
            rows_in[sig] = rows_in.get(sig, 0) + rows
        groups = [c for chunks in by_sig.values() for c in chunks]
    for idx in groups:
        try:
            if len(idx) == 1:
                results[idx[0]] = (model.run(feeds_list[idx[0]]), 1)
                continue
            merged = {k: np.concatenate([feeds_list[i][k] for i in idx]) for k in feeds_list[idx[0]]}
            outs, start = model.run(merged), 0
            for i in idx:
                r = next(iter(feeds_list[i].values())).shape[0]
                results[i] = ([o[start:start + r] for o in outs], len(idx))
                start += r
        except Exception as e:  # noqa: BLE001 - handed back to each request of the group
            for i in idx:
                results[i] = (e, len(idx))
    return results


class SteportReplica:
    """The request logic of one replica, without ray (build_app wraps it in a deployment)."""

    def __init__(self, model_path: str, policy: dict | None = None, replica_id: str | None = None):
        self.model = load_model(model_path, Policy().updated(policy or {}))
        self.pid = os.getpid()
        self.replica_id = replica_id or f"pid-{self.pid}"

    def headers(self) -> dict[str, str]:
        return {"X-Steport-Replica": self.replica_id, "X-Steport-Pid": str(self.pid)}

    def error(self, e: RequestError) -> Response:
        import json

        return e.status, json.dumps({"error": str(e)}).encode(), {**self.headers(), **e.headers}

    def parse(self, body: bytes, header_len: str | None) -> tuple[InferRequest, list[str]]:
        """Validated request and the output names to return; raises RequestError."""
        req, names, _rows = self.model.parse_request(body, header_len)
        return req, names

    def respond(self, req: InferRequest, names: list[str], result: tuple) -> Response:
        """result: one entry of run_merged's list."""
        m = self.model
        outs, shared = result
        if isinstance(outs, Exception):
            return self.error(RequestError(f"inference failed: {outs}", 500))
        by_name = dict(zip(m.outputs, outs))
        body, header_len = encode_response(m.name, m.version, req, names, [by_name[n] for n in names])
        # X-Steport-Batch: requests that shared this session call (1 = ran alone)
        h = {**self.headers(), "Content-Type": "application/json", "X-Steport-Batch": str(shared)}
        if header_len is not None:
            h.update({"Content-Type": "application/octet-stream",
                      "Inference-Header-Content-Length": str(header_len)})
        return 200, body, h

    def infer_body(self, body: bytes, header_len: str | None = None) -> Response:
        """One request, run at once (no batching)."""
        try:
            req, names = self.parse(body, header_len)
        except RequestError as e:
            return self.error(e)
        return self.respond(req, names, run_merged(self.model, [req.inputs])[0])

    def metadata(self) -> dict:
        return self.model.metadata()


def build_app(model_path: str | os.PathLike, *, num_replicas: int = 2, max_batch: int = 16,
              max_delay_ms: float = 2.0, num_cpus: float = 1.0, policy: dict | None = None):
    """A Ray Serve application for one model (v2 over HTTP at the route prefix).
    max_batch: requests @serve.batch collects per call (rows per session call stay within
    policy["max_batch"]); num_cpus: Ray CPUs reserved per replica."""
    import asyncio

    from ray import serve
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response as HTTPResponse

    if num_replicas < 1 or max_batch < 1:
        raise ValueError("num_replicas and max_batch must be >= 1")

    @serve.deployment(num_replicas=num_replicas, max_ongoing_requests=max(max_batch, 5),
                      ray_actor_options={"num_cpus": num_cpus})
    class SteportDeployment(SteportReplica):
        def __init__(self, path: str, pol: dict | None):
            rid = serve.get_replica_context().replica_id.unique_id
            super().__init__(path, pol, rid)

        @serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=max_delay_ms / 1e3)
        async def _run_batch(self, feeds_list: list[dict]) -> list:
            # off the event loop: the replica keeps accepting requests while ORT runs
            return await asyncio.to_thread(run_merged, self.model, feeds_list)

        async def __call__(self, request: Request):
            if request.method == "GET":
                return JSONResponse(self.metadata(), headers=self.headers())
            try:
                req, names = self.parse(await request.body(),
                                        request.headers.get("Inference-Header-Content-Length"))
            except RequestError as e:
                status, body, h = self.error(e)
            else:
                status, body, h = self.respond(req, names, await self._run_batch(req.inputs))
            ctype = h.pop("Content-Type", "application/json")
            return HTTPResponse(body, status_code=status, headers=h, media_type=ctype)

    return SteportDeployment.bind(str(model_path), policy)
