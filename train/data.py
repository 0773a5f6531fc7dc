"""Data sets that work offline. scikit-learn's bundled digits (1797 8x8 images) is the
default; loaders for larger sets read local files."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Split:
    x: torch.Tensor  # float32 N x C x H x W, roughly zero-mean unit-range
    y: torch.Tensor  # int64 N

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Dataset:
    name: str
    train: Split
    test: Split
    num_classes: int
    input_shape: tuple[int, ...]  # C, H, W


def load_digits(test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """sklearn digits, pixel values 0..16 scaled to [0, 1], stratified split."""
    from sklearn.datasets import load_digits as _ld
    from sklearn.model_selection import train_test_split

    d = _ld()
    x = (d.images.astype(np.float32) / 16.0)[:, None]
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=test_fraction,
                                          random_state=seed, stratify=d.target)
    return Dataset("digits", Split(torch.from_numpy(xtr), torch.from_numpy(ytr).long()),
                   Split(torch.from_numpy(xte), torch.from_numpy(yte).long()), 10, (1, 8, 8))


_LOADERS = {"digits": load_digits}


def load_dataset(name: str, **kwargs) -> Dataset:
    try:
        fn = _LOADERS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(_LOADERS)}") from None
    return fn(**kwargs)


def register_dataset(name: str, fn) -> None:
    _LOADERS[name] = fn
