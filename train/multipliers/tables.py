"""Index grids and the sign-magnitude construction of the mixed (uint8 x int8) table."""
from __future__ import annotations

import numpy as np

N = 256
A_GRID = np.arange(N, dtype=np.int64)[:, None]          # activation code = value, 0..255
B_CODES = np.arange(N, dtype=np.int64)[None, :]         # weight code (uint8 view of int8)
B_VALUES = B_CODES.astype(np.uint8).view(np.int8).astype(np.int64)   # -128..127 by code
B_MAG = np.abs(B_VALUES)                                # 0..128
B_SIGN = np.where(B_VALUES < 0, -1, 1)                  # sign bit of a sign-magnitude operand

EXACT_UNSIGNED = A_GRID * np.arange(N, dtype=np.int64)[None, :]
EXACT_SIGNED = A_GRID * B_VALUES

INT32 = np.iinfo(np.int32)


def as_lut(x, what: str = "LUT") -> np.ndarray:
    """Validate and return an int32 (256, 256) table (read-only copy)."""
    arr = np.asarray(x)
    if arr.shape == (N * N,):
        arr = arr.reshape(N, N)
    if arr.shape != (N, N):
        raise ValueError(f"{what} must have shape (256, 256) or (65536,), got {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"{what} must hold integers, got non-integral floats")
    elif arr.dtype.kind not in "iub":
        raise ValueError(f"{what} must be an integer array, got dtype {arr.dtype}")
    if arr.size and (arr.min() < INT32.min or arr.max() > INT32.max):
        raise ValueError(f"{what} values exceed the int32 range")
    out = arr.astype(np.int32, copy=True)
    out.setflags(write=False)
    return out


def signed_from_unsigned(lut_u: np.ndarray) -> np.ndarray:
    """Mixed table LUT[a][b_code] = sign(b) * M(a, |b|), sign(b) = -1 iff b < 0 (the sign bit),
    so b = 0 gives M(a, 0); |b| reaches 128 (code 0x80)."""
    lut_u = np.asarray(lut_u, dtype=np.int64)
    return as_lut(B_SIGN * lut_u[A_GRID, B_MAG], "signed LUT")


def signed_from_function(fn) -> np.ndarray:
    """Same, evaluating an unsigned design ``fn(a, b, xp)`` on the magnitude grid."""
    return as_lut(B_SIGN * fn(A_GRID, B_MAG, np), "signed LUT")


def unsigned_from_function(fn) -> np.ndarray:
    return as_lut(fn(A_GRID, np.arange(N, dtype=np.int64)[None, :], np), "unsigned LUT")
