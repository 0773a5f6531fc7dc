"""Each design against independent scalar re-implementations and hand-computed values."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from steport.train.multipliers import get_multiplier, list_multipliers

RNG = np.random.default_rng(1)
EDGE = [0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 64, 100, 127, 128, 129, 200, 254, 255]
PAIRS = [(a, b) for a in EDGE for b in EDGE] + [tuple(int(x) for x in p) for p in RNG.integers(0, 256, (1500, 2))]


# ---- independent scalar references (written differently from the vectorized designs) ----
def ref_truncated(a, b, t):
    return (a >> t << t) * (b >> t << t)


def ref_bam(a, b, h, v):
    total = 0
    for i, abit in enumerate(reversed(f"{a:08b}")):
        for j, bbit in enumerate(reversed(f"{b:08b}")):
            if abit == bbit == "1" and i >= h and i + j >= v:
                total += 1 << (i + j)
    return total


def ref_drum_operand(x, k):
    s = bin(x)[2:]
    if len(s) <= k:
        return x
    kept = s[:k - 1] + "1"
    return int(kept + "0" * (len(s) - k), 2)


def ref_mitchell(a, b):
    if a == 0 or b == 0:
        return 0
    k1, k2 = a.bit_length() - 1, b.bit_length() - 1
    f1, f2 = Fraction(a, 2 ** k1) - 1, Fraction(b, 2 ** k2) - 1
    p = 2 ** (k1 + k2) * (1 + f1 + f2) if f1 + f2 < 1 else 2 ** (k1 + k2 + 1) * (f1 + f2)
    assert p.denominator == 1
    return int(p)


def ref_etm(a, b, l):
    ah, bh, al, bl = a >> l, b >> l, a % 2 ** l, b % 2 ** l
    if ah == 0 and bh == 0:
        return al * bl
    low = 0
    for i in range(l - 1, -1, -1):  # scan from the MSB of the lower parts
        if (al >> i) & 1 or (bl >> i) & 1:
            low = 2 ** (l + i + 1) - 1
            break
    return ah * bh * 2 ** (2 * l) + low


def k2(x, y):
    return 7 if x == y == 3 else x * y


def ref_kulkarni(a, b, width=8):
    """Recursive composition: a width x width multiplier from four half-width ones."""
    if width == 2:
        return k2(a, b)
    h = width // 2
    m = 2 ** h
    ah, al, bh, bl = a // m, a % m, b // m, b % m
    return (ref_kulkarni(ah, bh, h) * m * m + (ref_kulkarni(ah, bl, h) + ref_kulkarni(al, bh, h)) * m
            + ref_kulkarni(al, bl, h))


REFS = {
    "truncated_t1": lambda a, b: ref_truncated(a, b, 1),
    "truncated_t3": lambda a, b: ref_truncated(a, b, 3),
    "bam_h0_v6": lambda a, b: ref_bam(a, b, 0, 6),
    "bam_h2_v8": lambda a, b: ref_bam(a, b, 2, 8),
    "bam_h3_v0": lambda a, b: ref_bam(a, b, 3, 0),
    "drum_k3": lambda a, b: ref_drum_operand(a, 3) * ref_drum_operand(b, 3),
    "drum_k5": lambda a, b: ref_drum_operand(a, 5) * ref_drum_operand(b, 5),
    "mitchell": ref_mitchell,
    "etm_l3": lambda a, b: ref_etm(a, b, 3),
    "etm_l4": lambda a, b: ref_etm(a, b, 4),
    "kulkarni": ref_kulkarni,
}


@pytest.mark.parametrize("name", sorted(REFS))
def test_unsigned_table_matches_reference(name):
    lut = get_multiplier(name).lut_unsigned()
    ref = REFS[name]
    bad = [(a, b, int(lut[a, b]), ref(a, b)) for a, b in PAIRS if lut[a, b] != ref(a, b)]
    assert not bad, bad[:5]


def test_exact_everywhere():
    m = get_multiplier("exact")
    a = np.arange(256)[:, None]
    assert np.array_equal(m.lut_unsigned(), a * np.arange(256)[None])
    bvals = np.arange(256).astype(np.uint8).view(np.int8).astype(np.int64)
    assert np.array_equal(m.lut(), a * bvals[None])
    assert m.lut().dtype == np.int32 and m.lut().shape == (256, 256)


def test_hand_values():
    kul = get_multiplier("kulkarni").lut_unsigned()
    assert kul[3, 3] == 7 and kul[2, 3] == 6 and kul[1, 3] == 3   # the 2x2 block
    assert kul[15, 15] == 175                                      # 7*16 + 14*4 + 7
    assert kul[255, 255] == 255 * 255 - 2 * 85 * 85                # u(255) = 0b01010101
    mit = get_multiplier("mitchell").lut_unsigned()
    assert mit[3, 3] == 8 and mit[255, 255] == 65024 and mit[64, 32] == 2048 and mit[3, 2] == 6
    d3 = get_multiplier("drum_k3").lut_unsigned()
    assert d3[24, 1] == 28 and d3[29, 1] == 28 and d3[20, 1] == 20 and d3[7, 7] == 49
    assert d3[24, 24] == 784
    d4 = get_multiplier("drum_k4").lut_unsigned()
    assert d4[128, 1] == 144 and d4[255, 1] == 240
    etm = get_multiplier("etm_l4").lut_unsigned()
    assert etm[15, 15] == 225 and etm[16, 16] == 256 and etm[255, 15] == 255
    assert etm[0x35, 0x12] == 3 * 1 * 256 + 127
    assert etm[31, 0] == 255     # the non-multiplication part answers even for b = 0
    t2 = get_multiplier("truncated", t=2).lut_unsigned()
    assert t2[7, 7] == 16 and t2[3, 255] == 0
    assert np.array_equal(get_multiplier("bam_h0_v0").lut(), get_multiplier("exact").lut())


@pytest.mark.parametrize("name", list_multipliers())
def test_sign_magnitude(name):
    m = get_multiplier(name)
    lut, u = m.lut().astype(np.int64), m.lut_unsigned().astype(np.int64)
    for v in range(0, 128):
        assert np.array_equal(lut[:, v], u[:, v])
    for v in range(1, 129):   # code 256 - v holds the weight -v, |b| = 128 included
        assert np.array_equal(lut[:, 256 - v], -u[:, v])


@pytest.mark.parametrize("name", list_multipliers())
def test_model_bitexact(name):
    m = get_multiplier(name)
    a = torch.arange(256).view(256, 1)
    codes = torch.arange(256, dtype=torch.uint8).view(1, 256)
    assert torch.equal(m.model(a, codes), torch.from_numpy(np.array(m.lut())))
    assert torch.equal(m.model(a, codes.view(torch.int8).to(torch.int16)),
                       torch.from_numpy(np.array(m.lut())))
    assert torch.equal(m.model(a, torch.arange(256).view(1, 256), signed=False),
                       torch.from_numpy(np.array(m.lut_unsigned())))


def test_truncation_model_is_operand_transform():
    m = get_multiplier("truncated", t=3)
    assert m.model_kind == "operand-transform"
    a = torch.randint(0, 256, (1000,))
    b = torch.randint(-128, 128, (1000,))
    expect = (a & ~7) * (b.abs() & ~7) * torch.where(b < 0, -1, 1)
    assert torch.equal(m.model(a, b), expect.to(torch.int32))


def test_model_rejects_bad_input():
    m = get_multiplier("drum_k4")
    with pytest.raises(ValueError, match="a values"):
        m.model(torch.tensor([256]), torch.tensor([1]))
    with pytest.raises(ValueError, match="b values"):
        m.model(torch.tensor([1]), torch.tensor([128]))
    with pytest.raises(ValueError, match="b values"):
        m.model(torch.tensor([1]), torch.tensor([-1]), signed=False)
    with pytest.raises(TypeError):
        m.model(torch.tensor([1.0]), torch.tensor([1]))


def test_registry_names_and_errors():
    assert get_multiplier("truncated", t=2).name == "truncated_t2"
    assert get_multiplier("truncated_t2") is get_multiplier("truncated", t=2)
    assert get_multiplier("bam", v=6).name == "bam_h0_v6"
    assert get_multiplier("etm").name == "etm_l4"
    for n in list_multipliers():
        assert get_multiplier(n).name == n
    with pytest.raises(ValueError, match="unknown multiplier"):
        get_multiplier("booth")
    with pytest.raises(ValueError, match="required"):
        get_multiplier("truncated")
    with pytest.raises(ValueError, match="0..7"):
        get_multiplier("truncated", t=9)
    with pytest.raises(ValueError, match="unknown parameter"):
        get_multiplier("drum", k=4, z=1)
    with pytest.raises(ValueError, match="either"):
        get_multiplier("drum_k4", k=4)
    with pytest.raises(ValueError, match="parse"):
        get_multiplier("drum_kx")
    assert get_multiplier("mitchell").citation


def test_tables_are_read_only():
    m = get_multiplier("mitchell")
    with pytest.raises(ValueError):
        m.lut()[0, 0] = 1
