"""Exact low-rank integer factorization of a LUT: lut == sum_i outer(f_i, g_i).

All arithmetic is on Python integers (no float tolerance):
1. fraction-free (Bareiss) elimination finds the exact rank and r independent pivot
   columns, stopping as soon as the rank exceeds ``max_terms``;
2. the rows of the table, projected on those columns, span a lattice; an echelon Z-basis of
   it (extended-gcd row operations, mirrored on the full rows) gives integer rows g_i such
   that every table row is an integer combination of them (the projection is injective on
   the row space, so the combination found on the pivots holds for the whole row);
3. the coefficients f_i come from exact triangular solves, and the sum of outer products
   is compared with the table entry by entry.
"""
from __future__ import annotations

import math

import numpy as np


def _obj(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64).astype(object)


def exact_rank_pivots(lut, limit: int) -> tuple[int, list[int]]:
    """(rank, pivot columns) if rank <= limit, else (limit + 1, pivots so far)."""
    e = _obj(lut)
    prev = 1
    cols: list[int] = []
    for step in range(limit + 1):
        nz = np.argwhere(e != 0)
        if len(nz) == 0:
            return step, cols
        if step == limit:
            return limit + 1, cols
        p, q = (int(v) for v in nz[0])
        piv = e[p, q]
        # Bareiss: the division by the previous pivot is exact.
        e = (piv * e - np.outer(e[:, q], e[p, :])) // prev
        prev = piv
        cols.append(q)
    return limit + 1, cols  # pragma: no cover


def _lattice_basis(proj: np.ndarray, full: np.ndarray, r: int):
    """Echelon Z-basis of the row lattice of ``proj`` (n x r), mirrored on ``full`` rows."""
    basis: list = [None] * r  # basis[k] = (proj_row, full_row) with pivot at position k
    for i in range(proj.shape[0]):
        vp, vf = proj[i].copy(), full[i].copy()
        for k in range(r):
            if vp[k] == 0:
                continue
            if basis[k] is None:
                basis[k] = (vp, vf)
                vp = None
                break
            bp, bf = basis[k]
            alpha, beta = vp[k], bp[k]
            g, s, t = _xgcd(alpha, beta)
            # unimodular [[s, t], [-beta/g, alpha/g]]: new pivot g, v's entry cleared
            basis[k] = (s * vp + t * bp, s * vf + t * bf)
            vp, vf = (alpha // g) * bp - (beta // g) * vp, (alpha // g) * bf - (beta // g) * vf
        if vp is not None and any(x != 0 for x in vf):
            return None  # rank of the full rows exceeds r: cannot happen after exact_rank
    if any(b is None for b in basis):
        return None
    return basis


def _xgcd(a: int, b: int) -> tuple[int, int, int]:
    """g = gcd(a, b) > 0 and s, t with s*a + t*b = g."""
    s0, s1, t0, t1, r0, r1 = 1, 0, 0, 1, a, b
    while r1:
        q = r0 // r1
        r0, r1 = r1, r0 - q * r1
        s0, s1 = s1, s0 - q * s1
        t0, t1 = t1, t0 - q * t1
    if r0 < 0:
        r0, s0, t0 = -r0, -s0, -t0
    return r0, s0, t0


def _to_int64(v: np.ndarray) -> np.ndarray | None:
    lim = np.iinfo(np.int64).max
    if any(abs(int(x)) > lim for x in v):
        return None
    return np.array([int(x) for x in v], dtype=np.int64)


def _surely_above(arr: np.ndarray, r: int) -> bool:
    """Cheap float pre-check, used only to reject: singular value r far above the float
    noise floor (~1e-13 relative) means the exact rank exceeds r. Acceptance stays exact."""
    if r >= min(arr.shape):
        return False
    s = np.linalg.svd(arr.astype(np.float64), compute_uv=False)
    return bool(s[0] > 0 and s[r] > 1e-6 * s[0])


def factorize_lut(lut, max_terms: int = 2) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Integer vectors (f_i, g_i), i < r <= max_terms, with lut == sum_i outer(f_i, g_i)
    exactly, or None if the exact rank exceeds ``max_terms``. An all-zero table gives
    ``[]``. f_i is indexed by the activation code, g_i by the weight code."""
    if max_terms < 0:
        raise ValueError(f"max_terms must be >= 0, got {max_terms}")
    arr = np.asarray(lut)
    if arr.ndim != 2 or arr.dtype.kind not in "iub":
        raise ValueError(f"lut must be a 2-D integer array, got {arr.dtype} {arr.shape}")
    if _surely_above(arr, max_terms):
        return None
    rank, cols = exact_rank_pivots(arr, max_terms)
    if rank > max_terms:
        return None
    if rank == 0:
        return []
    full = _obj(arr)
    basis = _lattice_basis(full[:, cols], full, rank)
    if basis is None:
        return None
    # Coefficients: forward substitution on the echelon pivots (exact divisions).
    fs = np.zeros((arr.shape[0], rank), dtype=object)
    for i in range(arr.shape[0]):
        res = full[i, cols].copy()
        for k in range(rank):
            piv = basis[k][0][k]
            if res[k] % piv:
                return None
            c = res[k] // piv
            fs[i, k] = c
            res = res - c * basis[k][0]
        if any(x != 0 for x in res):
            return None
    terms = []
    for k in range(rank):
        g = basis[k][1]
        content = math.gcd(*(int(x) for x in g))
        f = fs[:, k] * content
        g = g // content
        nz = next((x for x in f if x != 0), 1)
        if nz < 0:  # sign convention: first nonzero activation factor positive
            f, g = -f, -g
        terms.append((f, g))
    total = sum(np.outer(f, g) for f, g in terms)
    if not np.array_equal(total, full):
        return None
    out = []
    for f, g in terms:
        f64, g64 = _to_int64(f), _to_int64(g)
        if f64 is None or g64 is None:
            return None
        out.append((f64, g64))
    return out


def check_terms(lut, terms) -> bool:
    """Exact integer check that sum_i outer(f_i, g_i) == lut (Python ints, no overflow)."""
    full = _obj(lut)
    total = np.zeros_like(full)
    for f, g in terms:
        total = total + np.outer(_obj(f), _obj(g))
    return bool(np.array_equal(total, full))
