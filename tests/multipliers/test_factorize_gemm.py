"""Exact factorizations, exact fast GEMMs and the fitted low-rank model."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from steport.train.multipliers import check_terms, factorize_lut, from_lut, get_multiplier


def test_truncation_is_found_separable():
    m = get_multiplier("truncated", t=2)
    terms = factorize_lut(m.lut(), max_terms=2)
    assert terms is not None and len(terms) == 1
    f, g = terms[0]
    assert f.dtype == np.int64 and g.dtype == np.int64
    assert np.array_equal(np.outer(f, g), m.lut())
    # proportional to the natural operand transform f = a & ~3, g = sign(b) (|b| & ~3)
    nf, ng = m.separable
    assert np.array_equal(nf, np.arange(256) & ~3)
    assert np.array_equal(np.outer(nf, ng), m.lut())
    i = int(np.flatnonzero(nf)[0])
    assert np.array_equal(f * nf[i], nf * f[i])


def test_random_lut_rejected():
    lut = np.random.default_rng(0).integers(-30000, 30000, (256, 256))
    assert factorize_lut(lut, max_terms=2) is None
    assert factorize_lut(lut, max_terms=0) is None


def test_random_low_rank_found_exactly():
    rng = np.random.default_rng(3)
    fs = rng.integers(-50, 50, (2, 256))
    gs = rng.integers(-50, 50, (2, 256))
    lut = 6 * (np.outer(fs[0], gs[0]) + np.outer(fs[1], gs[1]))  # with a common content
    assert factorize_lut(lut, max_terms=1) is None
    terms = factorize_lut(lut, max_terms=2)
    assert terms is not None and len(terms) == 2 and check_terms(lut, terms)
    lut3 = lut + np.outer(rng.integers(-5, 5, 256), rng.integers(-5, 5, 256))
    assert factorize_lut(lut3, max_terms=2) is None
    assert len(factorize_lut(lut3, max_terms=3)) == 3
    assert factorize_lut(np.zeros((256, 256), np.int32)) == []


def test_lattice_case_needs_integer_basis():
    # rows 2*g1 and 3*g1: rational rank 1, integer factor needs gcd handling (g, f = 2, 3)
    g = np.arange(1, 257)
    lut = np.zeros((256, 256), np.int64)
    lut[0], lut[1] = 2 * g, 3 * g
    (f, gg), = factorize_lut(lut, max_terms=1)
    assert np.array_equal(np.outer(f, gg), lut)


def test_kulkarni_is_rank_two():
    m = get_multiplier("kulkarni")
    assert factorize_lut(m.lut(), max_terms=1) is None
    terms = factorize_lut(m.lut(), max_terms=2)
    assert terms is not None and len(terms) == 2
    assert check_terms(m.lut(), m.terms())
    assert m.separable is None


@pytest.mark.parametrize("name", ["mitchell", "etm_l4", "bam_h0_v6"])
def test_non_separable_agrees_with_float_rank(name):
    lut = get_multiplier(name).lut()
    assert factorize_lut(lut, max_terms=3) is None
    assert np.linalg.matrix_rank(lut.astype(np.float64)) > 3


@pytest.mark.parametrize("name", ["bam_h0_v4", "bam_h0_v6", "bam_h2_v8", "bam_h3_v5"])
def test_bam_known_terms_match_factorization(name):
    m = get_multiplier(name)
    terms = m.terms()
    assert terms is not None and check_terms(m.lut(), terms)
    found = factorize_lut(m.lut(), max_terms=8)
    assert found is not None and len(found) == len(terms)   # the known form is minimal


def brute_matmul(lut, A, B):
    Bc = B.astype(np.int64) & 255
    return lut.astype(np.int64)[A[:, :, None], Bc[None]].sum(axis=1)


@pytest.mark.parametrize("name", ["exact", "truncated_t2", "drum_k4", "kulkarni", "bam_h2_v0",
                                  "bam_h0_v6", "bam_h2_v8"])
def test_fast_matmul_exact(name):
    m = get_multiplier(name)
    rng = np.random.default_rng(5)
    A = rng.integers(0, 256, (7, 300)).astype(np.uint8)
    B = rng.integers(-128, 128, (300, 9)).astype(np.int8)
    ref = brute_matmul(m.lut(), A, B)
    assert np.array_equal(m.fast_matmul(A, B), ref)                      # numpy in, numpy out
    y = m.fast_matmul(torch.from_numpy(A), torch.from_numpy(B.view(np.uint8)))  # codes
    assert y.dtype == torch.int64 and torch.equal(y, torch.from_numpy(ref))
    assert np.array_equal(m.lut_matmul(A, B), ref)
    A3 = rng.integers(0, 256, (2, 3, 300))                               # batched A
    assert np.array_equal(m.fast_matmul(A3, B), brute_matmul(m.lut(), A3.reshape(6, 300), B).reshape(2, 3, 9))


def test_fast_matmul_large_k_uses_float64():
    m = get_multiplier("exact")
    A = np.full((1, 5000), 255, np.uint8)
    B = np.full((5000, 1), -128, np.int8)
    assert m.fast_matmul(A, B)[0, 0] == 5000 * 255 * -128   # beyond float32's 2^24


def test_fast_matmul_errors():
    with pytest.raises(ValueError, match="lut_matmul"):
        get_multiplier("mitchell").fast_matmul(np.zeros((1, 2), np.uint8), np.zeros((2, 1), np.int8))
    m = get_multiplier("exact")
    with pytest.raises(ValueError, match="inner"):
        m.fast_matmul(np.zeros((1, 2), np.uint8), np.zeros((3, 1), np.int8))
    with pytest.raises(ValueError, match="A values"):
        m.fast_matmul(np.full((1, 2), 300), np.zeros((2, 1), np.int8))
    with pytest.raises(TypeError):
        m.fast_matmul(np.zeros((1, 2)), np.zeros((2, 1), np.int8))


def test_lut_matmul_any_table():
    lut = np.random.default_rng(2).integers(-1000, 1000, (256, 256))
    m = from_lut(lut)
    A = np.random.default_rng(4).integers(0, 256, (5, 40))
    B = np.random.default_rng(6).integers(0, 256, (40, 3))
    assert np.array_equal(m.lut_matmul(A, B, chunk=50), brute_matmul(m.lut(), A, B))


def test_fitted_model():
    t = get_multiplier("truncated_t2")
    assert t.fitted_metrics(1)["WCE"] < 1e-6           # rank-1 table: fit is exact
    m = get_multiplier("mitchell")
    errs = [m.fitted_metrics(r)["MAE"] for r in (1, 2, 4, 8)]
    assert all(x > y for x, y in zip(errs, errs[1:]))
    f, g = m.fitted(4)
    assert f.shape == (256, 4) and g.shape == (256, 4)
    with pytest.raises(ValueError):
        m.fitted(0)
