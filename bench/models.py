"""Model-level benchmark: what a user deploys and trains, not a kernel in isolation.

For each reference network (models/backbones.py: VGG-small on 32x32x3, the 28x28 CNN), side
by side in this one process:
- ``ort-fp32``: the float network exported by torch, run in stock ORT (the baseline);
- ``ort-int8``: ORT's own static int8 quantization of that float network
  (``quantize_static``, QDQ, per-channel, after ``quant_pre_process``): what a user would
  pick instead of steport;
- ``steport-<variant>``: each family's variant of the same network (VARIANTS below),
  exported by steport and run in ORT with libsteport_ops;
at batch 1 and 16 and each thread count. Rows carry the ratio to fp32 (the runner's
``vs baseline``) and, in ``extra["vs_ort_int8"]``, the ratio to ORT int8 (> 1 = faster).

``bench: models-train`` rows time one training step (forward, backward, Adam) of each variant
against the float network's step at the same batch size (ratio < 1 = slower than float).

Weights are random (calibrated by a few training-mode forwards so BatchNorm statistics and
observed quantization ranges are set): speed does not depend on what was learned. A variant
whose arch is not registered (a family not built yet) is skipped with a note on stderr."""
from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from .common import Context, Row, session, time_session, timeit, torch_threads


@dataclass(frozen=True)
class Net:
    arch: str                          # the float arch (models/backbones.py)
    shape: tuple[int, int, int]        # C, H, W of one input image
    train_batch: int                   # batch size of the training-step comparison
    quick_kwargs: dict = field(default_factory=dict)   # smaller network for --quick


NETS: dict[str, Net] = {
    "vgg_small": Net("vgg_small", (3, 32, 32), 16, {"width": 16, "hidden": 64}),
    "cnn28": Net("cnn28", (1, 28, 28), 64, {"width": 8}),
}


@dataclass(frozen=True)
class Variant:
    name: str                          # impl name in the table: steport-<name>
    archs: dict[str, str]              # net name -> the family's arch of that net
    kwargs: dict = field(default_factory=dict)
    integer: bool = False              # export with steport.export.integer (integer network)


# Each family's variant of the reference networks. Families register these archs in
# train/models/<family>.py from models/backbones.py; add a line here for a new one.
VARIANTS: list[Variant] = [
    Variant("binary", {"vgg_small": "binary_vgg_small", "cnn28": "binary_cnn28"}),
    # PACT networks as integer QDQ graphs (ORT: QLinearConv / QGemm), a<bits>w<bits>
    *(Variant(f"pact-int-a{a}w{w}", {"vgg_small": "pact_vgg_small", "cnn28": "pact_cnn28"},
              {"bits": a, "weight_bits": w}, integer=True)
      for a, w in ((2, 8), (4, 8), (8, 8))),
    # the same 4-bit PACT network with float Conv/Gemm and ai.steport.quant::Pact nodes
    Variant("pact-float-a4w8", {"vgg_small": "pact_vgg_small", "cnn28": "pact_cnn28"},
            {"bits": 4, "weight_bits": 8}),
    # approx: exact LUT, a separable one (DRUM k=4: f(a) * g(b)) and a general one (Mitchell)
    Variant("approx-exact", {"vgg_small": "approx_vgg_small", "cnn28": "approx_cnn28"}),
    # the exact LUT as an integer network (QDQ: ORT's QLinearConv / QGemm), `export --integer`
    Variant("approx-exact-int", {"vgg_small": "approx_vgg_small", "cnn28": "approx_cnn28"},
            integer=True),
    # any other LUT as an integer network (`export --integer`: ApproxQLinearConv /
    # ApproxQLinearMatMul, uint8 codes between layers), what a user deploys
    Variant("approx-drum_k4-int", {"vgg_small": "approx_vgg_small", "cnn28": "approx_cnn28"},
            {"multiplier": "drum_k4"}, integer=True),
    Variant("approx-mitchell-int", {"vgg_small": "approx_vgg_small", "cnn28": "approx_cnn28"},
            {"multiplier": "mitchell"}, integer=True),
]

BATCHES = (1, 16)


def _calibrated(arch: str, kwargs: dict, shape, rng: np.random.Generator):
    """Model with random weights after a few training-mode forwards (BN statistics,
    observed quantization ranges), in eval mode."""
    import torch

    from steport.train.models import build_model

    torch.manual_seed(0)
    model = build_model(arch, in_channels=shape[0], num_classes=10, image_size=shape[1],
                        **kwargs)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.from_numpy(rng.standard_normal((16, *shape), dtype=np.float32)))
    return model.eval()


