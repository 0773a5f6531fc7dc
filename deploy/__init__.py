"""steport.deploy: serve exported models (Open Inference Protocol / KServe v2 over HTTP and
gRPC, dynamic batching, Prometheus metrics), a KServe predictor, Triton model repositories,
Ray Serve.

Needs onnxruntime, numpy, onnx, grpcio, tritonclient[grpc] and prometheus-client (no torch):
the runtime image has no torch. kserve and ray are optional extras.
    from steport.deploy import Repository, Server, ServerConfig
    srv = Server(Repository.load("models/"), ServerConfig(port=8000)).start(); ...; srv.stop()"""
from .repository import Model, Policy, Repository, load_model
from .server import JsonLog, Server, ServerConfig

__all__ = ["Model", "Policy", "Repository", "load_model", "Server", "ServerConfig", "JsonLog"]
