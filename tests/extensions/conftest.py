"""Fixtures for onnxruntime-extensions tests: a small trained PACT digits model, PNG bytes."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime_extensions")


def encode_png(gray: np.ndarray) -> bytes:
    """Minimal 8-bit grayscale PNG encoder (no Pillow needed): filter 0 on every row."""
    gray = np.ascontiguousarray(gray, np.uint8)
    h, w = gray.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    raw = b"".join(b"\x00" + gray[r].tobytes() for r in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def digit_png(img8: np.ndarray, scale: int = 4) -> tuple[bytes, np.ndarray]:
    """sklearn digit (0..1 float, 8x8) -> upscaled grayscale PNG and its pixel array."""
    px = np.round(np.asarray(img8, np.float64) * 255).astype(np.uint8)
    big = np.kron(px, np.ones((scale, scale), np.uint8))
    return encode_png(big), big


@pytest.fixture(scope="session")
def digits():
    from steport.train.data import load_digits

    return load_digits()


@pytest.fixture(scope="session")
def trained_pact(digits):
    """pact_cnn trained a few epochs (seconds): accurate enough that labels mean something."""
    from steport.train.models import build_model

    torch.manual_seed(0)
    model = build_model("pact_cnn", width=8, bits=4, alpha_init=4.0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = digits.train.x, digits.train.y
    for _ in range(6):
        perm = torch.randperm(len(y))
        for i in range(0, len(y), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    return model


@pytest.fixture(scope="session")
def pact_onnx(trained_pact):
    from steport.export import export_model

    return export_model(trained_pact, torch.zeros(2, 1, 8, 8))
