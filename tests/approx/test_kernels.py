"""CPU kernel paths in detail (docs/approx.md "Kernels"): the byte-plane GEMM for every plane
count (1-4), exact-product base or none, top-plane byte sums on/off; the separable kernels
(u8 x s8 VNNI with identity/mapped/sign-flipped factors, int16 for wide factors); the
transposed conv GEMM; and their tails (M, N, K, output pixels) against the numpy loops."""
from __future__ import annotations

import numpy as np
import pytest

from ..conftest import assert_bitexact, run_steport
from .common import conv_model, exact_lut, mm_model, np_conv, np_matmul

A = np.arange(256, dtype=np.int64)
B = np.arange(256, dtype=np.uint8).view(np.int8).astype(np.int64)


def _noisy(lo: int, hi: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.outer(A, B) + rng.integers(lo, hi, (256, 256))).astype(np.int32)


# name -> LUT; comments: the path PreparePlanes / NarrowFactors pick on AVX-512 VBMI + VNNI.
LUTS = {
    "p1": lambda: _noisy(-100, 100, 1),             # exact base, 1 plane, 16-bit sums
    "p1-top8": lambda: _noisy(0, 4, 2),             # 1 plane summed in bytes (85 steps)
    "p2-top8": lambda: _noisy(-300, 300, 3),        # 2 planes, top plane in bytes
    "p2": lambda: _noisy(-20000, 20000, 4),         # 2 planes, top plane too big for bytes
    "p3": lambda: _noisy(-(1 << 20), 1 << 20, 5),   # 3 planes
    "p4": lambda: np.random.default_rng(6).integers(  # no base, 4 planes, sums wrap mod 2^32
        -(1 << 31), 1 << 31, (256, 256), dtype=np.int64).astype(np.int32),
    "small-nobase": lambda: np.random.default_rng(7).integers(0, 50, (256, 256)).astype(np.int32),
    "sep-neg": lambda: np.outer(-A, B >> 1).astype(np.int32),   # narrow after a sign flip
    "sep-wide": lambda: np.outer(np.random.default_rng(8).integers(-900, 900, 256),
                                 np.random.default_rng(9).integers(-700, 700, 256)).astype(np.int32),
    "zero": lambda: np.zeros((256, 256), np.int32),
    # narrow for every weight code but -128 (like DRUM, |g(-128)| = 144): u8 x s8 when the
    # weights avoid -128, int16 when they hold it
    "sep-m128": lambda: np.outer(A, np.where(B == -128, -144, B)).astype(np.int32),
}

# (M, K, N): row tails around 64/256, column tails around 16/64, K around 4 and 256 (the
# 16-bit chunk) and not a multiple of 4. The last three have few rows and many columns, so
# the byte-plane GEMM swaps rows and columns (GemmRunner::Planes): N not a multiple of 64
# (padded weight rows), N a multiple, and a swapped problem with more than one pass.
MM_CASES = [(1, 1, 1), (63, 3, 15), (65, 257, 17), (257, 513, 65), (300, 256, 5), (130, 7, 64),
            (1, 300, 200), (3, 70, 128), (64, 257, 300)]


@pytest.fixture(params=["default", "gather", "noamx"])
def path(request, monkeypatch):
    """AVX-512 switches: general LUTs on byte planes (default where VBMI exists) or the gather
    GEMM; u8 x s8 GEMMs on AMX (default where the CPU and OS allow) or VNNI."""
    if request.param == "gather":
        monkeypatch.setenv("STEPORT_APPROX_GATHER", "1")
    if request.param == "noamx":
        monkeypatch.setenv("STEPORT_APPROX_AMX", "0")
    return request.param


