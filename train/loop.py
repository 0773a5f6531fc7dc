"""Training loop: seeded, optionally deterministic, resumable (optimizer, scheduler and every
RNG state travel in the checkpoint), data-parallel under torchrun, with a progress bar
showing loss and accuracy. Checkpoint files are written by the caller's ``save`` callback,
on rank 0 only."""
from __future__ import annotations

import contextlib
import os
import random
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from . import distributed
from .data import Dataset, Split


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this before its first use to be deterministic
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def resolve_device(device: str | None) -> str:
    """'cpu', 'cuda', 'cuda:N' or 'auto'; a clear error when CUDA is asked for but absent."""
    device = (device or "cpu").strip()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available "
                             f"(torch {torch.__version__}); use --device cpu")
        if ":" in device:
            try:
                n = int(device.split(":", 1)[1])
            except ValueError:
                raise ValueError(f"bad device {device!r} (cpu, cuda, cuda:N, auto)") from None
            if not 0 <= n < torch.cuda.device_count():
                raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} GPU(s)")
        return device
    raise ValueError(f"unknown device {device!r} (cpu, cuda, cuda:N, auto)")


@dataclass
class FitConfig:
    epochs: int = 10
    batch_size: int = 64  # global batch: split across processes under DDP
    lr: float = 3e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    scheduler: str = "cosine"
    seed: int = 0
    deterministic: bool = False
    progress: bool = True
    device: str = "cpu"
    sync_bn: bool = True  # BatchNorm -> SyncBatchNorm under DDP on CUDA (CPU: per-rank stats)

    def validate(self) -> None:
        for k in ("epochs", "batch_size"):
            v = getattr(self, k)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"train.{k} must be a positive int, got {v!r}")
        if not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise ValueError(f"train.lr must be a positive number, got {self.lr!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"unknown train.optimizer {self.optimizer!r} (adam, sgd)")
        if self.scheduler not in ("cosine", "none"):
            raise ValueError(f"unknown train.scheduler {self.scheduler!r} (cosine, none)")


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    test_accuracy: float = 0.0
    best_accuracy: float = 0.0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # CPU time of this process (all its threads) while fitting


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, batch_size: int = 512, device: str = "cpu",
             info: distributed.DistInfo | None = None) -> float:
    """Accuracy; under DDP each rank scores its slice of the split and the counts are summed."""
    info = info or distributed.DistInfo()
    was = model.training
    model.eval()
    idx = distributed.local_slice(torch.arange(len(split)), info)
    correct = 0
    for i in range(0, len(idx), batch_size):
        sel = idx[i:i + batch_size]
        correct += (model(split.x[sel].to(device)).argmax(1).cpu() == split.y[sel]).sum().item()
    model.train(was)
    (correct,) = distributed.all_reduce_sum([correct], info, _comm_device(device, info))
    return correct / max(len(split), 1)


def _comm_device(device: str, info: distributed.DistInfo) -> str:
    return device if info.enabled and device.startswith("cuda") else "cpu"


def make_optimizer(model: nn.Module, cfg: FitConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9,
                               weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r} (adam, sgd)")


def make_scheduler(opt: torch.optim.Optimizer, cfg: FitConfig):
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1))
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


# ---- RNG state (plain lists/tensors so torch.load(weights_only=True) reads it) -------------

