"""Checkpoints that carry what is needed to rebuild the model: architecture name and
arguments, weights, input shape, data set, metrics, optimizer state for resuming."""
from __future__ import annotations

import os
from typing import Any

import torch

from .models import build_model

FORMAT = "steport-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    pass


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, *, arch: str,
                    kwargs: dict[str, Any], input_shape: tuple[int, ...], dataset: str,
                    metrics: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> None:
    ckpt = {"format": FORMAT, "format_version": FORMAT_VERSION,
            "model": {"arch": arch, "kwargs": dict(kwargs)},
            "input_shape": list(input_shape), "dataset": dataset,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "metrics": dict(metrics or {}), **(extra or {})}
    tmp = f"{os.fspath(path)}.tmp"
    torch.save(ckpt, tmp)
    os.replace(tmp, path)  # atomic: an interrupted save never leaves a torn checkpoint


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path} is not a readable steport checkpoint: {e}") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a steport checkpoint (no format={FORMAT!r} key)")
    if ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {ckpt['format_version']}, this "
                              f"steport reads up to {FORMAT_VERSION}")
    return ckpt


def load_checkpoint(path: str | os.PathLike) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model from its checkpoint; returns (model in eval mode, checkpoint)."""
    ckpt = read_checkpoint(path)
    spec = ckpt["model"]
    model = build_model(spec["arch"], **spec["kwargs"])
    try:
        missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
    except RuntimeError as e:  # shape mismatches
        raise CheckpointError(f"checkpoint {path} does not fit model {spec['arch']}: {e}") from None
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {path} does not fit model {spec['arch']}{spec['kwargs']}: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.eval()
    return model, ckpt
