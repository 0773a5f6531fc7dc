"""Serving fixtures: one model folder per test session (every family's model + a fixed-shape
one), and a server on 127.0.0.1 with an ephemeral port."""
from __future__ import annotations

import io

import pytest

from steport.deploy import JsonLog, Policy, Repository, Server, ServerConfig

from .models import FAMILY_MODELS, fixed_shape_model


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    built = {name: build(d) for name, build in FAMILY_MODELS.items()}
    fixed_shape_model(d)
    return d, built


@pytest.fixture
def make_server(model_dir):
    """make_server(**policy/config overrides) -> started Server; stopped at teardown."""
    started = []

    def make(policy: dict | None = None, target=None, **cfg):
        repo = Repository.load(target or model_dir[0], Policy().updated(policy or {"threads": 1}))
        log = io.StringIO()
        srv = Server(repo, ServerConfig(host="127.0.0.1", port=0, **cfg), JsonLog(log)).start()
        srv.log_buffer = log
        started.append(srv)
        return srv
    yield make
    for s in started:
        s.stop()


@pytest.fixture
def server(make_server):
    return make_server()
