"""`steport serve` and `steport deploy triton`."""
from __future__ import annotations

import argparse
import signal
import sys
import threading


def _policy_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("batching and limits (per model; a <stem>.serve.json overrides)")
    g.add_argument("--max-batch", type=int, default=32, help="rows per executed batch (default 32)")
    g.add_argument("--max-delay-ms", type=float, default=2.0,
                   help="how long a request waits for others to batch with (default 2)")
    g.add_argument("--max-queue", type=int, default=256, help="waiting requests before 503 (default 256)")
    g.add_argument("--instances", type=int, default=1, help="concurrent session runs per model")
    g.add_argument("--threads", type=int, default=None, help="ORT intra-op threads per session")
    g.add_argument("--max-elements", type=int, default=1 << 24, help="input elements per request")
    g.add_argument("--allow-nonfinite", action="store_true",
                   help="accept NaN/Inf in float inputs (rejected by default)")
    g.add_argument("--no-batching", action="store_true", help="run every request alone")


def _policy(args):
    from .repository import Policy

    return Policy().updated({"max_batch": args.max_batch, "max_delay_ms": args.max_delay_ms,
                             "max_queue": args.max_queue, "instances": args.instances,
                             "threads": args.threads, "max_elements": args.max_elements,
                             "allow_nonfinite": args.allow_nonfinite,
                             "batching": not args.no_batching})


def add_commands(sub) -> None:
    s = sub.add_parser("serve", help="serve models over HTTP and gRPC (KServe v2 / Triton protocol)",
                       description="Serve MODEL.onnx, or every *.onnx in MODEL_DIR (name = file "
                                   "stem), over the Open Inference Protocol (HTTP/JSON + binary "
                                   "tensors, and gRPC), with dynamic batching and Prometheus "
                                   "/metrics.")
    s.add_argument("target", metavar="MODEL.onnx|MODEL_DIR")
    s.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="port (0 = any free one; default 8000)")
    s.add_argument("--grpc-port", type=int, default=None,
                   help="port of the v2 gRPC service (GRPCInferenceService); default 8001, or any "
                        "free one (0) when --port is 0; -1 = no gRPC")
    s.add_argument("--max-body-bytes", type=int, default=64 << 20, help="request body limit (413)")
    s.add_argument("--max-connections", type=int, default=256)
    s.add_argument("--request-timeout", type=float, default=30.0, help="seconds; then 504")
    s.add_argument("--drain-timeout", type=float, default=30.0,
                   help="seconds to finish in-flight requests on SIGTERM/SIGINT")
    s.add_argument("--no-access-log", action="store_true", help="log no line per request")
    s.add_argument("--engine", choices=["steport", "kserve"], default="steport",
                   help="steport: the built-in server (default); kserve: KServe's ModelServer "
                        "with a steport predictor (needs steport[kserve]; fixed ports only)")
    _policy_args(s)
    s.set_defaults(func=_serve)

    d = sub.add_parser("deploy", help="write deployment artifacts for other serving engines")
    dsub = d.add_subparsers(dest="target_engine", metavar="ENGINE", required=True)
    t = dsub.add_parser("triton", help="write a Triton Inference Server model repository",
                        description="Write OUT/<name>/config.pbtxt, OUT/<name>/1/model.onnx and "
                                    "the steport op library for Triton's onnxruntime backend.")
    t.add_argument("model", metavar="MODEL.onnx")
    t.add_argument("out", metavar="OUT")
    t.add_argument("--name", help="model name (default: file stem)")
    t.add_argument("--kind", choices=["cpu", "gpu"], default="cpu", help="instance kind")
    t.add_argument("--library-dir", help="where Triton sees OUT/<name>/ (default /models/<name>)")
    _policy_args(t)
    t.set_defaults(func=_deploy_triton)


def _serve(args) -> int:
    if args.engine == "kserve":
        if args.port == 0 or args.grpc_port == 0:
            raise SystemExit("--engine kserve cannot report a port chosen by the system: "
                             "give --port and --grpc-port explicitly")
        from .kserve import serve

        grpc_port = 8001 if args.grpc_port is None else (None if args.grpc_port < 0 else args.grpc_port)
        return serve(args.target, _policy(args), host=args.host, http_port=args.port,
                     grpc_port=grpc_port, max_body_bytes=args.max_body_bytes,
                     request_timeout_s=args.request_timeout, drain_timeout_s=args.drain_timeout)
    from .repository import Repository
    from .server import JsonLog, Server, ServerConfig

    log = JsonLog(enabled=not args.no_access_log)
    repo = Repository.load(args.target, _policy(args))
    cfg = ServerConfig(host=args.host, port=args.port, max_body_bytes=args.max_body_bytes,
                       request_timeout_s=args.request_timeout, drain_timeout_s=args.drain_timeout,
                       max_connections=args.max_connections, access_log=not args.no_access_log,
                       grpc_port=_grpc_port(args))
    stop = threading.Event()
    got = []

    def on_signal(signum, _frame):
        got.append(signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    try:
        srv = Server(repo, cfg, log).start()
    except OSError as e:  # port taken, address not available
        raise SystemExit(f"steport serve: error: cannot listen: {e}") from None
    while not stop.wait(0.5):
        pass
    log("signal", signal=got[0] if got else None)
    clean = srv.stop()
    return 0 if clean else 1


def _grpc_port(args) -> int | None:
    if args.grpc_port is None:
        return 0 if args.port == 0 else 8001
    return None if args.grpc_port < 0 else args.grpc_port


def _deploy_triton(args) -> int:
    from .triton import write_repository

    root = write_repository(args.model, args.out, name=args.name, policy=_policy(args),
                            instances=args.instances, kind=f"KIND_{args.kind.upper()}",
                            library_dir_in_server=args.library_dir, cuda=args.kind == "gpu")
    print(f"wrote {root}/config.pbtxt, {root}/1/model.onnx and the op library", file=sys.stderr)
    return 0