@pytest.mark.parametrize("lut_name", sorted(LUTS))
def test_matmul_paths(lut_name, isa, path):
    if path != "default" and isa != "avx512":
        pytest.skip("the switches only matter for AVX-512")
    lut = LUTS[lut_name]()
    for i, (m, k, n) in enumerate(MM_CASES):
        rng = np.random.default_rng(i)
        a = rng.integers(0, 256, (m, k), dtype=np.uint8)
        b = rng.integers(-128, 128, (k, n), dtype=np.int8)
        zp = [0, 131, 255][i % 3]
        feeds = {"A": a, "B": b, "lut": lut, "a_zero_point": np.array(zp, np.uint8)}
        got = run_steport(mm_model(), feeds, threads=1 + i % 2)[0]
        assert_bitexact(got, np_matmul(a, b, lut, zp), f"{lut_name} {isa}/{path} {m}x{k}x{n}")


def test_extreme_codes():
    """All-255 activations and -128 weights: the top half of every table and the sign edge."""
    for lut in (LUTS["p2-top8"](), LUTS["p4"](), exact_lut(), LUTS["sep-neg"]()):
        a = np.full((70, 300), 255, np.uint8)
        a[::3] = 128
        a[1::3] = 127
        b = np.full((300, 20), -128, np.int8)
        b[:, ::2] = 127
        feeds = {"A": a, "B": b, "lut": lut, "a_zero_point": np.array(255, np.uint8)}
        assert_bitexact(run_steport(mm_model(), feeds)[0], np_matmul(a, b, lut, 255), "extreme")


