"""steport.deploy: serve exported models (Open Inference Protocol / KServe v2 over HTTP,
dynamic batching, Prometheus metrics), write Triton model repositories, Ray Serve.

Needs only onnxruntime, numpy, onnx and the stdlib (no torch): the runtime image has no torch.
    from steport.deploy import Repository, Server, ServerConfig
    srv = Server(Repository.load("models/"), ServerConfig(port=8000)).start(); ...; srv.stop()"""
from .repository import Model, Policy, Repository, load_model
from .server import JsonLog, Server, ServerConfig

__all__ = ["Model", "Policy", "Repository", "load_model", "Server", "ServerConfig", "JsonLog"]
