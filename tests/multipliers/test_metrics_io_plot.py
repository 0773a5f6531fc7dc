"""Metrics on known cases, load/save round trips, plots and the CLI."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from steport.train.multipliers import (error_metrics, format_table, from_lut, get_multiplier,
                                       load_lut, metrics_rows, metrics_table, plot_error_surface,
                                       save_lut)
from steport.train.multipliers.__main__ import main as cli_main

EXACT_U = np.arange(256)[:, None] * np.arange(256)[None]


def test_exact_metrics_are_zero():
    m = get_multiplier("exact")
    for table in ("unsigned", "signed"):
        assert all(v == 0 for v in m.metrics(table).values())


def test_metrics_known_cases():
    met = error_metrics(EXACT_U + 1, EXACT_U)
    assert met["MAE"] == 1 and met["WCE"] == 1 and met["EP%"] == 100 and met["bias"] == 1
    assert met["MAE%"] == pytest.approx(100 / 65536)
    assert met["WCRE%"] == 100   # 0 * x: |e| / max(1, 0)
    rel = 1 / np.maximum(1, EXACT_U)
    assert met["MRED%"] == pytest.approx(100 * rel.mean())
    one = EXACT_U.copy()
    one[255, 255] -= 1000
    met = error_metrics(one, EXACT_U)
    assert met["EP%"] == pytest.approx(100 / 65536) and met["WCE"] == 1000
    assert met["bias"] == pytest.approx(-1000 / 65536)


def test_design_metric_properties():
    mit = get_multiplier("mitchell").metrics()
    assert mit["WCRE%"] == pytest.approx(100 / 9)          # 3 x 3 = 8
    assert mit["bias"] < 0
    t = get_multiplier("truncated_t2").metrics()
    assert t["bias"] == pytest.approx(-t["MAE"])           # never overestimates
    kul = get_multiplier("kulkarni").metrics()
    assert kul["WCE"] == 2 * 85 * 85                        # 255 x 255
    # EP: pairs with at least one (3, 3) digit pair, counted directly
    da = [(np.arange(256) >> (2 * i)) & 3 for i in range(4)]
    anyb = np.zeros((256, 256), bool)
    for i in range(4):
        for j in range(4):
            anyb |= (da[i][:, None] == 3) & (da[j][None] == 3)
    assert kul["EP%"] == pytest.approx(100 * anyb.mean())


def test_table_formatting():
    rows = metrics_rows([get_multiplier("exact"), get_multiplier("drum_k4")], "signed")
    md = format_table(rows)
    assert md.splitlines()[0].startswith("| name | MAE%") and "drum_k4" in md
    txt = format_table(rows, fmt="text")
    assert len(txt.splitlines()) == 3
    with pytest.raises(ValueError):
        format_table(rows, fmt="html")
    assert "kulkarni" in metrics_table()


@pytest.fixture
def asym():
    """An asymmetric signed table: catches any a/b transposition."""
    return np.arange(65536, dtype=np.int64).reshape(256, 256) % 30011 - 15000


def test_npy_round_trip(tmp_path, asym):
    m = from_lut(asym, name="asym")
    p = save_lut(m, tmp_path / "asym.npy")
    back = load_lut(p)
    assert back.name == "asym" and np.array_equal(back.lut(), asym)
    np.save(tmp_path / "flat.npy", asym.reshape(-1))
    assert np.array_equal(load_lut(tmp_path / "flat.npy").lut(), asym)
    np.save(tmp_path / "t.npy", asym.T)
    assert np.array_equal(load_lut(tmp_path / "t.npy", order="ba").lut(), asym)


def test_raw_uint16_unsigned_dump(tmp_path):
    m = get_multiplier("drum_k4")
    # an EvoApproxLib-style dump: for a in 0..255, for b in 0..255: uint16 little-endian
    (tmp_path / "d.bin").write_bytes(np.asarray(m.lut_unsigned(), "<u2").tobytes())
    back = load_lut(tmp_path / "d.bin", dtype="uint16")
    assert np.array_equal(back.lut_unsigned(), m.lut_unsigned())
    assert np.array_equal(back.lut(), m.lut())             # sign magnitude rebuilt
    (tmp_path / "dT.bin").write_bytes(np.asarray(m.lut_unsigned().T, "<u2").tobytes())
    assert np.array_equal(load_lut(tmp_path / "dT.bin", dtype="uint16", order="ba").lut(), m.lut())
    big = save_lut(m, tmp_path / "s.bin", table="unsigned", dtype="uint16")
    assert big.read_bytes() == (tmp_path / "d.bin").read_bytes()


def test_raw_int16_signed_dump(tmp_path, asym):
    m = from_lut(asym)
    p = save_lut(m, tmp_path / "a.raw", dtype="int16")
    assert p.stat().st_size == 131072
    back = load_lut(p, dtype="int16")
    assert np.array_equal(back.lut(), asym)
    assert back.metrics()["WCE"] > 0                       # signed table by default
    with pytest.raises(ValueError, match="unsigned"):
        back.lut_unsigned()
    a = torch.tensor([0, 5, 255, 17])
    b = torch.tensor([-128, 3, 127, -1])
    assert torch.equal(back.model(a, b), torch.tensor([asym[0, 128], asym[5, 3], asym[255, 127], asym[17, 255]],
                                                      dtype=torch.int32))


def test_load_errors(tmp_path, asym):
    (tmp_path / "short.bin").write_bytes(b"\0" * 1000)
    with pytest.raises(ValueError, match="131072 bytes"):
        load_lut(tmp_path / "short.bin", dtype="uint16")
    with pytest.raises(ValueError, match="dtype"):
        load_lut(tmp_path / "short.bin")
    np.save(tmp_path / "bad.npy", np.zeros((16, 16), np.int32))
    with pytest.raises(ValueError, match="shape"):
        load_lut(tmp_path / "bad.npy")
    np.save(tmp_path / "f.npy", np.full((256, 256), 0.5))
    with pytest.raises(ValueError, match="integers"):
        load_lut(tmp_path / "f.npy")
    np.save(tmp_path / "ok.npy", asym)
    with pytest.raises(ValueError, match="order"):
        load_lut(tmp_path / "ok.npy", order="xy")
    with pytest.raises(ValueError, match="kind"):
        load_lut(tmp_path / "ok.npy", kind="both")
    with pytest.raises(FileNotFoundError):
        load_lut(tmp_path / "missing.npy")
    with pytest.raises(ValueError, match="fit"):
        save_lut(from_lut(asym), tmp_path / "x.bin", dtype="uint16")


def test_plot_writes_png(tmp_path):
    p = plot_error_surface(get_multiplier("mitchell"), tmp_path / "sub" / "mitchell.png")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    q = get_multiplier("etm_l4").plot(tmp_path / "etm.png", table="unsigned")
    assert q.read_bytes()[:4] == b"\x89PNG"
    r = plot_error_surface(from_lut(np.zeros((256, 256), np.int32)), tmp_path / "z.png")
    assert r.is_file()


def test_cli(capsys, tmp_path):
    assert cli_main(["--names", "exact", "kulkarni", "--md", "--plot", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| kulkarni |" in out and (tmp_path / "kulkarni.png").is_file()
    assert cli_main(["--names", "nope"]) == 2