def _export(model, shape, path: Path) -> onnx.ModelProto:
    import torch

    from steport.export import export_model

    return export_model(model, torch.zeros(2, *shape), path)


def _export_integer(model, shape, path: Path) -> onnx.ModelProto:
    import torch

    from steport.export.integer import export_integer_model

    return export_integer_model(model, torch.zeros(2, *shape), path)


class _Calibration:
    """onnxruntime.quantization.CalibrationDataReader over fixed random batches."""

    def __init__(self, input_name: str, batches: list[np.ndarray]):
        self._it = iter([{input_name: b} for b in batches])

    def get_next(self):
        return next(self._it, None)


def ort_int8(float_path: Path, out_path: Path, calibration: list[np.ndarray]) -> onnx.ModelProto:
    """ORT's static int8 quantization of a float model, as its docs recommend it for CPU:
    pre-processing (shape inference + graph optimization), QDQ format, uint8 activations,
    int8 per-channel weights, MinMax calibration."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = out_path.with_suffix(".pre.onnx")
    quant_pre_process(str(float_path), str(pre))
    name = onnx.load(str(pre)).graph.input[0].name
    quantize_static(str(pre), str(out_path), _Calibration(name, calibration),
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return onnx.load(str(out_path))


def _train_step_seconds(model, shape, batch: int, ctx: Context, rng) -> float:
    import torch

    x = torch.from_numpy(rng.standard_normal((batch, *shape), dtype=np.float32))
    y = torch.from_numpy(rng.integers(0, 10, batch))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    # a training step is long: a couple of timed steps are enough and keep the run short
    return timeit(step, Context(quick=True, min_time=0.0, repeats=2 if ctx.quick else 4))


def _note(msg: str) -> None:
    print(f"  models: {msg}", file=sys.stderr, flush=True)


def run(ctx: Context) -> list[Row]:
    from steport.train.models import model_names

    rows: list[Row] = []
    rng = np.random.default_rng(0)
    known = set(model_names())
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        for net_name, net in NETS.items():
            kwargs = dict(net.quick_kwargs) if ctx.quick else {}
            calib = [rng.standard_normal((16, *net.shape), dtype=np.float32) for _ in range(4)]
            float_model = _calibrated(net.arch, kwargs, net.shape, rng)
            fp32_path = tmpd / f"{net_name}.fp32.onnx"
            _export(float_model, net.shape, fp32_path)
            models = {"ort-fp32": (onnx.load(str(fp32_path)), False),
                      "ort-int8": (ort_int8(fp32_path, tmpd / f"{net_name}.int8.onnx", calib),
                                   False)}
            trainable = {"torch-fp32": float_model}
            for v in VARIANTS:
                arch = v.archs.get(net_name)
                if arch is None:
                    continue
                if arch not in known:
                    _note(f"skipping steport-{v.name} on {net_name}: arch {arch!r} not registered")
                    continue
                m = _calibrated(arch, {**kwargs, **v.kwargs}, net.shape, rng)
                exporter = _export_integer if v.integer else _export
                models[f"steport-{v.name}"] = (exporter(m, net.shape,
                                                        tmpd / f"{net_name}.{v.name}.onnx"),
                                               True)
                trainable[f"steport-{v.name}"] = m
            for batch in BATCHES:
                x = rng.standard_normal((batch, *net.shape), dtype=np.float32)
                case = f"{net_name} b{batch}"
                for t in ctx.threads:
                    secs = {}
                    for impl, (proto, with_ops) in models.items():
                        sess = session(proto, t, steport_ops=with_ops)
                        secs[impl] = time_session(sess, {sess.get_inputs()[0].name: x}, ctx)
                    for impl, s in secs.items():
                        extra = {} if impl == "ort-int8" else {"vs_ort_int8": secs["ort-int8"] / s}
                        rows.append(Row("models", case, impl, t, s,
                                        baseline=None if impl == "ort-fp32" else "ort-fp32",
                                        items=batch, extra=extra))
            for t in ctx.threads:
                case = f"{net_name} b{net.train_batch} train step"
                with torch_threads(t):
                    for impl, m in trainable.items():
                        s = _train_step_seconds(m, net.shape, net.train_batch, ctx, rng)
                        rows.append(Row("models-train", case, impl, t, s,
                                        baseline=None if impl == "torch-fp32" else "torch-fp32",
                                        items=net.train_batch))
    return rows
