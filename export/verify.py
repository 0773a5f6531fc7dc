"""Run the same inputs through PyTorch, ORT + libsteport_ops, and stock ORT (fallback
bodies); report max abs diff per output and pair."""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort

import steport
from steport.registry import DOMAINS, get

from .onnx_utils import TENSOR_TYPES, load_proto, value_types


@dataclass
class PairResult:
    a: str
    b: str
    output: str
    max_abs_diff: float
    mismatch_fraction: float  # elements with |a - b| > atol (NaNs in the same place agree)
    argmax_agreement: float | None
    ok: bool


@dataclass
class VerifyReport:
    model: str
    batch: int
    pairs: list[PairResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.pairs)

    def table(self) -> str:
        lines = [f"verify {self.model} (batch {self.batch})",
                 f"{'pair':34s} {'output':10s} {'max|diff|':>10s} {'mismatch':>9s} {'argmax':>7s}  ok"]
        for p in self.pairs:
            am = "-" if p.argmax_agreement is None else f"{p.argmax_agreement:.3f}"
            lines.append(f"{p.a + ' vs ' + p.b:34s} {p.output:10s} {p.max_abs_diff:10.3g} "
                         f"{p.mismatch_fraction:9.4f} {am:>7s}  {'yes' if p.ok else 'NO'}")
        lines.append("PASS" if self.ok else "FAIL")
        return "\n".join(lines)


def _compare(a, b, name_a, name_b, out, atol, max_mismatch) -> PairResult:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    same_nan = np.isnan(a) & np.isnan(b)
    diff = np.where(same_nan, 0.0, np.abs(a - b))
    diff = np.nan_to_num(diff, nan=np.inf)
    mad = float(diff.max()) if diff.size else 0.0
    frac = float((diff > atol).mean()) if diff.size else 0.0
    am = None
    if a.ndim == 2 and a.shape[1] > 1:
        am = float((a.argmax(1) == b.argmax(1)).mean())
    return PairResult(name_a, name_b, out, mad, frac, am, frac <= max_mismatch)


def first_line(e: BaseException) -> str:
    """An exception as one line (the CLI's error format)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def load_model(path: str | os.PathLike) -> onnx.ModelProto:
    """onnx.load with one clear ValueError/FileNotFoundError per way a path can be wrong
    (the CLI prints it as one line), instead of protobuf's DecodeError traceback."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model {path} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory, not an ONNX model file")
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise ValueError(f"{path} is empty, not an ONNX model")
    if head.startswith(b"PK"):
        raise ValueError(f"{path} is a zip archive (a PyTorch checkpoint?), not an ONNX model; "
                         f"export it first: steport export {path} -o model.onnx")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:  # noqa: BLE001 - DecodeError, RuntimeWarning, ...: all mean "not ONNX"
        raise ValueError(f"cannot parse {path} as an ONNX model: {first_line(e)}") from None
    if not model.graph.output:
        raise ValueError(f"{path} is not an ONNX model (no graph outputs; truncated or not a "
                         f"model file)")
    return model


def _session(name: str, make):
    """A session, or one ValueError line saying why onnxruntime refuses the model."""
    try:
        return make()
    except ValueError:
        raise
    except Exception as e:  # noqa: BLE001 - onnxruntime's exception types are not public
        raise ValueError(f"{name} cannot load the model: {first_line(e)}") from None


def _run(name: str, make, feeds) -> list:
    sess = _session(name, make)
    try:
        return sess.run(None, feeds)
    except Exception as e:  # noqa: BLE001 - e.g. a kernel refusing an input
        raise ValueError(f"{name} failed to run the model: {first_line(e)}") from None


def _check_checkpoint_fits(model: onnx.ModelProto, meta: dict[str, str], ckpt: dict,
                           checkpoint: str) -> None:
    """A checkpoint of another model would only show up as a numeric FAIL: say so instead."""
    arch = ckpt["model"]["arch"]
    exported = meta.get("steport.arch")
    if exported is not None and exported != arch:
        raise ValueError(f"checkpoint {checkpoint} is a {arch!r} model but the ONNX model was "
                         f"exported from a {exported!r}; pass the checkpoint it was exported from")
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    want = [int(d) for d in ckpt["input_shape"]]
    if len(inputs) == 1:
        dims = [d.dim_value if d.HasField("dim_value") else None
                for d in inputs[0].type.tensor_type.shape.dim][1:]
        if len(dims) != len(want) or any(d is not None and d != w for d, w in zip(dims, want)):
            raise ValueError(f"checkpoint {checkpoint} takes inputs of shape {want} but the ONNX "
                             f"model's input is {dims} (batch left out); it belongs to another "
                             f"model")