def rng_state(gen: torch.Generator) -> dict[str, Any]:
    np_state = np.random.get_state()
    py_state = random.getstate()
    st = {"torch": torch.get_rng_state(), "data": gen.get_state(),
          "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                    int(np_state[3]), float(np_state[4])],
          "python": [py_state[0], list(py_state[1]), py_state[2]]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict[str, Any], gen: torch.Generator) -> None:
    torch.set_rng_state(st["torch"])
    gen.set_state(st["data"])
    n = st["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    p = st["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


@contextlib.contextmanager
def _deterministic(on: bool):
    """Deterministic algorithms for this fit only (it is process-global state)."""
    before = torch.are_deterministic_algorithms_enabled()
    if on:
        seed_everything(0, True)  # flags only; seeds are set again by fit
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


SaveFn = Callable[[dict, bool], None]  # (train_state, is_best)


def fit(model: nn.Module, data: Dataset, cfg: FitConfig,
        on_epoch: Callable[[int, dict], None] | None = None, save: SaveFn | None = None,
        resume: dict | None = None) -> FitResult:
    """Train ``model`` in place. ``save(train_state, is_best)`` runs after each epoch on rank 0
    (before ``on_epoch``); ``resume`` is a train_state from a checkpoint whose weights the
    caller already loaded into ``model``. Joins a process group when launched by torchrun."""
    from tqdm.auto import tqdm

    cfg.validate()
    device = resolve_device(cfg.device)
    info = distributed.current()
    with _deterministic(cfg.deterministic):
        seed_everything(cfg.seed, cfg.deterministic)
        model.to(device)
        net: nn.Module = model
        if info.enabled:
            # 1-input-channel conv weights have odd strides; harmless, only slower bucketing
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view")
            if device.startswith("cuda") and cfg.sync_bn:
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
                net = model
            net = nn.parallel.DistributedDataParallel(
                model, device_ids=[torch.device(device).index or info.local_rank]
                if device.startswith("cuda") else None)
        opt = make_optimizer(model, cfg)
        sched = make_scheduler(opt, cfg)
        gen = torch.Generator().manual_seed(cfg.seed)
        result, start = FitResult(), 0
        best = -1.0
        if resume is not None:
            opt.load_state_dict(resume["optimizer"])
            sched.load_state_dict(resume["scheduler"])
            set_rng_state(resume["rng"], gen)
            start = int(resume["epoch"])
            result.history = list(resume.get("history", []))
            best = float(resume.get("best_accuracy", -1.0))
        # layers with a weight constraint (e.g. binary latent-weight clipping) apply it after
        # every optimizer step, as Keras/Larq kernel constraints do
        constrained = [m for m in model.modules() if hasattr(m, "apply_constraints")]
        t0, cpu0 = time.perf_counter(), time.process_time()
        n = len(data.train)
        comm = _comm_device(device, info)
        for epoch in range(start, cfg.epochs):
            net.train()
            perm = torch.randperm(n, generator=gen)  # same on every rank
            total, correct, loss_sum = 0, 0, 0.0
            bar = tqdm(range(0, n, cfg.batch_size), leave=False,
                       disable=not (cfg.progress and info.is_main),
                       desc=f"epoch {epoch + 1}/{cfg.epochs}")
            for i in bar:
                gidx = perm[i:i + cfg.batch_size]
                if len(gidx) < info.world_size:
                    continue  # too small to give every rank a sample (never with 1 process)
                idx = distributed.local_slice(gidx, info)
                xb, yb = data.train.x[idx].to(device), data.train.y[idx].to(device)
                opt.zero_grad(set_to_none=True)
                out = net(xb)
                # sum * world / global batch: DDP's average over ranks gives the global mean
                loss = nn.functional.cross_entropy(out, yb, reduction="sum") * (
                    info.world_size / len(gidx))
                loss.backward()
                opt.step()
                for m in constrained:
                    m.apply_constraints()
                total += len(idx)
                correct += (out.argmax(1) == yb).sum().item()
                loss_sum += loss.item() * len(gidx) / info.world_size
                bar.set_postfix(loss=f"{loss_sum / total:.3f}", acc=f"{correct / total:.3f}")
            sched.step()
            total, correct, loss_sum = distributed.all_reduce_sum(
                [total, correct, loss_sum], info, comm)
            stats = {"epoch": epoch + 1, "loss": loss_sum / max(total, 1),
                     "train_acc": correct / max(total, 1),
                     "test_acc": evaluate(model, data.test, device=device, info=info),
                     "lr": opt.param_groups[0]["lr"]}
            result.history.append(stats)
            is_best = stats["test_acc"] > best
            best = max(best, stats["test_acc"])
            if info.is_main:
                if cfg.progress:
                    tqdm.write(f"epoch {epoch + 1}/{cfg.epochs}  loss {stats['loss']:.4f}  "
                               f"train_acc {stats['train_acc']:.4f}  "
                               f"test_acc {stats['test_acc']:.4f}")
                if save is not None:
                    save({"epoch": epoch + 1, "optimizer": opt.state_dict(),
                          "scheduler": sched.state_dict(), "rng": rng_state(gen),
                          "history": result.history, "best_accuracy": best,
                          "fit": asdict(cfg)}, is_best)
            if on_epoch:
                on_epoch(epoch, stats)
        result.test_accuracy = (result.history[-1]["test_acc"] if result.history
                                else evaluate(model, data.test, device=device, info=info))
        result.best_accuracy = max(best, result.test_accuracy)
        result.seconds = time.perf_counter() - t0
        result.cpu_seconds = time.process_time() - cpu0
    return result
