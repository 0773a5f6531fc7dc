"""Unsigned 8x8 approximate multiplier designs, each written from its published definition.

Every design is a function ``M(a, b, xp, **params)`` on unsigned integer arrays (numpy or
torch, ``xp`` is the module) holding values 0..255, returning int64 products. The same
function builds the 256x256 table (numpy grids) and serves as the behavioural model (torch
tensors), so the model is bit-exact to the table by construction; the tests check each design
against independent scalar re-implementations and hand-computed values from the papers.

Operand order: ``a`` is the activation (first operand), ``b`` the weight magnitude.
"""
from __future__ import annotations

BITS = 8


def _where(xp, cond, x, y):
    return xp.where(cond, x, y)


def leading_one(x, xp):
    """Position of the leading one of x >= 1 (0..7); 0 for x == 0 (callers mask that case)."""
    p = x * 0
    for k in range(1, BITS):
        p = p + (x >= (1 << k))
    return p


def exact(a, b, xp):
    """Exact product a*b (the reference every other design is measured against)."""
    return a * b


def truncated(a, b, xp, t: int):
    """Operand truncation: the t least significant bits of each operand are zeroed,
    ``(a & ~(2^t-1)) * (b & ~(2^t-1))`` -- the classic data-truncation multiplier (EvoApproxLib
    lists such designs, e.g. the ``tmpA = {A[11:11], 11'b0}`` family). Operand transform:
    exactly separable."""
    mask = ~((1 << t) - 1)
    return (a & mask) * (b & mask)


def truncate_operand(x, xp, t: int):
    return x & ~((1 << t) - 1)


def bam(a, b, xp, h: int, v: int):
    """Broken-array multiplier (H. R. Mahdiani, A. Ahmadi, S. M. Fakhraie, C. Lucas,
    "Bio-Inspired Imprecise Computational Blocks for Efficient VLSI Implementation of
    Soft-Computing Applications", IEEE TCAS-I 57(4):850-862, 2010).

    The array multiplier sums partial-product bits a_i*b_j*2^(i+j). The horizontal break
    level ``h`` omits the cell rows of the h least significant bits of ``a`` (i < h); the
    vertical break level ``v`` omits every cell of weight below 2^v (i + j < v). The kept
    cells are summed exactly. Row indexing by the first operand (a) follows EvoApproxLib's
    BAM circuits (e.g. ``bw=12,v=18,h=9`` keeps A[9..11] rows only). h = v = 0 is exact."""
    out = a * 0
    for i in range(max(h, 0), BITS):
        jmin = max(0, v - i)  # row i keeps the bits b_j with j >= v - i
        if jmin < BITS:
            out = out + (((a >> i) & 1) * ((b >> jmin) << jmin) << i)
    return out


def drum_operand(x, xp, k: int):
    """DRUM operand approximation: keep the k bits starting at the leading one, set the
    lowest kept bit to 1 (unbiasing the dropped tail), drop the rest; x < 2^k stays exact."""
    p = leading_one(x, xp)
    shift = p - (k - 1)
    shift = shift * (shift > 0)
    approx = (((x >> shift) | 1) << shift)
    return _where(xp, x >= (1 << k), approx, x)


def drum(a, b, xp, k: int):
    """DRUM-k, dynamic range unbiased multiplier (S. Hashemi, R. I. Bahar, S. Reda, "DRUM: A
    Dynamic Range Unbiased Multiplier for Approximate Applications", ICCAD 2015): each operand
    is reduced to k bits from its leading one with the LSB of that segment forced to 1, the
    k x k product is exact and shifted back. Operand transform: exactly separable."""
    return drum_operand(a, xp, k) * drum_operand(b, xp, k)


def mitchell(a, b, xp):
    """Mitchell's logarithmic multiplier (J. N. Mitchell, "Computer Multiplication and
    Division Using Binary Logarithms", IRE Trans. Electronic Computers EC-11(4):512-517,
    1962). With x = 2^k (1 + f): log2 x ~ k + f; the product is the piecewise-linear antilog
    of the summed logs, 2^(k1+k2) (1 + f1 + f2) if f1 + f2 < 1 else 2^(k1+k2+1) (f1 + f2).
    With m = x - 2^k both branches are exact integers here (full-precision mantissas):
    2^(k1+k2) + m1 2^k2 + m2 2^k1, or 2 (m1 2^k2 + m2 2^k1). Zero operands give 0.
    Never overestimates; worst relative error -11.1% (3 x 3 = 8)."""
    k1, k2 = leading_one(a, xp), leading_one(b, xp)
    m1, m2 = a - (1 << k1), b - (1 << k2)
    s = (m1 << k2) + (m2 << k1)
    base = 1 << (k1 + k2)
    out = _where(xp, s < base, base + s, 2 * s)
    return _where(xp, (a == 0) | (b == 0), out * 0, out)


def etm(a, b, xp, l: int):
    """Error-tolerant multiplier (K. Y. Kyaw, W. L. Goh, K. S. Yeo, "Low-power high-speed
    multiplier for error-tolerant application", IEEE EDSSC 2010). Operands split into an
    upper (8-l)-bit multiplication part and a lower l-bit non-multiplication part.
    If both upper parts are zero the exact multiplier handles the lower parts (a*b exact).
    Otherwise the upper parts are multiplied exactly (placed at 2^(2l)) and the lower 2l
    product bits come from the non-multiplication part: scanning the lower operand bits from
    the MSB, the first position i where a_i or b_i is 1 sets product bit l+i and every bit
    below it to 1, i.e. 2^(l+i+1) - 1 (0 when both lower parts are 0). Cross terms
    aH*bL, aL*bH are dropped by design."""
    lo = (1 << l) - 1
    ah, bh, al, bl = a >> l, b >> l, a & lo, b & lo
    either = al | bl
    p = leading_one(either, xp)
    nmp = _where(xp, either > 0, (1 << (p + l + 1)) - 1, either * 0)
    approx = ((ah * bh) << (2 * l)) + nmp
    return _where(xp, (ah == 0) & (bh == 0), al * bl, approx)


def kulkarni_digit_mask(x, xp):
    """u(x) = sum_i [2-bit digit i of x == 3] * 4^i (where a Kulkarni block errs)."""
    out = x * 0
    for i in range(BITS // 2):
        out = out + (((x >> (2 * i)) & 3) == 3) * (1 << (2 * i))
    return out


def kulkarni(a, b, xp):
    """Kulkarni underdesigned multiplier (P. Kulkarni, P. Gupta, M. Ercegovac, "Trading
    Accuracy for Power with an Underdesigned Multiplier Architecture", VLSI Design 2011):
    a 2x2 block that is exact except 3 x 3 = 7 (3 output bits instead of 4), composed into
    4x4 and 8x8 multipliers with exact adders, i.e. sum over 2-bit digits
    K2(a_i, b_j) 4^(i+j). Since K2(x, y) = x y - 2 [x = 3][y = 3], the 8x8 product is
    a*b - 2 u(a) u(b) with u = kulkarni_digit_mask: exactly a rank-2 table."""
    return a * b - 2 * kulkarni_digit_mask(a, xp) * kulkarni_digit_mask(b, xp)
