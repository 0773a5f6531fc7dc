"""Models served by one server: load *.onnx files (name = stem) into ORT sessions with the
steport op library, read their input/output specs, and attach a policy and a batcher.

Per-model policy: an optional sidecar ``<stem>.serve.json`` next to the model, e.g.
``{"max_batch": 16, "max_delay_ms": 1, "allow_nonfinite": true, "batching": false}``;
keys left out take the server-wide defaults (the CLI flags)."""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .batcher import DynamicBatcher
from .protocol import (ORT_TO_V2, RequestError, TensorSpec, check_inputs,
                       parse_infer_request)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass
class Policy:
    max_batch: int = 32              # rows per executed batch (and per request)
    max_delay_ms: float = 2.0        # how long the first request waits for company
    max_queue: int = 256             # waiting requests; more -> 503 + Retry-After
    instances: int = 1               # worker threads (concurrent session.run calls)
    threads: int | None = None       # ORT intra-op threads per session (None = ORT default)
    allow_nonfinite: bool = False    # accept NaN/Inf in float inputs
    batching: bool = True            # merge requests when the model has a batch dim
    max_elements: int = 1 << 24      # input elements per request

    KEYS = ("max_batch", "max_delay_ms", "max_queue", "instances", "threads", "allow_nonfinite",
            "batching", "max_elements")

    def updated(self, overrides: dict) -> "Policy":
        bad = set(overrides) - set(self.KEYS)
        if bad:
            raise ValueError(f"unknown policy keys {sorted(bad)}; known: {list(self.KEYS)}")
        p = replace(self, **overrides)
        for k in ("max_batch", "max_queue", "instances", "max_elements"):
            if not isinstance(getattr(p, k), int) or getattr(p, k) < 1:
                raise ValueError(f"policy {k} must be an integer >= 1")
        if not isinstance(p.max_delay_ms, (int, float)) or p.max_delay_ms < 0:
            raise ValueError("policy max_delay_ms must be >= 0")
        return p


@dataclass
class Model:
    name: str
    path: Path
    session: object                   # onnxruntime.InferenceSession
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]
    policy: Policy
    batchable: bool                   # every input and output has a dynamic first dim
    batcher: DynamicBatcher | None = None
    version: str = "1"
    meta: dict = field(default_factory=dict)
    # Maps the served inputs to the session's (image models: BYTES images -> packed bytes).
    adapter: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None

    @property
    def max_batch(self) -> int | None:
        """Batch limit the protocol checks against (None: no batch dim, no limit)."""
        return self.policy.max_batch if self.batchable else None

    def metadata(self) -> dict:
        return {"name": self.name, "versions": [self.version], "platform": "onnxruntime_onnx",
                "inputs": [s.to_json() for s in self.inputs.values()],
                "outputs": [s.to_json() for s in self.outputs.values()]}

    def parse_request(self, body: bytes, header_len: str | None):
        """Validated v2 infer request for this model: (request, output names to return,
        batch rows or None). Shared by `steport serve` and the Ray Serve deployment;
        raises RequestError."""
        try:
            hl = int(header_len) if header_len is not None else None
        except ValueError:
            raise RequestError(f"bad Inference-Header-Content-Length {header_len!r}") from None
        req = parse_infer_request(body, hl, self.inputs, self.policy.max_elements)
        names = req.outputs if req.outputs is not None else list(self.outputs)
        unknown = [n for n in names if n not in self.outputs]
        if unknown:
            raise RequestError(f"unknown outputs {unknown}; the model has {list(self.outputs)}")
        rows = check_inputs(req.inputs, self.inputs, self.policy.allow_nonfinite, self.max_batch)
        return req, names, rows

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self.adapter is not None:
            feeds = self.adapter(feeds)
        return self.session.run(list(self.outputs), feeds)


def _specs(args) -> dict[str, TensorSpec]:
    out = {}
    for a in args:
        shape = [d if isinstance(d, int) and d >= 0 else -1 for d in (a.shape or [])]
        out[a.name] = TensorSpec(a.name, ORT_TO_V2.get(a.type, a.type), shape)
    return out


def load_model(path: str | os.PathLike, policy: Policy, name: str | None = None) -> Model:
    import steport

    path = Path(path)
    name = name or path.name.removesuffix(".onnx")
    if not NAME_RE.match(name):
        raise ValueError(f"model name {name!r} must match {NAME_RE.pattern}")
    side = path.with_name(path.name.removesuffix(".onnx") + ".serve.json")
    if side.is_file():
        try:
            overrides = json.loads(side.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{side}: bad JSON: {e}") from None
        if not isinstance(overrides, dict):
            raise ValueError(f"{side}: must hold a JSON object")
        policy = policy.updated(overrides)
    sess = steport.session(str(path), threads=policy.threads)
    inputs, outputs = _specs(sess.get_inputs()), _specs(sess.get_outputs())
    # Merge requests only when the first dim of everything is dynamic: that is what the
    # exporter writes for a batch dim (export_model(dynamic_batch=True)).
    batchable = policy.batching and all(s.shape and s.shape[0] == -1
                                        for s in (*inputs.values(), *outputs.values()))
    meta = dict(sess.get_modelmeta().custom_metadata_map)
    adapter = None
    if _is_image_model(meta):
        # Raw-input model (steport export --preprocess image): clients send encoded images
        # as one BYTES tensor [N]; requests are not merged (images differ in length).
        inputs, adapter, batchable = {IMAGE_INPUT: TensorSpec(IMAGE_INPUT, "BYTES", [-1])}, \
            _pack_image_feeds, False
    return Model(name, path, sess, inputs, outputs, policy, batchable, meta=meta, adapter=adapter)


IMAGE_INPUT = "image"


def _is_image_model(meta: dict) -> bool:
    try:
        return json.loads(meta.get("steport.preprocess", "{}")).get("kind") == "image"
    except (ValueError, AttributeError):
        return False


def _pack_image_feeds(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from steport.export.preprocess import ImageInputError, pack_images

    try:
        return pack_images(list(feeds[IMAGE_INPUT].ravel()))
    except ImageInputError as e:
        raise RequestError(f"input '{IMAGE_INPUT}': {e}") from None


def discover(target: str | os.PathLike) -> list[Path]:
    """A .onnx file, or a directory's *.onnx files (sorted; no recursion)."""
    p = Path(target)
    if p.is_dir():
        files = sorted(f for f in p.glob("*.onnx") if f.is_file())
        if not files:
            raise FileNotFoundError(f"no *.onnx models in {p}")
        return files
    if p.is_file():
        return [p]
    raise FileNotFoundError(f"{p}: no such model file or directory")


class Repository:
    def __init__(self, models: list[Model]):
        self.models = {m.name: m for m in models}
        if len(self.models) != len(models):
            raise ValueError("two models have the same name")

    @classmethod
    def load(cls, target: str | os.PathLike, policy: Policy | None = None) -> "Repository":
        policy = policy or Policy()
        return cls([load_model(f, policy) for f in discover(target)])

    def get(self, name: str) -> Model | None:
        return self.models.get(name)