# (x shape, w shape, strides, pads, dilations, group): K = Cg*kH*kW not a multiple of 4,
# output pixels not a multiple of 16, strided/dilated taps, pads larger than the kernel reach.
CONV_CASES = [
    ((1, 3, 9, 11), (5, 3, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),
    ((2, 4, 10, 10), (6, 2, 3, 2), [2, 3], [0, 2, 3, 1], [1, 2], 2),
    ((1, 5, 17, 19), (3, 5, 1, 1), [1, 1], [0, 0, 0, 0], [1, 1], 1),
    ((1, 2, 4, 5), (4, 2, 3, 3), [1, 1], [4, 5, 4, 5], [2, 1], 1),
    ((1, 33, 16, 16), (17, 33, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),  # K = 297 > 256
    # "same" unit-stride convs take the channel-quad layout (cases 0, 2, 4 too): asymmetric
    # pads, groups of 3 channels (a partial quad); and one whose last output column sees only
    # padding, so its inner window is narrower than the input (im2col layout after all)
    ((2, 6, 7, 9), (4, 3, 3, 3), [1, 1], [1, 2, 1, 0], [1, 1], 2),
    ((1, 4, 3, 2), (2, 4, 1, 2), [1, 1], [0, 2, 0, 1], [1, 3], 1),
    # 36 output pixels, 130 channels: the byte-plane GEMM swaps rows and columns
    ((1, 8, 6, 6), (130, 8, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),
]


@pytest.mark.parametrize("lut_name", ["p1", "p2-top8", "p4", "sep-neg", "sep-wide", "zero",
                                      "sep-m128"])
def test_conv_paths(lut_name, isa, path):
    if path != "default" and isa != "avx512":
        pytest.skip("the switches only matter for AVX-512")
    lut = LUTS[lut_name]()
    for i, (xs, ws, strides, pads, dil, group) in enumerate(CONV_CASES):
        rng = np.random.default_rng(100 + i)
        x = rng.integers(0, 256, xs, dtype=np.uint8)
        w = rng.integers(-128, 128, ws, dtype=np.int8)
        zp = [0, 77, 255][i % 3]
        model = conv_model(strides=strides, pads=pads, dilations=dil, group=group)
        feeds = {"X": x, "W": w, "lut": lut, "x_zero_point": np.array(zp, np.uint8)}
        got = run_steport(model, feeds, threads=1 + i % 2)[0]
        ref = np_conv(x, w, lut, zp, strides, pads, dil, group)
        assert_bitexact(got, ref, f"{lut_name} {isa}/{path} case {i}")


@pytest.mark.parametrize("multiplier", ["drum_k4", "sep-m128"])
def test_narrow_but_minus_128(multiplier, isa):
    """A separable LUT whose int8 factor fits int8 for every weight code but -128: weights
    without -128 (what symmetric quantization produces) run the u8 x s8 kernels, weights with
    it the int16 ones; both exact, in one session (the weights are inputs here)."""
    from steport.train.multipliers import get_multiplier

    lut = (LUTS[multiplier]() if multiplier in LUTS
           else np.asarray(get_multiplier(multiplier).lut(), np.int32))
    rng = np.random.default_rng(11)
    xs, ws, strides, pads, dil, group = CONV_CASES[4]
    x = rng.integers(0, 256, xs, dtype=np.uint8)
    a = rng.integers(0, 256, (70, 300), dtype=np.uint8)
    import steport
    conv = steport.session(conv_model(strides=strides, pads=pads, dilations=dil,
                                      group=group).SerializeToString(), threads=2)
    mm = steport.session(mm_model().SerializeToString(), threads=2)
    for lo in (-127, -128):
        w = rng.integers(lo, 128, ws, dtype=np.int8)
        b = rng.integers(lo, 128, (300, 33), dtype=np.int8)
        assert ((w == -128).any() and (b == -128).any()) == (lo == -128)
        got = conv.run(None, {"X": x, "W": w, "lut": lut, "x_zero_point": np.array(9, np.uint8)})[0]
        assert_bitexact(got, np_conv(x, w, lut, 9, strides, pads, dil, group), f"conv {lo}")
        got = mm.run(None, {"A": a, "B": b, "lut": lut, "a_zero_point": np.array(0, np.uint8)})[0]
        assert_bitexact(got, np_matmul(a, b, lut, 0), f"matmul {lo}")


@pytest.mark.parametrize("lut_name", ["p1", "sep-m128"])
def test_conv_row_blocks(lut_name, isa):
    """A "same" 3x3 conv large enough that im2col runs in several blocks of output rows
    (4 MiB each): the blocks' first/last rows and the top/bottom padding rows land in
    different blocks."""
    lut = LUTS[lut_name]()
    rng = np.random.default_rng(21)
    x = rng.integers(0, 256, (1, 256, 70, 64), dtype=np.uint8)
    w = rng.integers(-127, 128, (2, 256, 3, 3), dtype=np.int8)
    model = conv_model(strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=1)
    feeds = {"X": x, "W": w, "lut": lut, "x_zero_point": np.array(5, np.uint8)}
    got = run_steport(model, feeds, threads=2)[0]
    assert_bitexact(got, np_conv(x, w, lut, 5, [1, 1], [1, 1, 1, 1], [1, 1], 1), lut_name)


def _constant_tables_lut(span: int) -> np.ndarray:
    """A 2-plane LUT whose E rows 0, 5, 200 and columns 0, 3 (weight codes) are constant:
    rows 0 and 5 and both columns at the most common value (skipped), row 200 at another (not
    skipped: one constant is added per skipped step). The constant is not the minimum, so
    the skipped steps add a nonzero E. Rows 1-4, 6-40 and columns 1, 2, 4-20, 250-255 span
    `span` (< 256) above offsets of their own: narrow one-plane tables, summed in bytes when
    the span is small."""
    rng = np.random.default_rng(12)
    lut = _noisy(-300, 300, 12).astype(np.int64)
    base = np.outer(A, B)
    for r in [*range(1, 5), *range(6, 41)]:
        lut[r] = base[r] + rng.integers(-300, 300 - span) + rng.integers(0, span + 1, 256)
    for c in [1, 2, *range(4, 21), *range(250, 256)]:
        lut[:, c] = base[:, c] + rng.integers(-300, 300 - span) + rng.integers(0, span + 1, 256)
    for r in (0, 5):
        lut[r] = base[r] - 250
    lut[200] = base[200] + 17
    for c in (0, 3):
        lut[:, c] = base[:, c] - 250
    return lut.astype(np.int32)


def _odd_symmetric_lut(break_m128: bool = False) -> np.ndarray:
    """LUT(a, b) = a * b + d(a, b) with d(a, -m) = s_a - d(a, m) for m = 1..127 and d(a, -128) =
    s_a - d(a, 0): the narrow tables are odd-symmetric (PlaneTables::narrow_c) around a
    per-row constant, -128 paired with 0. Rows 1-30 narrow (their span, up to 255, decides
    the byte sums), the others wide; row 0 is the exact product (skipped). `break_m128`: row
    3's -128 entry off by one, so the tables are not symmetric (the general form is used)."""
    rng = np.random.default_rng(14)
    d = np.zeros((256, 256), np.int64)
    for a in range(1, 256):
        h = int(rng.integers(1, 60)) if a <= 30 else int(rng.integers(200, 3000))
        s = int(rng.integers(-(255 - 2 * h), 256 - 2 * h)) if a <= 30 else int(rng.integers(-500, 500))
        pos = rng.integers(-h, h + 1, 128)
        d[a, :128] = pos                      # codes 0..127 (b = m)
        d[a, 256 - np.arange(1, 128)] = s - pos[1:]   # b = -m
        d[a, 128] = s - pos[0]                # b = -128
    if break_m128:
        d[3, 128] += 1 if d[3].max() > d[3, 128] else -1  # the row's span stays < 256
    return (np.outer(A, B) + d).astype(np.int32)


@pytest.mark.parametrize("lut_name", ["tables-span-255", "tables-span-40", "mitchell", "odd-symmetric",
                                      "odd-symmetric-but-m128"])
def test_constant_and_narrow_tables(lut_name, isa):
    """Byte-plane steps whose table is constant are skipped and those whose table spans < 256
    take one plane (GemmRunner::Planes, PlaneTables): activations at a constant-row code (most
    of them under ReLU) or small codes, in the swapped orientation, the only one that lists;
    zero or small weights (constant or narrow columns, which the plain orientation walks
    like any other); columns with few such steps inside a listing group (listed like the
    rest); a matrix of only skipped codes; K over the lists' chunk; more swapped rows than one
    call keeps; and a 3x3 conv on ReLU-like input. Exact either way."""
    from steport.train.multipliers import get_multiplier

    if lut_name == "mitchell":
        lut = np.asarray(get_multiplier("mitchell").lut(), np.int32)
    elif lut_name.startswith("odd-symmetric"):
        lut = _odd_symmetric_lut(break_m128=lut_name.endswith("m128"))
    else:
        lut = _constant_tables_lut(int(lut_name.rsplit("-", 1)[1]))
    rng = np.random.default_rng(13)

    def sparse(shape, share, codes, dtype):
        x = rng.integers(-128 if dtype == np.int8 else 0, 128 if dtype == np.int8 else 256,
                         shape, dtype=dtype)
        pick = rng.random(shape) < share
        x[pick] = rng.choice(np.asarray(codes, np.int64), pick.sum()).astype(dtype)
        return x

    cases = [  # (a, b): activations (uint8 codes) and weights (int8)
        (sparse((300, 600), 0.6, [0, 5], np.uint8), rng.integers(-128, 128, (600, 100), dtype=np.int8)),
        (rng.integers(0, 256, (300, 600), dtype=np.uint8), sparse((600, 40), 0.6, [0, 3], np.int8)),
        (sparse((2, 1000), 0.7, [0], np.uint8), rng.integers(-128, 128, (1000, 70), dtype=np.int8)),
        (np.zeros((5, 300), np.uint8), rng.integers(-128, 128, (300, 130), dtype=np.int8)),
    ]
    mixed = rng.integers(0, 256, (70, 520), dtype=np.uint8)  # every other row all skipped
    mixed[::2] = 0
    cases.append((mixed, rng.integers(-128, 128, (520, 200), dtype=np.int8)))
    small = rng.integers(0, 12, (200, 700), dtype=np.uint8)  # ReLU-like: small codes, zeros
    small[rng.random(small.shape) < 0.3] = 0
    cases.append((small, rng.integers(-128, 128, (700, 150), dtype=np.int8)))
    cases.append((rng.integers(0, 256, (300, 400), dtype=np.uint8),  # small weights
                  rng.integers(-6, 21, (400, 30), dtype=np.int8)))
    # K over the lists' chunk (1024 steps: three chunks, the last ending mid-block), 130
    # columns in three listing groups, weights at -128 and 127
    long_k = rng.integers(0, 12, (130, 2600), dtype=np.uint8)
    long_k[rng.random(long_k.shape) < 0.4] = 0
    cases.append((long_k, rng.choice(np.array([-128, -127, -1, 0, 1, 127, 55, -77], np.int8), (2600, 90))))
    # 2200 output channels as the swapped form's rows: 9 passes of 256, more than one call
    # keeps (GemmRunner::Planes merges at most 8)
    few = rng.integers(0, 12, (3, 300), dtype=np.uint8)
    few[rng.random(few.shape) < 0.5] = 0
    cases.append((few, rng.integers(-128, 128, (300, 2200), dtype=np.int8)))
    for i, (a, b) in enumerate(cases):
        zp = [0, 7][i % 2]
        feeds = {"A": a, "B": b, "lut": lut, "a_zero_point": np.array(zp, np.uint8)}
        got = run_steport(mm_model(), feeds, threads=1 + i % 2)[0]
        assert_bitexact(got, np_matmul(a, b, lut, zp), f"{lut_name} matmul case {i}")
    x = sparse((2, 16, 12, 12), 0.5, [0], np.uint8)
    x[1] %= 12
    w = rng.integers(-127, 128, (130, 16, 3, 3), dtype=np.int8)
    model = conv_model(strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=1)
    feeds = {"X": x, "W": w, "lut": lut, "x_zero_point": np.array(0, np.uint8)}
    got = run_steport(model, feeds, threads=2)[0]
    assert_bitexact(got, np_conv(x, w, lut, 0, [1, 1], [1, 1, 1, 1], [1, 1], 1), f"{lut_name} conv")


def test_lut_swap_between_runs():
    """One session, two LUTs with different prepared forms: the content cache must switch."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (70, 40), dtype=np.uint8)
    b = rng.integers(-128, 128, (40, 9), dtype=np.int8)
    import steport
    sess = steport.session(mm_model().SerializeToString(), threads=1)
    for name in ("p2-top8", "sep-neg", "p4", "p2-top8"):
        lut = LUTS[name]()
        got = sess.run(None, {"A": a, "B": b, "lut": lut, "a_zero_point": np.array(3, np.uint8)})[0]
        assert_bitexact(got, np_matmul(a, b, lut, 3), name)


def _lut_as_initializer(model, lut):
    from onnx import numpy_helper
    keep = [i for i in model.graph.input if i.name != "lut"]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    model.graph.initializer.append(numpy_helper.from_array(lut, "lut"))
    return model


@pytest.mark.parametrize("lut_name", ["p2-top8", "sep-neg", "p4"])
def test_constant_lut_prepared_once(lut_name):
    """An initializer LUT is prepared at kernel creation; repeated runs stay exact."""
    lut = LUTS[lut_name]()
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (67, 45), dtype=np.uint8)
    b = rng.integers(-128, 128, (45, 10), dtype=np.int8)
    mm = _lut_as_initializer(mm_model(), lut)
    for _ in range(2):
        got = run_steport(mm, {"A": a, "B": b, "a_zero_point": np.array(9, np.uint8)})[0]
        assert_bitexact(got, np_matmul(a, b, lut, 9), f"matmul {lut_name}")
    x = rng.integers(0, 256, (2, 3, 7, 6), dtype=np.uint8)
    w = rng.integers(-128, 128, (4, 3, 3, 3), dtype=np.int8)
    conv = _lut_as_initializer(conv_model(pads=[1, 1, 1, 1]), lut)
    got = run_steport(conv, {"X": x, "W": w, "x_zero_point": np.array(200, np.uint8)})[0]
    assert_bitexact(got, np_conv(x, w, lut, 200, pads=(1, 1, 1, 1)), f"conv {lut_name}")
