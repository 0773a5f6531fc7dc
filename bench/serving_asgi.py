"""Benchmark candidate for the HTTP core of `steport serve`: the same v2 infer path (the
model's parse_request, Server.infer's batcher, encode_response) as a Starlette app under
uvicorn (an asyncio event loop, no thread per connection). Used by bench/serving.py's
engine comparison only: it is not an engine `steport serve` offers (it has none of the
built-in server's body/JSON/connection limits).

    python -m steport.bench.serving_asgi MODEL_OR_DIR --port P"""
from __future__ import annotations

import argparse
import asyncio
import sys


def build_app(target: str):
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from steport.deploy.batcher import DynamicBatcher
    from steport.deploy.protocol import RequestError, encode_response
    from steport.deploy.repository import Policy, Repository

    repo = Repository.load(target, Policy().updated({"threads": 1}))
    for m in repo.models.values():
        p = m.policy
        m.batcher = DynamicBatcher(m.run, max_batch=p.max_batch if m.batchable else 1,
                                   max_delay_s=p.max_delay_ms / 1e3, max_queue=p.max_queue,
                                   workers=p.instances, name=m.name)

    async def ready(request: Request):
        return JSONResponse({"ready": True})

    async def metadata(request: Request):
        m = repo.get(request.path_params["model"])
        if m is None:
            return JSONResponse({"error": "unknown model"}, 404)
        return JSONResponse(m.metadata())

    async def infer(request: Request):
        m = repo.get(request.path_params["model"])
        if m is None:
            return JSONResponse({"error": "unknown model"}, 404)
        body = await request.body()
        try:
            req, names, rows = m.parse_request(body, request.headers.get(
                "inference-header-content-length"))
            fut = m.batcher.submit(req.inputs, rows if m.batchable else None)
            outs = await asyncio.wrap_future(fut)
        except RequestError as e:
            return JSONResponse({"error": str(e)}, e.status)
        by_name = dict(zip(m.outputs, outs))
        data, header_len = encode_response(m.name, m.version, req, names,
                                           [by_name[n] for n in names])
        if header_len is None:
            return Response(data, media_type="application/json")
        return Response(data, media_type="application/octet-stream",
                        headers={"Inference-Header-Content-Length": str(header_len)})

    return Starlette(routes=[Route("/v2/health/ready", ready),
                             Route("/v2/models/{model}", metadata),
                             Route("/v2/models/{model}/infer", infer, methods=["POST"])])


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    ap = argparse.ArgumentParser()
    ap.add_argument("target")
    ap.add_argument("--port", type=int, required=True)
    a = ap.parse_args(argv)
    uvicorn.run(build_app(a.target), host="127.0.0.1", port=a.port, log_level="warning",
                access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
