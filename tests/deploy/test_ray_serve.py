"""Ray Serve: 2 replicas of a steport model on a local Ray instance, concurrent requests.
Skips where ray[serve] is not installed (it is not in steport's extras: ~80 MB + deps).
The replica logic itself is tested without ray."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from steport.deploy.ray_serve import SteportReplica


def test_replica_logic_without_ray(model_dir):
    path, x, ref = model_dir[1]["pact"]
    rep = SteportReplica(str(path))
    name = rep.metadata()["inputs"][0]["name"]
    body = json.dumps({"inputs": [{"name": name, "datatype": "FP32", "shape": list(x.shape),
                                   "data": x.ravel().tolist()}]}).encode()
    st, d = rep.infer_body(body)
    assert st == 200
    np.testing.assert_allclose(np.array(d["outputs"][0]["data"]).reshape(d["outputs"][0]["shape"]),
                               ref(x), rtol=1e-5, atol=1e-5)
    st, d = rep.infer_body(b"{")
    assert st == 400 and "malformed JSON" in d["error"]


@pytest.mark.slow
def test_two_replicas_concurrent(model_dir):
    ray = pytest.importorskip("ray")
    serve = pytest.importorskip("ray.serve")
    import urllib.request

    from steport.deploy.ray_serve import build_app

    path, x, ref = model_dir[1]["float"]
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": 0})
        serve.run(build_app(str(path), num_replicas=2), route_prefix="/float")
        url = f"http://127.0.0.1:{serve.context._global_client.http_config.port}/float"
        body = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": list(x.shape),
                                       "data": x.ravel().tolist()}]}).encode()

        def call(_):
            with urllib.request.urlopen(urllib.request.Request(url, body), timeout=60) as r:
                return json.loads(r.read())
        with ThreadPoolExecutor(8) as ex:
            res = list(ex.map(call, range(32)))
        for d in res:
            np.testing.assert_allclose(np.array(d["outputs"][0]["data"]).reshape(x.shape[0], 3),
                                       ref(x), rtol=1e-5, atol=1e-6)
        assert len({d["replica_pid"] for d in res}) == 2, "both replicas served"
    finally:
        serve.shutdown()
        ray.shutdown()
