"""Named designs: parameters, names like ``truncated_t2``, presets, known factorizations."""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np

from . import designs as d
from . import tables
from .core import Multiplier


@dataclass(frozen=True)
class Design:
    family: str
    fn: object                      # fn(a, b, xp, **params)
    params: dict                    # name -> (default, lo, hi)
    citation: str

    def check(self, params: dict) -> dict:
        unknown = set(params) - set(self.params)
        if unknown:
            raise ValueError(f"{self.family}: unknown parameter(s) {sorted(unknown)}; "
                             f"takes {sorted(self.params) or 'none'}")
        out = {}
        for k, (default, lo, hi) in self.params.items():
            v = params.get(k, default)
            if v is None:
                raise ValueError(f"{self.family}: parameter {k} is required ({lo}..{hi})")
            if isinstance(v, bool) or int(v) != v or not lo <= int(v) <= hi:
                raise ValueError(f"{self.family}: {k} must be an integer in {lo}..{hi}, got {v!r}")
            out[k] = int(v)
        return out

    def name(self, params: dict) -> str:
        return "_".join([self.family, *(f"{k}{params[k]}" for k in self.params)])


DESIGNS = {x.family: x for x in [
    Design("exact", d.exact, {}, "exact product"),
    Design("truncated", d.truncated, {"t": (None, 0, 7)},
           "operand truncation (t LSBs of each operand zeroed)"),
    Design("bam", d.bam, {"h": (0, 0, 7), "v": (0, 0, 14)},
           "Mahdiani, Ahmadi, Fakhraie, Lucas, IEEE TCAS-I 57(4), 2010"),
    Design("drum", d.drum, {"k": (None, 1, 8)}, "Hashemi, Bahar, Reda, ICCAD 2015"),
    Design("mitchell", d.mitchell, {}, "Mitchell, IRE Trans. Electronic Computers, 1962"),
    Design("etm", d.etm, {"l": (4, 1, 7)}, "Kyaw, Goh, Yeo, IEEE EDSSC 2010"),
    Design("kulkarni", d.kulkarni, {}, "Kulkarni, Gupta, Ercegovac, VLSI Design 2011"),
]}

PRESETS = [
    "exact", "truncated_t1", "truncated_t2", "truncated_t3", "truncated_t4",
    "bam_h0_v4", "bam_h0_v6", "bam_h0_v8", "bam_h2_v8",
    "drum_k3", "drum_k4", "drum_k5", "drum_k6",
    "mitchell", "etm_l3", "etm_l4", "kulkarni",
]


def list_multipliers() -> list[str]:
    """Names of the preset multipliers (any valid parameterization also works)."""
    return list(PRESETS)


def list_designs() -> dict[str, dict]:
    """Family -> {parameter: (default or None if required, lo, hi)}."""
    return {f: dict(x.params) for f, x in DESIGNS.items()}


def _parse(name: str) -> tuple[str, dict]:
    family, *rest = name.split("_")
    params = {}
    for part in rest:
        m = re.fullmatch(r"([a-z]+)(\d+)", part)
        if not m:
            raise ValueError(f"cannot parse multiplier name {name!r} (expected e.g. 'truncated_t2')")
        params[m.group(1)] = int(m.group(2))
    return family, params


def get_multiplier(name: str, **params) -> Multiplier:
    """A design by family and parameters (``get_multiplier("truncated", t=2)``) or by full
    name (``get_multiplier("truncated_t2")``). Instances are cached and read-only."""
    family, parsed = (name, {}) if name in DESIGNS else _parse(name)
    if family not in DESIGNS:
        raise ValueError(f"unknown multiplier {name!r}; designs: {sorted(DESIGNS)}")
    if parsed and params:
        raise ValueError(f"give parameters either in the name or as keywords, not both: {name!r}")
    design = DESIGNS[family]
    checked = design.check(parsed or params)
    return _build(family, tuple(sorted(checked.items())))


@functools.lru_cache(maxsize=None)
def _build(family: str, items: tuple) -> Multiplier:
    design, params = DESIGNS[family], dict(items)
    fn = functools.partial(design.fn, **params) if params else design.fn
    transform = _operand_transform(family, params)
    m = Multiplier(name=design.name(params), design=family, params=params,
                   citation=design.citation, fn=fn, operand_transform=transform,
                   _terms_known=_known_terms(family, params, transform))
    if m._terms_known is not None:  # guard: the closed form must match the table exactly
        total = sum(np.outer(f, g) for f, g in m._terms_known)
        if not np.array_equal(total, m.lut()):
            raise RuntimeError(f"{m.name}: known factorization disagrees with the table")
    return m


def _operand_transform(family: str, p: dict):
    ident = lambda x, xp: x  # noqa: E731
    if family == "exact":
        return ident, ident
    if family == "truncated":
        t = functools.partial(d.truncate_operand, t=p["t"])
        return t, t
    if family == "drum":
        t = functools.partial(d.drum_operand, k=p["k"])
        return t, t
    if family == "bam" and p["v"] == 0:  # only whole rows of a omitted: a & ~(2^h - 1)
        return functools.partial(d.truncate_operand, t=p["h"]), ident
    return None


def _known_terms(family: str, p: dict, transform):
    a = tables.A_GRID[:, 0]
    mag, sign = tables.B_MAG[0], tables.B_SIGN[0]
    if transform is not None:
        fa, fb = transform
        return [(np.asarray(fa(a, np), np.int64), np.asarray(sign * fb(mag, np), np.int64))]
    if family == "bam":  # row i of a keeps b & ~(2^jmin - 1), jmin = max(0, v - i): group by jmin
        groups: dict[int, np.ndarray] = {}
        for i in range(p["h"], d.BITS):
            jmin = max(0, p["v"] - i)
            if jmin < d.BITS:
                groups[jmin] = groups.get(jmin, 0) + (((a >> i) & 1) << i)
        return [(np.asarray(f, np.int64), sign * ((mag >> j) << j)) for j, f in sorted(groups.items())
                if np.any(f) and np.any(mag >> j)]
    if family == "kulkarni":  # a*b - 2 u(a) u(b)
        u = lambda x: np.asarray(d.kulkarni_digit_mask(x, np), np.int64)  # noqa: E731
        return [(a.copy(), sign * mag), (u(a), -2 * sign * u(mag))]
    return None
