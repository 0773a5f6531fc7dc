"""`steport export` and `steport verify`."""
from __future__ import annotations

import argparse
import os


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 1 <= value <= 1 << 20:
        raise argparse.ArgumentTypeError(f"{value} is not in [1, 2^20]")
    return value


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX (custom domains + fallbacks)")
    p.add_argument("checkpoint")
    p.add_argument("-o", "--output", required=True, help="path of the .onnx to write")
    p.add_argument("--batch", type=_positive_int, default=2,
                   help="example batch size used for tracing")
    p.add_argument("--preprocess", choices=["none", "image"], default="none",
                   help="image: input is encoded PNG bytes (docs/extensions.md)")
    p.add_argument("--labels", help="comma-separated class names (with --preprocess image)")
    p.add_argument("--invert", action="store_true",
                   help="dark-on-light images for a model trained light-on-dark")
    p.add_argument("--integer", action="store_true",
                   help="quantized (QConv2d/QLinear) models: export as an integer QDQ network "
                        "that ORT runs on int8 kernels (docs/ops.md, Integer models)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("verify", help="compare PyTorch, ORT + steport ops, and stock ORT")
    p.add_argument("model")
    p.add_argument("--checkpoint", help="checkpoint for the PyTorch side (default: from metadata)")
    p.add_argument("--batch", type=_positive_int, default=64)
    p.add_argument("--atol", type=float, default=1e-4)
    p.add_argument("--backend", action="append", choices=["steport", "fallback", "torch", "python"],
                   help="backends to compare (default: all available)")
    p.add_argument("--per-node", action="store_true",
                   help="compare every custom node's output between the first two backends "
                        "(default steport vs python) and name the first that differs")
    p.set_defaults(func=cmd_verify)


def export_checkpoint(checkpoint: str, output: str, batch: int = 2, integer: bool = False):
    import torch

    from steport.train.alloc_guard import AllocationRefused, allocation_budget
    from steport.train.checkpoint import load_checkpoint

    from .core import ExportError, export_model
    from .verify import first_line

    model, ckpt = load_checkpoint(checkpoint)
    shape = (batch, *ckpt["input_shape"])
    with allocation_budget(what=f"{checkpoint}: example input of shape {list(shape)}"):
        x = torch.zeros(shape)
    meta = {"checkpoint": os.path.abspath(checkpoint), "arch": ckpt["model"]["arch"],
            "dataset": ckpt.get("dataset", ""), "input_shape": ckpt["input_shape"]}
    # an input shape the layers cannot take fails here in seconds, with PyTorch's own
    # message, instead of deep inside the exporter's tracing
    try:
        with torch.no_grad(), allocation_budget(what=f"{checkpoint}: a forward pass"):
            model(x[:1])
    except AllocationRefused:
        raise
    except (RuntimeError, ValueError, IndexError, TypeError) as e:
        raise ExportError(f"{checkpoint}: the model ({ckpt['model']['arch']}) does not accept "
                          f"its input_shape {ckpt['input_shape']}: {first_line(e)}") from None
    if integer:
        from .integer import export_integer_model

        return export_integer_model(model, x, output, metadata=meta)
    return export_model(model, x, output, metadata=meta)


def cmd_export(args) -> int:
    from .core import ExportError

    try:
        proto = export_checkpoint(args.checkpoint, args.output, args.batch,
                                  integer=args.integer)
    except ExportError as e:  # a user's model or checkpoint, not a steport bug: one line
        raise ValueError(str(e)) from None
    if args.preprocess == "image":
        from .core import save
        from .preprocess import wrap_image_model

        labels = args.labels.split(",") if args.labels else None
        proto = wrap_image_model(proto, labels, invert=args.invert)
        save(proto, args.output)
    custom = sorted({f"{n.domain}::{n.op_type}" for n in proto.graph.node if n.domain})
    print(f"wrote {args.output} ({os.path.getsize(args.output)} bytes); custom ops: {custom}")
    return 0


def cmd_verify(args) -> int:
    from .verify import verify

    if args.per_node:
        return _per_node(args)
    backends = tuple(args.backend) if args.backend else ("steport", "fallback", "torch")
    report = verify(args.model, args.checkpoint, batch=args.batch, atol=args.atol,
                    backends=backends)
    print(report.table())
    return 0 if report.ok else 1


def _per_node(args) -> int:
    from .pyops import localize_mismatch
    from .verify import _inputs_for

    backends = tuple(b for b in (args.backend or ["steport", "python"]) if b != "torch")
    if len(backends) != 2:
        raise SystemExit("--per-node compares exactly two of steport, python, fallback")
    from .verify import load_model

    model = load_model(args.model)
    feeds = _inputs_for(model, args.batch, 0, None)
    report = localize_mismatch(model, feeds, backends, atol=0.0)
    print(report.table())
    return 0 if report.ok else 1

