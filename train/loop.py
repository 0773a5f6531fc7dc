"""Training loop: seeded, optionally deterministic, with a progress bar showing loss and
accuracy. Small on purpose; recipes and the CLI build on it."""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from .data import Dataset, Split


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)


@dataclass
class FitConfig:
    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    seed: int = 0
    deterministic: bool = False
    progress: bool = True
    device: str = "cpu"


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    test_accuracy: float = 0.0
    seconds: float = 0.0


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, batch_size: int = 512, device: str = "cpu") -> float:
    was = model.training
    model.eval()
    correct = 0
    for i in range(0, len(split), batch_size):
        xb = split.x[i:i + batch_size].to(device)
        correct += (model(xb).argmax(1).cpu() == split.y[i:i + batch_size]).sum().item()
    model.train(was)
    return correct / max(len(split), 1)


def make_optimizer(model: nn.Module, cfg: FitConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9,
                               weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r} (adam, sgd)")


def fit(model: nn.Module, data: Dataset, cfg: FitConfig,
        on_epoch: Callable[[int, dict], None] | None = None) -> FitResult:
    from tqdm.auto import tqdm

    seed_everything(cfg.seed, cfg.deterministic)
    model.to(cfg.device)
    opt = make_optimizer(model, cfg)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1))
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(cfg.seed)
    result, t0 = FitResult(), time.perf_counter()
    n = len(data.train)
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        bar = tqdm(range(0, n, cfg.batch_size), disable=not cfg.progress, leave=False,
                   desc=f"epoch {epoch + 1}/{cfg.epochs}")
        for i in bar:
            idx = perm[i:i + cfg.batch_size]
            xb, yb = data.train.x[idx].to(cfg.device), data.train.y[idx].to(cfg.device)
            opt.zero_grad(set_to_none=True)
            out = model(xb)
            loss = loss_fn(out, yb)
            loss.backward()
            opt.step()
            total += len(idx)
            correct += (out.argmax(1) == yb).sum().item()
            loss_sum += loss.item() * len(idx)
            bar.set_postfix(loss=f"{loss_sum / total:.3f}", acc=f"{correct / total:.3f}")
        sched.step()
        stats = {"epoch": epoch + 1, "loss": loss_sum / total, "train_acc": correct / total,
                 "test_acc": evaluate(model, data.test, device=cfg.device)}
        result.history.append(stats)
        if on_epoch:
            on_epoch(epoch, stats)
    result.test_accuracy = result.history[-1]["test_acc"] if result.history else evaluate(
        model, data.test, device=cfg.device)
    result.seconds = time.perf_counter() - t0
    return result
