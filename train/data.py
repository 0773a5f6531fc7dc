"""Data sets that work offline. scikit-learn's bundled digits (1797 8x8 images) is the
default; MNIST, Fashion-MNIST (IDX files) and CIFAR-10 (python pickles) are read from a local
folder named in the recipe (``data: {name: mnist, kwargs: {root: /path}}``). Fashion-MNIST
also looks in the usual places when no root is given (see ``fashion_mnist_dirs``). Every
loader returns float32 NCHW tensors and int64 labels. Data set names accept ``-`` for ``_``
(``fashion-mnist`` is ``fashion_mnist``)."""
from __future__ import annotations

import gzip
import os
import pickle
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


class DataError(ValueError):
    """A data set is missing, incomplete or malformed (one clear line for the CLI)."""


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


def _split(x: np.ndarray, y: np.ndarray, limit: int | None) -> Split:
    if limit is not None:
        if not isinstance(limit, int) or limit < 1:
            raise DataError(f"limit must be a positive int, got {limit!r}")
        x, y = x[:limit], y[:limit]
    return Split(torch.from_numpy(np.ascontiguousarray(x, np.float32)),
                 torch.from_numpy(np.asarray(y, np.int64)))


def load_digits(test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """sklearn digits, pixel values 0..16 scaled to [0, 1], stratified split."""
    from sklearn.datasets import load_digits as _ld
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"digits test_fraction must be in (0, 1), got {test_fraction!r}")
    d = _ld()
    x = (d.images.astype(np.float32) / 16.0)[:, None]
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=test_fraction,
                                          random_state=seed, stratify=d.target)
    return Dataset("digits", _split(xtr, ytr, None), _split(xte, yte, None), 10, (1, 8, 8))