def _metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def _inputs_for(model: onnx.ModelProto, batch: int, seed: int, ckpt: dict | None):
    rng = np.random.default_rng(seed)
    feeds = {}
    inits = {i.name for i in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else batch
                for d in inp.type.tensor_type.shape.dim]
        feeds[inp.name] = rng.standard_normal(dims).astype(np.float32)
    if ckpt is not None and len(feeds) == 1 and ckpt.get("dataset"):
        try:
            from steport.train.data import load_dataset

            test = load_dataset(ckpt["dataset"]).test
            x = test.x[:batch].numpy()
            name = next(iter(feeds))
            if tuple(x.shape[1:]) == feeds[name].shape[1:]:
                feeds[name] = x  # real data: quantizers see realistic ranges
        except Exception:  # pragma: no cover - data set unavailable: random inputs stay
            pass
    return feeds


def verify(model_path: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
           batch: int = 64, seed: int = 0, atol: float = 1e-4, torch_max_mismatch: float = 0.01,
           backends: tuple[str, ...] = ("steport", "fallback", "torch"),
           integer_min_argmax: float = 0.95) -> VerifyReport:
    """Compare backends pairwise. ORT with the library vs the fallback bodies must agree on
    every element (within atol); PyTorch vs ORT may differ on at most ``torch_max_mismatch``
    of the elements (float ops before a quantizer can move a value across a rounding step).

    An integer model (``steport export --integer``) is also run through the PyTorch integer
    reference of docs/ops.md ("pytorch-int"), which every ORT backend must match exactly; the
    fake-quant PyTorch model computes in float and rounds differently, so against it only
    the predicted class is compared (agreement >= ``integer_min_argmax``)."""
    model = load_model(model_path)
    meta = _metadata(model)
    ckpt = None
    if checkpoint and not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
    if "torch" in backends:
        checkpoint = checkpoint or meta.get("steport.checkpoint")
        if checkpoint and os.path.isfile(checkpoint):
            from steport.train.checkpoint import load_checkpoint

            torch_model, ckpt = load_checkpoint(checkpoint)
            _check_checkpoint_fits(model, meta, ckpt, checkpoint)
        else:
            backends = tuple(b for b in backends if b != "torch")
    feeds = _inputs_for(model, batch, seed, ckpt)
    outs = [o.name for o in model.graph.output]
    results: dict[str, list[np.ndarray]] = {}
    if "steport" in backends:
        quiet = ort.SessionOptions()
        quiet.log_severity_level = 4  # a refusal is reported once, as our own error line
        results["ort+steport"] = _run("onnxruntime + steport",
                                      lambda: steport.session(model_path, sess_options=quiet), feeds)
    if "python" in backends:  # numpy kernels inside ORT (onnxruntime-extensions PyOps)
        from .ort_extensions import python_session

        results["ort+python"] = python_session(model).run(None, feeds)
    if "fallback" in backends:
        so = ort.SessionOptions()
        so.log_severity_level = 4
        results["ort-fallback"] = _run("stock onnxruntime (fallback bodies)",
                                       lambda: ort.InferenceSession(os.fspath(model_path), so), feeds)
    if "torch" in backends:
        import torch

        with torch.no_grad():
            y = torch_model(*[torch.from_numpy(v) for v in feeds.values()])
        ys = y if isinstance(y, (tuple, list)) else [y]
        results["pytorch"] = [t.numpy() for t in ys]
        if "steport.integer" in meta:
            from .integer import build_plan, integer_reference

            x = torch.from_numpy(next(iter(feeds.values())))
            results["pytorch-int"] = [integer_reference(build_plan(torch_model), x).numpy()]
    report = VerifyReport(os.fspath(model_path), batch)
    names = list(results)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            a, b = names[i], names[j]
            limit = torch_max_mismatch if "pytorch" in (a, b) else 0.0  # kernels: exact
            for k, out in enumerate(outs):
                if "pytorch-int" in (a, b) and "pytorch" not in (a, b):  # bit for bit
                    pair = _compare(results[a][k], results[b][k], a, b, out, 0.0, 0.0)
                elif "pytorch" in (a, b) and "steport.integer" in meta:
                    pair = _compare(results[a][k], results[b][k], a, b, out, atol, 1.0)
                    pair.ok = pair.argmax_agreement is None or (
                        pair.argmax_agreement >= integer_min_argmax)
                else:
                    pair = _compare(results[a][k], results[b][k], a, b, out, atol, limit)
                report.pairs.append(pair)
    return report


