"""Ray Serve deployment of a steport model: each replica holds one ORT session with the
steport op library; requests speak the same v2 JSON as `steport serve`
(POST {"inputs": [{"name", "datatype", "shape", "data"}]}); Ray's @serve.batch merges
concurrent requests along the batch dim.

    from steport.deploy.ray_serve import build_app
    serve.run(build_app("model.onnx", num_replicas=2), route_prefix="/pact")

ray[serve] is not a steport dependency (it is large): install it where you use this."""
from __future__ import annotations

import os

import numpy as np

from .protocol import RequestError, check_inputs, encode_response, parse_infer_request
from .repository import Policy, load_model


class SteportReplica:
    """Plain class wrapped by serve.deployment in build_app (importable without ray)."""

    def __init__(self, model_path: str, policy: dict | None = None):
        self.model = load_model(model_path, Policy().updated(policy or {}))
        self.pid = os.getpid()

    def infer_body(self, body: bytes) -> tuple[int, dict]:
        m = self.model
        try:
            req = parse_infer_request(body, None, m.inputs, m.policy.max_elements)
            check_inputs(req.inputs, m.inputs, m.policy.allow_nonfinite, m.max_batch)
        except RequestError as e:
            return e.status, {"error": str(e)}
        import json

        outs = m.run(req.inputs)
        resp, _ = encode_response(m.name, m.version, req, list(m.outputs), outs)
        d = json.loads(resp)
        d["replica_pid"] = self.pid
        return 200, d

    def metadata(self) -> dict:
        return self.model.metadata()


def build_app(model_path: str | os.PathLike, *, num_replicas: int = 2, max_batch: int = 32,
              max_delay_ms: float = 2.0, policy: dict | None = None):
    """A Ray Serve application for one model (v2 JSON over HTTP at the route prefix)."""
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    @serve.deployment(num_replicas=num_replicas, ray_actor_options={"num_cpus": 0.5})
    class SteportDeployment(SteportReplica):
        @serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=max_delay_ms / 1e3)
        async def _run_batch(self, feeds_list: list[dict]) -> list[list[np.ndarray]]:
            m = self.model
            rows = [next(iter(f.values())).shape[0] for f in feeds_list]
            if m.batchable and len(feeds_list) > 1:
                merged = {k: np.concatenate([f[k] for f in feeds_list]) for k in feeds_list[0]}
                outs, res, start = m.run(merged), [], 0
                for r in rows:
                    res.append([o[start:start + r] for o in outs])
                    start += r
                return res
            return [m.run(f) for f in feeds_list]

        async def __call__(self, request: Request):
            m = self.model
            if request.method == "GET":
                return JSONResponse(self.metadata())
            try:
                req = parse_infer_request(await request.body(), None, m.inputs, m.policy.max_elements)
                check_inputs(req.inputs, m.inputs, m.policy.allow_nonfinite, m.max_batch)
            except RequestError as e:
                return JSONResponse({"error": str(e)}, status_code=e.status)
            outs = await self._run_batch(req.inputs)
            import json

            body, _ = encode_response(m.name, m.version, req, list(m.outputs), outs)
            d = json.loads(body)
            d["replica_pid"] = self.pid
            return JSONResponse(d)

    return SteportDeployment.bind(str(model_path), policy)
