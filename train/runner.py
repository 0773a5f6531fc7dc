"""Training one recipe: the library function behind `steport train` and the demo pipeline
(steport.pipeline). Validates the recipe against the data set before the first step,
resumes from or initializes with checkpoints, writes checkpoints and metrics."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path


def fit_config(recipe: dict, epochs, seed, device, deterministic, progress):
    """The recipe's ``train`` section as a validated FitConfig, with the command line's
    overrides applied (None leaves the recipe's value)."""
    from .loop import FitConfig, resolve_device

    try:
        cfg = FitConfig(**recipe.get("train") or {})
    except TypeError as e:
        raise ValueError(f"recipe {recipe.get('name')}: bad train section: {e}") from None
    if epochs is not None:
        cfg.epochs = epochs
    if seed is not None:
        cfg.seed = seed
    if device:
        cfg.device = device
    cfg.device = resolve_device(cfg.device)
    cfg.deterministic = bool(cfg.deterministic or deterministic)
    cfg.progress = progress
    cfg.validate()
    return cfg


def _check_input_shape(model, arch: str, data) -> None:
    """Fail before training when the architecture cannot take this data set's images."""
    import torch

    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            y = model(torch.zeros(2, *data.input_shape))
    except Exception as e:
        msg = " ".join(str(e).split())[:200]
        raise ValueError(f"model {arch!r} does not accept {data.name} inputs of shape "
                         f"{tuple(data.input_shape)}: {msg}") from None
    finally:
        model.train(was)
    if tuple(y.shape) != (2, data.num_classes):
        raise ValueError(f"model {arch!r} gives outputs {tuple(y.shape[1:])} for {data.name}, "
                         f"expected ({data.num_classes},)")


def _resume_state(path, arch: str, kwargs: dict, data, cfg) -> tuple[dict, dict]:
    """Validate a checkpoint against the recipe; returns (checkpoint, train_state)."""
    from .checkpoint import CheckpointError, read_checkpoint

    ckpt = read_checkpoint(path)
    got = ckpt["model"]
    if got["arch"] != arch:
        raise CheckpointError(f"{path} was trained as arch {got['arch']!r}, the recipe builds "
                              f"{arch!r}")
    if got["kwargs"] != kwargs:
        raise CheckpointError(f"{path} has model kwargs {got['kwargs']}, the recipe gives {kwargs}")
    if list(ckpt["input_shape"]) != list(data.input_shape) or ckpt.get("dataset") != data.name:
        raise CheckpointError(f"{path} was trained on {ckpt.get('dataset')} "
                              f"{tuple(ckpt['input_shape'])}, the recipe uses {data.name} "
                              f"{tuple(data.input_shape)}")
    state = ckpt.get("train_state")
    if not isinstance(state, dict) or not {"epoch", "optimizer", "scheduler", "rng"} <= set(state):
        raise CheckpointError(f"{path} has no training state to resume from")
    if state["epoch"] >= cfg.epochs:
        raise CheckpointError(f"{path} is at epoch {state['epoch']} of {cfg.epochs}; pass "
                              f"--epochs N with N > {state['epoch']} to train further")
    return ckpt, state


def init_checkpoint_path(recipe: dict, out_dir) -> Path:
    """``init_from``: a checkpoint path (``*.pt``) or the name of a recipe trained into the
    same output folder (OUT/<name>.pt)."""
    ref = recipe["init_from"]
    if ref.endswith(".pt") or "/" in ref:
        return Path(ref)
    return Path(out_dir) / f"{ref}.pt"


def _init_from(model, recipe: dict, out: Path, data, device: str) -> float:
    """Start from another run's weights (e.g. retraining an approximate-multiplier model
    from the exact-product one). Every parameter and buffer is copied except multiplier
    LUTs (buffers named ``lut``): those define this recipe's arithmetic. Returns the test
    accuracy before any training step (the "before retraining" number)."""
    from .checkpoint import CheckpointError, read_checkpoint
    from .loop import evaluate

    path = init_checkpoint_path(recipe, out)
    if not path.is_file():
        raise CheckpointError(f"recipe {recipe['name']}: init_from checkpoint {path} does not "
                              f"exist; train {recipe['init_from']} first (steport train "
                              f"{recipe['init_from']} -o {out})")
    ckpt = read_checkpoint(path)
    own = model.state_dict()
    src = {k: v for k, v in ckpt["state_dict"].items() if k.rsplit(".", 1)[-1] != "lut"}
    bad = sorted(k for k, v in src.items() if k not in own or own[k].shape != v.shape)
    missing = sorted(k for k in own if k not in src and k.rsplit(".", 1)[-1] != "lut")
    if bad or missing:
        raise CheckpointError(f"recipe {recipe['name']}: init_from {path} does not fit the "
                              f"model (mismatched: {(bad + missing)[:5]})")
    model.load_state_dict(src, strict=False)
    return evaluate(model, data.test, device=device)


def train_recipe(recipe: dict, out_dir: str | os.PathLike, *, epochs: int | None = None,
                 seed: int | None = None, device: str | None = None, deterministic: bool = False,
                 progress: bool = True, resume: str | os.PathLike | None = None,
                 on_epoch=None) -> tuple[Path, dict]:
    """Train one recipe. Writes (rank 0 only) OUT/<name>.pt after every epoch (the last
    state, resumable), OUT/<name>.best.pt (best test accuracy so far) and, at the end,
    OUT/<name>.json (metrics). Joins a process group when launched by torchrun."""
    import torch

    from . import distributed
    from .checkpoint import save_checkpoint
    from .data import load_dataset
    from .loop import fit, seed_everything
    from .models import build_model, count_parameters

    cfg = fit_config(recipe, epochs, seed, device, deterministic, progress)
    info = distributed.init(cfg.device)
    try:
        dname, dkwargs = recipe["data"]["name"], dict(recipe["data"].get("kwargs") or {})
        data = load_dataset(dname, **dkwargs)
        arch = recipe["model"]["arch"]
        kwargs = dict(recipe["model"].get("kwargs") or {}, num_classes=data.num_classes,
                      in_channels=data.input_shape[0])
        seed_everything(cfg.seed)
        model = build_model(arch, **kwargs)
        _check_input_shape(model, arch, data)
        out = Path(out_dir)
        init_accuracy = None
        if recipe.get("init_from") and not resume:
            init_accuracy = _init_from(model, recipe, out, data, cfg.device)
        state = None
        if resume:
            ckpt, state = _resume_state(resume, arch, kwargs, data, cfg)
            init_accuracy = (ckpt.get("metrics") or {}).get("init_accuracy")
            try:
                model.load_state_dict(ckpt["state_dict"])
            except RuntimeError as e:  # tampered weights: wrong names or shapes
                from .checkpoint import CheckpointError

                raise CheckpointError(f"{resume} does not fit model {arch}: "
                                      f"{' '.join(str(e).split())[:300]}") from None
        name = recipe["name"]
        last, best = out / f"{name}.pt", out / f"{name}.best.pt"
        if info.is_main:
            out.mkdir(parents=True, exist_ok=True)
        extra = {"recipe": recipe, "data": {"name": dname, "kwargs": dkwargs}}
        params = count_parameters(model)

        def metrics_of(history: list[dict], seconds: float | None = None,
                       cpu_seconds: float | None = None) -> dict:
            m = {"recipe": name, "test_accuracy": history[-1]["test_acc"] if history else None,
                 "best_test_accuracy": max((h["test_acc"] for h in history), default=None),
                 "epochs": cfg.epochs, "world_size": info.world_size, "parameters": params,
                 "history": history}
            if init_accuracy is not None:
                m["init_accuracy"] = init_accuracy
            if seconds is not None:
                m["train_seconds"] = seconds
            if cpu_seconds is not None:
                # wall time depends on what else runs; CPU time says what the run cost
                m["train_cpu_seconds"] = cpu_seconds
                m["torch_threads"] = torch.get_num_threads()
            return m

        latest: dict = {}

        def save(train_state: dict, is_best: bool) -> None:
            latest["state"] = train_state
            save_checkpoint(last, model, arch=arch, kwargs=kwargs, input_shape=data.input_shape,
                            dataset=data.name, metrics=metrics_of(train_state["history"]),
                            extra={**extra, "train_state": train_state})
            if is_best:
                tmp = f"{best}.tmp"
                shutil.copyfile(last, tmp)
                os.replace(tmp, best)

        result = fit(model, data, cfg, on_epoch=on_epoch, save=save, resume=state)
        metrics = metrics_of(result.history, result.seconds, result.cpu_seconds)
        if info.is_main:
            if "state" in latest:  # final metrics (with time) into the last checkpoint
                save_checkpoint(last, model, arch=arch, kwargs=kwargs,
                                input_shape=data.input_shape, dataset=data.name,
                                metrics=metrics, extra={**extra, "train_state": latest["state"]})
            (out / f"{name}.json").write_text(json.dumps(metrics, indent=2))
        return last, metrics
    finally:
        distributed.shutdown()


def train_recipe_worker(recipe: dict, out: str, kwargs: dict) -> None:
    """train_recipe for distributed.spawn, which passes positional arguments only (a
    module-level function, so worker processes can unpickle it)."""
    train_recipe(recipe, out, **kwargs)
