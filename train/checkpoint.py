"""Checkpoints that carry what is needed to rebuild the model: architecture name and
arguments, weights, input shape, data set, metrics — and, for resuming, the training state
(epoch, optimizer, scheduler, every RNG state, history, the recipe)."""
from __future__ import annotations

import os
from typing import Any

import torch

from steport.errors import CheckpointError  # noqa: F401  (defined there, re-exported)

from .alloc_guard import AllocationRefused, allocation_budget
from .models import build_model

FORMAT = "steport-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, *, arch: str,
                    kwargs: dict[str, Any], input_shape: tuple[int, ...], dataset: str,
                    metrics: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> None:
    """``extra`` may hold ``train_state`` (see loop.fit), ``recipe`` and ``data`` (the loader
    name and kwargs)."""
    ckpt = {"format": FORMAT, "format_version": FORMAT_VERSION,
            "model": {"arch": arch, "kwargs": dict(kwargs)},
            "input_shape": list(input_shape), "dataset": dataset,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "metrics": dict(metrics or {}), **(extra or {})}
    tmp = f"{os.fspath(path)}.tmp"
    torch.save(ckpt, tmp)
    os.replace(tmp, path)  # atomic: an interrupted save never leaves a torn checkpoint


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load and validate the container (not the weights against a model)."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path} is not a readable steport checkpoint: {first}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a steport checkpoint (no format={FORMAT!r} key)")
    version = ckpt.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {version!r}, newer than "
                              f"this steport reads ({FORMAT_VERSION}); upgrade steport")
    spec = ckpt.get("model")
    if (not isinstance(spec, dict) or not isinstance(spec.get("arch"), str)
            or not isinstance(spec.get("kwargs"), dict)):
        raise CheckpointError(f"{path}: checkpoint has no valid model {{arch, kwargs}} entry")
    if not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{path}: checkpoint has no state_dict")
    shape = ckpt.get("input_shape")
    if not isinstance(shape, (list, tuple)) or not all(isinstance(d, int) and d > 0 for d in shape):
        raise CheckpointError(f"{path}: checkpoint has no valid input_shape (got {shape!r})")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any], path: str | os.PathLike = "checkpoint") -> torch.nn.Module:
    spec = ckpt["model"]
    try:
        # sizes from the checkpoint are untrusted: refuse terabytes before allocating them
        with allocation_budget(what=f"{path}: model {spec['arch']}{spec['kwargs']}"):
            model = build_model(spec["arch"], **spec["kwargs"])
    except AllocationRefused:
        raise
    except KeyError as e:
        raise CheckpointError(f"{path}: {e.args[0]}") from None
    except (TypeError, ValueError, RuntimeError, OverflowError) as e:
        raise CheckpointError(f"{path}: cannot rebuild model {spec['arch']!r}: {e}") from None
    try:
        missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
    except RuntimeError as e:  # shape mismatches
        msg = " ".join(str(e).split())
        raise CheckpointError(f"checkpoint {path} does not fit model {spec['arch']}: {msg}") from None
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {path} does not fit model {spec['arch']}{spec['kwargs']}: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model


def load_checkpoint(path: str | os.PathLike) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model from its checkpoint; returns (model in eval mode, checkpoint)."""
    ckpt = read_checkpoint(path)
    model = model_from_checkpoint(ckpt, path)
    model.eval()
    return model, ckpt