# ---- IDX (MNIST, Fashion-MNIST) ------------------------------------------------------------

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """One IDX file (gzipped or raw): magic 0x0000, dtype code, ndim, big-endian int32 dims,
    then the data. Validates the header and the payload size."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"{path}: cannot read IDX file: {e}") from None
    # gzip by content (1f 8b), not by name: a renamed or already-unpacked file still reads.
    # A ".gz" name on something else is an error rather than a guess.
    if raw[:2] == b"\x1f\x8b" or path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except EOFError:
            raise DataError(f"{path}: cannot read IDX file: truncated gzip stream (an "
                            f"interrupted download? fetch the file again)") from None
        except (OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
            raise DataError(f"{path}: cannot read IDX file: corrupt gzip data ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: truncated IDX header (ndim {ndim})")
    dims = struct.unpack(f">{ndim}i", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    want = int(np.prod(dims)) * dtype.itemsize
    if any(d < 0 for d in dims) or len(raw) - header != want:
        raise DataError(f"{path}: IDX dims {dims} need {want} data bytes, file has "
                        f"{len(raw) - header}")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims)


def _find(root: Path, stem: str, what: str) -> Path:
    """``stem`` or ``stem.gz`` in root, root/raw or root/<X>/raw (torchvision's layout)."""
    dirs = [root, root / "raw", *sorted(p / "raw" for p in root.glob("*") if p.is_dir())]
    for d in dirs:
        for name in (stem, stem + ".gz"):
            if (d / name).is_file():
                return d / name
    raise DataError(f"{what}: {stem}[.gz] not found in {root} (looked in "
                    f"{', '.join(str(d) for d in dirs[:3])})")


def _root(root, what: str) -> Path:
    if root is None:
        raise DataError(f"{what} needs data.kwargs.root: the folder with the downloaded files")
    p = Path(os.path.expanduser(os.fspath(root)))
    if not p.is_dir():
        raise DataError(f"{what}: data root {p} does not exist or is not a folder")
    return p


def _idx_pair(root: Path, prefix: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    ipath = _find(root, f"{prefix}-images-idx3-ubyte", what)
    lpath = _find(root, f"{prefix}-labels-idx1-ubyte", what)
    images, labels = read_idx(ipath), read_idx(lpath)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{ipath}: expected uint8 images N x H x W, got {images.dtype} "
                        f"{images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{lpath}: {labels.shape} labels for {len(images)} images")
    if labels.size and labels.max() > 9:
        raise DataError(f"{lpath}: label {int(labels.max())} outside 0..9")
    return images, labels


def load_mnist(root: str | os.PathLike | None = None, train_limit: int | None = None,
               test_limit: int | None = None) -> Dataset:
    """MNIST IDX files (train-* and t10k-* images/labels, gzipped or raw), pixels scaled to
    [0, 1] like digits. ``*_limit`` keep the first N samples (quick runs)."""
    return _load_idx("mnist", root, train_limit, test_limit)


def _load_idx(name: str, root, train_limit, test_limit) -> Dataset:
    what = name
    root = _root(root, what)
    xtr, ytr = _idx_pair(root, "train", what)
    xte, yte = _idx_pair(root, "t10k", what)
    if xtr.shape[1:] != xte.shape[1:]:
        raise DataError(f"{what}: train images {xtr.shape[1:]} and test images "
                        f"{xte.shape[1:]} differ in size")
    to_f = lambda a: (a.astype(np.float32) / 255.0)[:, None]  # noqa: E731
    return Dataset(name, _split(to_f(xtr), ytr, train_limit), _split(to_f(xte), yte, test_limit),
                   10, (1, *xtr.shape[1:]))


FASHION_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                       "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's package
FASHION_MNIST_HOW_TO_GET = (
    "install Debian's package (`apt-get install dataset-fashion-mnist`, files in "
    f"{FASHION_MNIST_SYSTEM_DIR}), or download the four files "
    f"{', '.join(n + '.gz' for n in FASHION_MNIST_FILES)} from "
    "https://github.com/zalandoresearch/fashion-mnist (data/fashion) into one of those "
    "folders, or pass data.kwargs.root")


def fashion_mnist_dirs() -> list[Path]:
    """Where Fashion-MNIST is looked for when no root is given, first match wins:
    $STEPORT_DATA/fashion-mnist, $STEPORT_DATA, the user cache
    (${XDG_CACHE_HOME:-~/.cache}/steport/fashion-mnist), then Debian's
    /usr/share/datasets/fashion-mnist."""
    dirs = []
    if os.environ.get("STEPORT_DATA"):
        base = Path(os.path.expanduser(os.environ["STEPORT_DATA"]))
        dirs += [base / "fashion-mnist", base]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    dirs += [Path(cache) / "steport" / "fashion-mnist", FASHION_MNIST_SYSTEM_DIR]
    return dirs


def _has_idx_set(d: Path) -> bool:
    return all((d / n).is_file() or (d / f"{n}.gz").is_file() for n in FASHION_MNIST_FILES)


def find_fashion_mnist(root: str | os.PathLike | None = None) -> Path:
    """The folder holding the Fashion-MNIST files: ``root`` when given (it must exist),
    else the first of ``fashion_mnist_dirs()`` holding all four files. Missing files raise a
    DataError that says how to get them."""
    if root is not None:
        p = _root(root, "fashion_mnist")
        for n in FASHION_MNIST_FILES:  # same search as the loader, with the how-to on failure
            try:
                _find(p, n, "fashion_mnist")
            except DataError as e:
                raise DataError(f"{e}; to get the data: {FASHION_MNIST_HOW_TO_GET}") from None
        return p
    for d in fashion_mnist_dirs():
        if _has_idx_set(d):
            return d
    raise DataError("fashion_mnist: the data set files were not found in "
                    f"{', '.join(str(d) for d in fashion_mnist_dirs())}; to get them: "
                    f"{FASHION_MNIST_HOW_TO_GET}")


def fashion_mnist_available() -> bool:
    try:
        find_fashion_mnist()
    except DataError:
        return False
    return True


def load_fashion_mnist(root: str | os.PathLike | None = None, train_limit: int | None = None,
                       test_limit: int | None = None) -> Dataset:
    """Fashion-MNIST (60,000 train / 10,000 test 28x28 images, 10 classes): same IDX format
    and file names as MNIST, pixels scaled to [0, 1]. Without ``root`` it is looked for in
    ``fashion_mnist_dirs()``."""
    root = find_fashion_mnist(root)
    d = _load_idx("fashion_mnist", root, train_limit, test_limit)
    if d.input_shape != (1, 28, 28):  # MNIST-format files of another data set
        raise DataError(f"fashion_mnist: images in {root} are {d.input_shape[1]}x"
                        f"{d.input_shape[2]}, Fashion-MNIST's are 28x28")
    return d


# ---- CIFAR-10 (python version) -------------------------------------------------------------

# Per-channel mean/std of the CIFAR-10 training set (the usual constants).
_CIFAR_MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)[:, None, None]
_CIFAR_STD = np.array([0.2470, 0.2435, 0.2616], np.float32)[:, None, None]


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")  # the archive's format: trusted local files
    except Exception as e:
        raise DataError(f"{path}: not a CIFAR-10 python batch: {e}") from None
    if not isinstance(d, dict):
        raise DataError(f"{path}: not a CIFAR-10 python batch (a {type(d).__name__})")
    get = lambda k: d.get(k.encode(), d.get(k))  # noqa: E731  (bytes keys; str if re-pickled)
    data, labels = get("data"), get("labels")
    if data is None or labels is None:
        raise DataError(f"{path}: CIFAR-10 batch without 'data'/'labels'")
    data, labels = np.asarray(data), np.asarray(labels)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: CIFAR-10 data must be uint8 N x 3072, got {data.dtype} "
                        f"{data.shape}")
    if labels.shape != (len(data),) or (labels.size and not 0 <= labels.min() <= labels.max() <= 9):
        raise DataError(f"{path}: {labels.shape} labels (0..9) for {len(data)} images")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(root: str | os.PathLike | None = None, train_limit: int | None = None,
                 test_limit: int | None = None) -> Dataset:
    """CIFAR-10 python batches data_batch_1..5 and test_batch (in root or
    root/cifar-10-batches-py), standardized per channel."""
    what = "cifar10"
    root = _root(root, what)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
        raise DataError(f"{what}: missing {', '.join(missing)} in {root}")
    parts = [_cifar_batch(root / n) for n in names]
    xtr = np.concatenate([p[0] for p in parts[:5]])
    ytr = np.concatenate([p[1] for p in parts[:5]])
    xte, yte = parts[5]
    norm = lambda a: (a.astype(np.float32) / 255.0 - _CIFAR_MEAN) / _CIFAR_STD  # noqa: E731
    return Dataset("cifar10", _split(norm(xtr), ytr, train_limit),
                   _split(norm(xte), yte, test_limit), 10, (3, 32, 32))


_LOADERS = {"digits": load_digits, "mnist": load_mnist, "fashion_mnist": load_fashion_mnist,
            "cifar10": load_cifar10}


def dataset_names() -> list[str]:
    return sorted(_LOADERS)


def canonical_dataset_name(name) -> str:
    """``fashion-mnist`` -> ``fashion_mnist`` (the spelling of the data set's own docs is
    accepted everywhere a data set is named); other values unchanged."""
    return name.replace("-", "_") if isinstance(name, str) else name


def load_dataset(name: str, **kwargs) -> Dataset:
    try:
        fn = _LOADERS[canonical_dataset_name(name)]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; known: {dataset_names()}") from None
    try:
        return fn(**kwargs)
    except TypeError as e:  # unknown kwargs from the recipe
        raise DataError(f"bad data.kwargs for dataset {name!r}: {e}") from None


def register_dataset(name: str, fn) -> None:
    _LOADERS[name] = fn
