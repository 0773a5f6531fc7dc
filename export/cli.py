"""`steport export`, `steport verify` and `steport info`: argument parsing and printing; the
work is in steport.export.checkpoint, .verify and .model_info."""
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
                   help="quantized models (QConv2d/QLinear, or approx layers with the exact "
                        "multiplier): export as an integer QDQ network that ORT runs on int8 "
                        "kernels (docs/ops.md, Integer models)")
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

    p = sub.add_parser("info", help="describe an exported model: recipe, data set, accuracy, "
                       "steport version, custom ops",
                       description="Print what an exported model carries: its steport metadata "
                       "(recipe, data set, accuracy, steport version, ...), inputs and outputs, "
                       "and the custom ops it uses (domain::op, version).")
    p.add_argument("model", help="path of an .onnx file")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(func=cmd_info)


def cmd_info(args) -> int:
    import json

    from .model_info import model_info

    info = model_info(args.model)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    meta = dict(info["metadata"])
    print(f"{info['path']}: {info['bytes']} bytes, produced by {info['producer'] or 'unknown'}")
    order = ["recipe", "family", "dataset", "accuracy", "accuracy_split", "epochs", "arch",
             "input_shape", "version", "checkpoint"]
    keys = [f"steport.{k}" for k in order if f"steport.{k}" in meta]
    keys += sorted(k for k in meta if k not in keys and k != "steport.ops")
    if not keys:
        print("  no steport metadata (not exported by steport export?)")
    for k in keys:
        print(f"  {k.removeprefix('steport.'):<15} {meta[k]}")
    for io in ("inputs", "outputs"):
        print(f"  {io:<15} " + ", ".join(f"{n} {s}" for n, s in info[io].items()))
    ops = info["custom_ops"]
    print(f"  custom ops      {', '.join(f'{k} v{v}' for k, v in ops.items()) or 'none'}")
    return 0


def cmd_export(args) -> int:
    from steport.errors import ExportError

    from .checkpoint import export_checkpoint

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
    from .verify import _inputs_for, localize_mismatch

    backends = tuple(b for b in (args.backend or ["steport", "python"]) if b != "torch")
    if len(backends) != 2:
        raise SystemExit("--per-node compares exactly two of steport, python, fallback")
    from .verify import load_model

    model = load_model(args.model)
    feeds = _inputs_for(model, args.batch, 0, None)
    report = localize_mismatch(model, feeds, backends, atol=0.0)
    print(report.table())
    return 0 if report.ok else 1

