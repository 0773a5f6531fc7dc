"""Exporting a training checkpoint: rebuild the model, check it takes its recorded input
shape, export it (float or integer) and stamp where it came from into the model metadata."""
from __future__ import annotations

import os


def export_checkpoint(checkpoint: str, output: str, batch: int = 2, integer: bool = False):
    """Export a checkpoint written by `steport train` to ``output`` (the float model with
    custom-domain nodes, or with ``integer`` the integer QDQ network), with the metadata of
    checkpoint_metadata(). Raises ExportError (one line) when the model cannot take its own
    recorded input shape or cannot be exported."""
    import torch

    from steport.errors import ExportError
    from steport.train.alloc_guard import AllocationRefused, allocation_budget
    from steport.train.checkpoint import load_checkpoint

    from .core import export_model
    from .verify import first_line

    model, ckpt = load_checkpoint(checkpoint)
    shape = (batch, *ckpt["input_shape"])
    with allocation_budget(what=f"{checkpoint}: example input of shape {list(shape)}"):
        x = torch.zeros(shape)
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
    meta = checkpoint_metadata(checkpoint, ckpt)
    if integer:
        from .integer import export_integer_model

        return export_integer_model(model, x, output, metadata=meta)
    return export_model(model, x, output, metadata=meta)


def checkpoint_metadata(path: str, ckpt: dict) -> dict:
    """What an exported model says about itself (ONNX metadata_props, keys prefixed
    ``steport.``; docs/ops.md "Model metadata"): where it came from (checkpoint, recipe,
    family, arch, data set) and how good it is (test accuracy of the trained weights, the
    epochs and training samples behind it). steport.version / steport.ops are stamped by the
    exporter itself."""
    recipe = ckpt.get("recipe") if isinstance(ckpt.get("recipe"), dict) else {}
    metrics = ckpt.get("metrics") if isinstance(ckpt.get("metrics"), dict) else {}
    meta = {"checkpoint": os.path.abspath(path), "arch": ckpt["model"]["arch"],
            "dataset": ckpt.get("dataset", ""), "input_shape": ckpt["input_shape"]}
    if recipe.get("name"):
        meta["recipe"] = recipe["name"]
    if recipe.get("family"):
        meta["family"] = recipe["family"]
    if isinstance(metrics.get("test_accuracy"), (int, float)):
        meta["accuracy"] = f"{metrics['test_accuracy']:.4f}"
        meta["accuracy_split"] = "test"
    if isinstance(metrics.get("epochs"), int):
        meta["epochs"] = str(metrics["epochs"])
    return meta
