"""ai.steport.quant reference kernels (docs/ops.md "Pact"): mirroring the C++ kernel's
float32 arithmetic exactly."""
from __future__ import annotations

import numpy as np

from .kernels import numpy_kernel


@numpy_kernel("quant", "Pact")
def pact(x: np.ndarray, alpha: np.ndarray, *, bits: int) -> np.ndarray:
    if not 1 <= bits <= 16:
        raise ValueError(f"Pact: bits must be in [1, 16], got {bits}")
    a = np.asarray(alpha, np.float32)
    if a.size != 1 or a.ndim > 1:
        raise ValueError(f"Pact: alpha must be a scalar (shape [] or [1]), got {a.shape}")
    a = np.float32(a.reshape(()))
    if not (np.isfinite(a) and a > 0):
        raise ValueError(f"Pact: alpha must be positive and finite, got {a}")
    s = np.float32((1 << bits) - 1) / a  # float32 / float32, as the C++ MakePactParams
    x = np.asarray(x, np.float32)
    v = np.where(x < 0, np.float32(0), x)  # -0.0 stays -0.0, NaN passes (comparisons false)
    v = np.where(v > a, a, v)
    with np.errstate(invalid="ignore"):
        return (np.round(v * s) / s).astype(np.float32)  # np.round: half to even