# ---- per-node mismatch localization -------------------------------------------------------

@dataclass
class NodeDiff:
    node: str
    op: str  # domain::name
    output: str
    max_abs_diff: float
    mismatches: int
    size: int

    @property
    def ok(self) -> bool:
        return self.mismatches == 0


@dataclass
class NodeReport:
    backends: tuple[str, str]
    nodes: list[NodeDiff]

    @property
    def first_mismatch(self) -> NodeDiff | None:
        return next((d for d in self.nodes if not d.ok), None)

    @property
    def ok(self) -> bool:
        return self.first_mismatch is None

    def table(self) -> str:
        a, b = self.backends
        lines = [f"per-node comparison {a} vs {b} (custom nodes in graph order)",
                 f"{'node':24s} {'op':28s} {'output':16s} {'max|diff|':>10s} {'mismatch':>10s}"]
        for d in self.nodes:
            lines.append(f"{d.node:24s} {d.op:28s} {d.output:16s} {d.max_abs_diff:10.3g} "
                         f"{d.mismatches:>5d}/{d.size:<5d}")
        first = self.first_mismatch
        lines.append("all custom nodes agree" if first is None else
                     f"FIRST MISMATCH: node '{first.node}' ({first.op}), output '{first.output}'")
        return "\n".join(lines)


def _expose_custom_outputs(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[tuple]]:
    """Copy of ``model`` with every steport node's outputs added as graph outputs."""
    m = copy.deepcopy(model)
    ours = set(DOMAINS.values())
    types = value_types(model)
    have = {o.name for o in m.graph.output}
    probes = []
    for i, n in enumerate(m.graph.node):
        if n.domain not in ours:
            continue
        if not n.name:
            n.name = f"{n.op_type}_{i}"
        for o in n.output:
            if not o:
                continue
            probes.append((n.name, f"{n.domain}::{n.op_type}", o))
            if o not in have:
                t = types.get(o)
                if t is None:
                    port = get(n.domain, n.op_type).outputs[list(n.output).index(o)]
                    t = TENSOR_TYPES[port.types[0]]
                m.graph.output.append(onnx.helper.make_tensor_value_info(o, t, None))
                have.add(o)
    return m, probes


def _diff(a: np.ndarray, b: np.ndarray, atol: float) -> tuple[float, int]:
    if a.shape != b.shape:
        return float("inf"), max(a.size, b.size, 1)
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        same = (np.isnan(a64) & np.isnan(b64)) | (a64 == b64)  # inf == inf counts as equal
        d = np.where(same, 0.0, np.nan_to_num(np.abs(a64 - b64), nan=np.inf))
        return (float(d.max()) if d.size else 0.0), int((d > atol).sum())
    neq = a != b
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return (float(d.max()) if d.size else 0.0), int(neq.sum())


def localize_mismatch(model: Any, feeds: dict[str, np.ndarray],
                      backends: tuple[str, str] = ("steport", "python"),
                      atol: float = 0.0) -> NodeReport:
    """Run ``model`` on two backends ("steport": C++ kernels, "python": numpy kernels,
    "fallback": stock ORT with the fallback bodies) with every custom node's outputs exposed,
    and compare node by node in graph (topological) order. The first differing node is where
    the backends part ways; later ones may only inherit its difference."""
    proto = load_proto(model)
    probed, probes = _expose_custom_outputs(proto)
    names = [o.name for o in probed.graph.output]
    results = {}
    for b in backends:
        if b == "steport":
            sess = steport.session(probed.SerializeToString(), threads=1)
        elif b == "python":
            from .ort_extensions import python_session  # optional dependency, loaded on use

            sess = python_session(probed)
        elif b == "fallback":
            sess = ort.InferenceSession(probed.SerializeToString(),
                                        providers=["CPUExecutionProvider"])
        else:
            raise ValueError(f"unknown backend {b!r} (steport, python, fallback)")
        results[b] = dict(zip(names, sess.run(None, feeds)))
    ra, rb = (results[b] for b in backends)
    diffs = []
    for node, op, out in probes:
        mad, bad = _diff(np.asarray(ra[out]), np.asarray(rb[out]), atol)
        diffs.append(NodeDiff(node, op, out, mad, bad, int(np.asarray(ra[out]).size)))
    return NodeReport(tuple(backends), diffs)
