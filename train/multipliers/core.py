"""The Multiplier object: tables, behavioural model, exact fast GEMM, fitted low-rank model."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import tables
from .factorize import check_terms, factorize_lut
from .metrics import error_metrics

# An unsigned design: fn(a, b, xp) -> product, on magnitudes (numpy or torch integers).
UnsignedFn = Callable[..., object]

FLOAT32_EXACT = 2 ** 24
FLOAT64_EXACT = 2 ** 53
MAX_TERMS = 8  # e.g. BAM tables have exact rank <= 8 (one term per kept row group)


@dataclass(eq=False)
class Multiplier:
    """An 8-bit approximate multiplier.

    ``lut()`` is the mixed table used by the ops: LUT[a][b_code] for the unsigned activation
    code a (0..255) and the weight code b_code (uint8 view of an int8 weight), built by sign
    magnitude from the unsigned design: sign(b) * M(a, |b|), |b| <= 128.
    ``lut_unsigned()`` is M itself (u8 x u8), as EvoApproxLib tabulates mul8u circuits.

    Construct with ``get_multiplier`` (designs), ``load_lut`` (files) or ``from_lut``.
    """

    name: str
    design: str | None = None            # family ("truncated", ...) or None for a user table
    params: dict = field(default_factory=dict)
    citation: str = ""
    fn: UnsignedFn | None = None          # unsigned design, None for a user table
    operand_transform: tuple | None = None  # (fa, fb): M(a, b) = fa(a) * fb(b) on magnitudes
    _terms_known: list | None = None      # natural exact factorization of the signed table
    _lut: np.ndarray | None = None
    _lut_u: np.ndarray | None = None
    _cache: dict = field(default_factory=dict)

    # -- tables -----------------------------------------------------------------------------
    def lut(self) -> np.ndarray:
        """Mixed table, int32 (256, 256), read-only: [a uint8][b uint8-view of int8]."""
        if self._lut is None:
            if self.fn is None:
                raise ValueError(f"{self.name}: no table and no design function")
            self._lut = tables.signed_from_function(self.fn)
        return self._lut

    def lut_unsigned(self) -> np.ndarray:
        """Unsigned u8 x u8 table M[a][b], int32 (256, 256), read-only."""
        if self._lut_u is None:
            if self.fn is None:
                raise ValueError(
                    f"{self.name}: loaded as a signed (mixed) table, its unsigned u8 x u8 table "
                    "is unknown (load the unsigned table with kind='unsigned' instead)")
            self._lut_u = tables.unsigned_from_function(self.fn)
        return self._lut_u

    @property
    def has_unsigned(self) -> bool:
        return self.fn is not None or self._lut_u is not None

    # -- factorizations -----------------------------------------------------------------------
    def terms(self, max_terms: int = MAX_TERMS) -> list[tuple[np.ndarray, np.ndarray]] | None:
        """Exact integer terms (f_i, g_i) of the mixed table, lut == sum outer(f_i, g_i), with at
        most ``max_terms`` terms; None if there are none that short. Designs know theirs
        (e.g. truncation: f = a & mask, g = sign(b) (|b| & mask)); others are factorized."""
        if self._terms_known is not None:
            return self._terms_known if len(self._terms_known) <= max_terms else None
        key = ("terms", max_terms)
        if key not in self._cache:
            self._cache[key] = factorize_lut(self.lut(), max_terms=max_terms)
        return self._cache[key]

    @property
    def separable(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(f, g), int64 length-256 arrays with lut == np.outer(f, g) exactly, or None."""
        t = self.terms(1)
        if t is None:
            return None
        if not t:  # all-zero table
            return np.zeros(256, np.int64), np.zeros(256, np.int64)
        return t[0]

    # -- metrics / plots ----------------------------------------------------------------------
    def metrics(self, table: str | None = None) -> dict:
        """EvoApproxLib-style metrics (see ``metrics.error_metrics``) over all 65536 pairs of
        the ``"unsigned"`` u8 x u8 table (default when known: comparable with EvoApproxLib's
        mul8u figures) or of the ``"signed"`` mixed table the ops use."""
        table = table or ("unsigned" if self.has_unsigned else "signed")
        if table == "unsigned":
            return error_metrics(self.lut_unsigned(), tables.EXACT_UNSIGNED)
        if table == "signed":
            return error_metrics(self.lut(), tables.EXACT_SIGNED)
        raise ValueError(f"table must be 'unsigned' or 'signed', got {table!r}")

    def plot(self, path, table: str = "signed"):
        from .plot import plot_error_surface

        return plot_error_surface(self, path, table=table)

    # -- behavioural model --------------------------------------------------------------------
    @property
    def model_kind(self) -> str:
        """'operand-transform' (exact GEMM on transformed operands), 'formula' (exact
        elementwise integer formula) or 'lut' (table gather). All three are bit-exact."""
        if self.operand_transform is not None:
            return "operand-transform"
        return "formula" if self.fn is not None else "lut"

    def model(self, a, b, signed: bool = True):
        """Elementwise approximate product of torch integer tensors (broadcasting), int32.

        ``a``: activation values 0..255. ``b``: weight values -128..127 (a ``torch.uint8``
        ``b`` is read as int8 codes, two's complement) when ``signed``; else 0..255.
        Bit-exact to ``lut()`` / ``lut_unsigned()`` (the design formula runs on the tensors)."""
        import torch

        a, b = torch.as_tensor(a), torch.as_tensor(b)
        for name, t in (("a", a), ("b", b)):
            if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
                raise TypeError(f"{name} must be an integer tensor, got {t.dtype}")
        if signed and b.dtype == torch.uint8:
            b = b.view(torch.int8)
        a, b = a.long(), b.long()
        _check_range(a, 0, 255, "a")
        if signed:
            _check_range(b, -128, 127, "b")
        else:
            _check_range(b, 0, 255, "b")
        if self.fn is None:  # user table: gather (the mixed table already holds the sign)
            if signed:
                return _gather(self.lut(), a, b & 255)
            return _gather(self.lut_unsigned(), a, b)
        if not signed:
            return self.fn(a, b, torch).to(torch.int32)
        out = self.fn(a, b.abs(), torch)
        out = torch.where(b < 0, -out, out)
        return out.to(torch.int32)

    # -- GEMMs ---------------------------------------------------------------------------------
    def fast_matmul(self, a_codes, b_codes, max_terms: int = MAX_TERMS):
        """Y[..., m, n] = sum_k LUT[A[..., m, k], B[k, n]] exactly, as integer GEMMs on
        transformed operands: sum_i f_i[A] @ g_i[B] (float32 when every partial sum stays
        below 2^24, else float64 below 2^53; checked, never silently inexact). Needs an exact
        factorization with <= ``max_terms`` terms (ValueError otherwise: use ``lut_matmul``).
        A: activation codes 0..255; B: weight codes (uint8 view) or int8 values.
        Returns int64 (torch tensor for torch input, numpy array for numpy input)."""
        import torch

        terms = self.terms(max_terms)
        if terms is None:
            raise ValueError(f"{self.name}: the LUT has no exact factorization with <= "
                             f"{max_terms} terms; use lut_matmul (table gather) instead")
        A, B, to_numpy = _gemm_operands(a_codes, b_codes)
        K = A.shape[-1]
        y = torch.zeros((*A.shape[:-1], B.shape[-1]), dtype=torch.int64, device=A.device)
        for f, g in terms:
            bound = K * int(np.abs(f).max(initial=0)) * int(np.abs(g).max(initial=0))
            if bound < FLOAT32_EXACT:
                dt = torch.float32
            elif bound < FLOAT64_EXACT:
                dt = torch.float64
            else:
                raise ValueError(f"{self.name}: K={K} too large for an exact float GEMM "
                                 f"(bound {bound} >= 2^53)")
            ft = torch.as_tensor(f, dtype=dt, device=A.device)
            gt = torch.as_tensor(g, dtype=dt, device=A.device)
            y += torch.matmul(ft[A], gt[B]).round().to(torch.int64)
        return y.cpu().numpy() if to_numpy else y

    def lut_matmul(self, a_codes, b_codes, chunk: int = 1 << 22):
        """Reference Y[..., m, n] = sum_k LUT[A[..., m, k], B[k, n]] by table gather (int64);
        works for every table. Memory is bounded by processing ``chunk`` gathered entries."""
        import torch

        A, B, to_numpy = _gemm_operands(a_codes, b_codes)
        lut = torch.as_tensor(np.asarray(self.lut(), dtype=np.int64), device=A.device)
        K, N = B.shape
        A2 = A.reshape(-1, K)
        rows = max(1, chunk // max(1, K * N))
        parts = [lut[A2[i:i + rows, :, None], B[None]].sum(dim=1) for i in range(0, A2.shape[0], rows)]
        y = (torch.cat(parts) if parts else torch.zeros((0, N), dtype=torch.int64)).reshape(*A.shape[:-1], N)
        return y.cpu().numpy() if to_numpy else y

    # -- fitted low-rank model ------------------------------------------------------------------
    def fitted(self, rank: int) -> tuple[np.ndarray, np.ndarray]:
        """Best rank-``rank`` least-squares model of the mixed table (truncated SVD):
        float64 F (256, r), G (256, r) with lut ~= F @ G.T. Not exact in general; its error
        vs the table is ``fitted_metrics(rank)``. Serves as a smooth training-time model
        (r float GEMMs) for designs without a short exact factorization."""
        if rank < 1 or rank > 256:
            raise ValueError(f"rank must be in 1..256, got {rank}")
        key = ("svd",)
        if key not in self._cache:
            self._cache[key] = np.linalg.svd(np.asarray(self.lut(), dtype=np.float64))
        u, s, vt = self._cache[key]
        return u[:, :rank] * s[:rank], vt[:rank].T.copy()

    def fitted_metrics(self, rank: int) -> dict:
        """Error metrics of the fitted model against the table (not against exact a*b)."""
        f, g = self.fitted(rank)
        return error_metrics(f @ g.T, self.lut())

    def __repr__(self) -> str:
        return f"Multiplier({self.name!r}, model={self.model_kind})"


def _gather(lut: np.ndarray, a, b):
    import torch

    t = torch.from_numpy(np.array(lut)).to(a.device)  # writable copy
    a, b = torch.broadcast_tensors(a, b)
    return t[a, b]


def _check_range(t, lo: int, hi: int, name: str) -> None:
    if t.numel() and (int(t.min()) < lo or int(t.max()) > hi):
        raise ValueError(f"{name} values must lie in [{lo}, {hi}], got "
                         f"[{int(t.min())}, {int(t.max())}]")


def _gemm_operands(a_codes, b_codes):
    """(A long 0..255, B long weight codes 0..255 (K, N), inputs-were-numpy)."""
    import torch

    to_numpy = isinstance(a_codes, np.ndarray) and isinstance(b_codes, np.ndarray)
    A, B = torch.as_tensor(a_codes), torch.as_tensor(b_codes)
    for name, t in (("A", A), ("B", B)):
        if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise TypeError(f"{name} must hold integer codes, got {t.dtype}")
    if A.ndim < 1 or B.ndim != 2:
        raise ValueError(f"A must be (..., M, K) and B (K, N), got {tuple(A.shape)} and {tuple(B.shape)}")
    if A.shape[-1] != B.shape[0]:
        raise ValueError(f"inner dimensions differ: A {tuple(A.shape)}, B {tuple(B.shape)}")
    A = A.long()
    _check_range(A, 0, 255, "A")
    if B.dtype == torch.uint8:
        B = B.long()
    else:
        B = B.long()
        if B.numel() and int(B.min()) < 0:  # int8 values: back to codes
            _check_range(B, -128, 127, "B")
            B = B & 255
        else:
            _check_range(B, 0, 255, "B")
    return A, B.to(A.device), to_numpy


def from_lut(lut, name: str = "custom", kind: str = "signed") -> Multiplier:
    """A Multiplier from a table: ``kind="signed"``: the mixed [a][b_code] table itself;
    ``kind="unsigned"``: a u8 x u8 table M, the mixed table is built by sign magnitude."""
    if kind == "signed":
        return Multiplier(name=name, _lut=tables.as_lut(lut))
    if kind == "unsigned":
        lut_u = tables.as_lut(lut, "unsigned LUT")
        return Multiplier(name=name, _lut_u=lut_u, _lut=tables.signed_from_unsigned(lut_u))
    raise ValueError(f"kind must be 'signed' or 'unsigned', got {kind!r}")


def verify_terms(m: Multiplier, terms) -> bool:
    return check_terms(m.lut(), terms)
