"""Run the same inputs through PyTorch, ORT + libsteport_ops, and stock ORT (fallback
bodies); report max abs diff per output and pair."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort

import steport


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
    model = onnx.load(os.fspath(model_path))
    meta = _metadata(model)
    ckpt = None
    if "torch" in backends:
        checkpoint = checkpoint or meta.get("steport.checkpoint")
        if checkpoint and os.path.isfile(checkpoint):
            from steport.train.checkpoint import load_checkpoint

            torch_model, ckpt = load_checkpoint(checkpoint)
        else:
            backends = tuple(b for b in backends if b != "torch")
    feeds = _inputs_for(model, batch, seed, ckpt)
    outs = [o.name for o in model.graph.output]
    results: dict[str, list[np.ndarray]] = {}
    if "steport" in backends:
        results["ort+steport"] = steport.session(model_path).run(None, feeds)
    if "python" in backends:  # numpy kernels inside ORT (onnxruntime-extensions PyOps)
        from .pyops import python_session

        results["ort+python"] = python_session(model).run(None, feeds)
    if "fallback" in backends:
        so = ort.SessionOptions()
        results["ort-fallback"] = ort.InferenceSession(os.fspath(model_path), so).run(None, feeds)
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
