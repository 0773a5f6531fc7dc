"""Loading and saving tables: .npy, or raw EvoApproxLib-style dumps of 65536 16-bit values."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .core import Multiplier, from_lut

RAW_DTYPES = {"uint16": "<u2", "int16": "<i2"}
ORDERS = ("ab", "ba")
N = 256


def _orient(arr: np.ndarray, order: str) -> np.ndarray:
    if order not in ORDERS:
        raise ValueError(f"order must be 'ab' (index a*256+b, rows = activation) or 'ba', got {order!r}")
    if arr.shape == (N * N,):
        arr = arr.reshape(N, N)
    return arr.T if order == "ba" and arr.ndim == 2 else arr


def load_lut(path, kind: str | None = None, dtype: str | None = None, order: str = "ab",
             name: str | None = None) -> Multiplier:
    """A Multiplier from a file.

    - ``.npy``: a (256, 256) or (65536,) integer array.
    - anything else: a raw dump of exactly 65536 little-endian 16-bit values; ``dtype`` is
      required: ``"uint16"`` (e.g. an EvoApproxLib mul8u circuit tabulated for every (a, b))
      or ``"int16"``.
    ``order``: ``"ab"`` (default) = row-major with the activation a as the row, entry
    a*256 + b; ``"ba"`` = b*256 + a. ``kind``: ``"unsigned"`` = a u8 x u8 table M (the mixed
    table is built by sign magnitude, sign(b) * M(a, |b|)); ``"signed"`` = the mixed table
    itself, [a uint8][b uint8-view of int8]. Default: ``"unsigned"`` for uint16 dumps,
    ``"signed"`` otherwise.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no LUT file at {path}")
    if path.suffix == ".npy":
        if dtype is not None:
            raise ValueError("dtype applies to raw dumps only; a .npy file carries its own")
        arr = np.load(path, allow_pickle=False)
        if arr.shape not in ((N, N), (N * N,)):
            raise ValueError(f"{path}: expected a (256, 256) or (65536,) array, got shape {arr.shape}")
        kind = kind or "signed"
    else:
        if dtype not in RAW_DTYPES:
            raise ValueError(f"{path}: raw dump needs dtype='uint16' or 'int16' (little-endian), got {dtype!r}")
        raw = path.read_bytes()
        if len(raw) != N * N * 2:
            raise ValueError(f"{path}: expected {N * N * 2} bytes (65536 little-endian {dtype}), "
                             f"got {len(raw)}")
        arr = np.frombuffer(raw, dtype=RAW_DTYPES[dtype])
        kind = kind or ("unsigned" if dtype == "uint16" else "signed")
    return from_lut(_orient(arr, order), name=name or path.stem, kind=kind)


def save_lut(m: Multiplier, path, table: str = "signed", dtype: str | None = None,
             order: str = "ab") -> Path:
    """Write ``m``'s ``"signed"`` (mixed) or ``"unsigned"`` table: .npy (int32) or, with
    ``dtype="uint16"|"int16"``, a raw little-endian dump (values must fit)."""
    path = Path(path)
    lut = {"signed": m.lut, "unsigned": m.lut_unsigned}.get(table)
    if lut is None:
        raise ValueError(f"table must be 'signed' or 'unsigned', got {table!r}")
    arr = _orient(np.asarray(lut()), order)
    if dtype is None:
        np.save(path, np.ascontiguousarray(arr, dtype=np.int32))
        return path
    if dtype not in RAW_DTYPES:
        raise ValueError(f"dtype must be 'uint16' or 'int16', got {dtype!r}")
    info = np.iinfo(np.dtype(RAW_DTYPES[dtype]))
    if arr.min() < info.min or arr.max() > info.max:
        raise ValueError(f"{m.name}: values [{arr.min()}, {arr.max()}] do not fit {dtype}")
    path.write_bytes(np.ascontiguousarray(arr, dtype=RAW_DTYPES[dtype]).tobytes())
    return path
