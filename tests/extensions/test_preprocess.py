"""Raw-input models: PNG bytes -> DecodeImage + standard ops + steport ops + softmax/top-k,
all in one ORT session (steport.session registers both op libraries)."""
from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

import steport
from steport.export.preprocess import (BAD_IMAGE_NODE, ImageInputError, check_image_bytes,
                                       labels_of, pack_images, wrap_image_model)

from .conftest import digit_png, encode_png

LABELS = [f"digit-{i}" for i in range(10)]


@pytest.fixture(scope="module")
def wrapped(pact_onnx):
    return wrap_image_model(pact_onnx, LABELS, top_k=3, keep_logits=True)


@pytest.fixture(scope="module")
def sess(wrapped):
    return steport.session(wrapped.SerializeToString(), threads=1)


def torch_preprocess(big: np.ndarray) -> torch.Tensor:
    """The wrapped model's preprocessing in PyTorch: /255, antialiased bilinear to 8x8."""
    t = torch.from_numpy(big.astype(np.float32))[None, None]
    return F.interpolate(t, size=(8, 8), mode="bilinear", align_corners=False,
                         antialias=True) / 255.0


def test_png_bytes_give_pytorch_labels(digits, trained_pact, wrapped, sess):
    n = 48
    pngs, bigs = zip(*(digit_png(img[0]) for img in digits.test.x[:n].numpy()))
    # mix image sizes in one batch (rows are zero-padded, lengths say where each ends)
    pngs = list(pngs)
    pngs[1], big1 = digit_png(digits.test.x[1, 0].numpy(), scale=3)
    bigs = list(bigs)
    bigs[1] = big1
    probs, idx, top_p, top_lab, logits = sess.run(None, pack_images(pngs))
    x = torch.cat([torch_preprocess(b) for b in bigs])
    with torch.no_grad():
        ref_logits = trained_pact(x)
    ref = ref_logits.argmax(1).numpy()
    np.testing.assert_array_equal(idx[:, 0], ref)
    # resize filters differ in the last float bits and a PACT step may flip: close, not equal
    assert np.median(np.abs(logits - ref_logits.numpy())) < 0.05
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(top_p[:, 0], probs.max(1), rtol=1e-6)
    assert (np.diff(top_p, axis=1) <= 0).all(), "top-k sorted"
    assert top_lab.shape == (n, 3)
    assert list(top_lab[:, 0]) == [LABELS[i] for i in idx[:, 0]]
    assert labels_of(wrapped) == LABELS


def test_exact_resize_keeps_accuracy(digits, trained_pact, pact_onnx):
    """Bilinear without antialias recovers a 4x block-upscaled digit exactly (up to the 8-bit
    PNG rounding), so the wrapped model is as accurate as the model on the raw 8x8 data."""
    s = steport.session(wrap_image_model(pact_onnx, resize="linear", top_k=1)
                        .SerializeToString(), threads=1)
    x, y = digits.test.x.numpy(), digits.test.y.numpy()
    idx = s.run(["top_indices"], pack_images([digit_png(img[0])[0] for img in x]))[0][:, 0]
    with torch.no_grad():
        ref = trained_pact(torch.from_numpy(np.round(x * 255) / 255)).argmax(1).numpy()
    np.testing.assert_array_equal(idx, ref)
    acc = float((idx == y).mean())
    print(f"wrapped pact_cnn accuracy on {len(y)} PNG digits: {acc:.4f}")
    assert acc > 0.85


def test_keeps_custom_ops_functions_and_metadata(pact_onnx, wrapped):
    assert {(f.domain, f.name) for f in wrapped.functions} == {("ai.steport.quant", "Pact")}
    # pact_cnn: image quantizer + two PACT activations
    assert sum(n.domain == "ai.steport.quant" for n in wrapped.graph.node) == 3
    meta = {p.key: p.value for p in wrapped.metadata_props}
    assert json.loads(meta["steport.ops"]) == {"ai.steport.quant::Pact": 1}
    assert json.loads(meta["steport.preprocess"])["formats"] == ["png"]
    doms = {o.domain for o in wrapped.opset_import}
    assert {"com.microsoft.extensions", "ai.steport.quant"} <= doms


def test_rgb_and_inverted_input(digits, trained_pact, pact_onnx):
    """An RGB PNG of dark ink on white paper, with invert=True, gives the same labels."""
    pil = pytest.importorskip("PIL.Image")
    import io

    model = wrap_image_model(pact_onnx, invert=True, top_k=1)
    s = steport.session(model.SerializeToString(), threads=1)
    imgs = digits.test.x[:16].numpy()
    pngs, refs = [], []
    for img in imgs:
        _, big = digit_png(img[0])
        paper = 255 - big
        buf = io.BytesIO()
        pil.fromarray(np.stack([paper] * 3, -1), "RGB").save(buf, "PNG")
        pngs.append(buf.getvalue())
        refs.append(torch_preprocess(big))
    idx = s.run(["top_indices"], pack_images(pngs))[0]
    with torch.no_grad():
        ref = trained_pact(torch.cat(refs)).argmax(1).numpy()
    np.testing.assert_array_equal(idx[:, 0], ref)


def _bad_inputs():
    png, _ = digit_png(np.eye(8))
    huge = bytearray(png)
    huge[16:20] = (100000).to_bytes(4, "big")  # IHDR width beyond max_side
    return {"garbage": b"hello, not an image at all",
            "empty": b"",
            "jpeg_magic": b"\xff\xd8\xff" + b"x" * 64,  # would kill the process in libjpeg
            "truncated_png": png[:40],
            "corrupt_png": png[:45] + bytes(b ^ 0xA5 for b in png[45:]),
            "too_large": bytes(huge)}


@pytest.mark.parametrize("kind", list(_bad_inputs()))
def test_bad_bytes_give_clear_errors(kind, sess):
    data = _bad_inputs()[kind]
    good, _ = digit_png(np.eye(8))
    with pytest.raises(Exception) as ei:
        sess.run(None, pack_images([good, data]))
    msg = str(ei.value)
    assert isinstance(ei.value, (ort.capi.onnxruntime_pybind11_state.Fail,
                                 ort.capi.onnxruntime_pybind11_state.RuntimeException,
                                 ort.capi.onnxruntime_pybind11_state.InvalidArgument)), msg
    assert BAD_IMAGE_NODE in msg or "ImageDecoder" in msg, msg
    if kind not in ("corrupt_png", "truncated_png"):  # header-level problems
        with pytest.raises(ImageInputError):
            check_image_bytes(data)
    # the session still works afterwards
    assert sess.run(["top_indices"], pack_images([good]))[0].shape == (1, 3)


def test_python_check_matches_graph():
    png, _ = digit_png(np.eye(8))
    check_image_bytes(png)
    with pytest.raises(ImageInputError, match="not a PNG"):
        check_image_bytes(b"\xff\xd8\xff\xe0")
    check_image_bytes(b"\xff\xd8\xff\xe0", allow_jpeg=True)


def test_wrap_rejects_unsuitable_models(pact_onnx):
    with pytest.raises(ValueError, match="labels"):
        wrap_image_model(pact_onnx, ["a", "b"])
    with pytest.raises(ValueError, match="resize"):
        wrap_image_model(pact_onnx, resize="area")


def test_png_encoder_roundtrip():
    pil = pytest.importorskip("PIL.Image")
    import io

    a = (np.arange(35) * 7 % 256).astype(np.uint8).reshape(5, 7)
    np.testing.assert_array_equal(np.asarray(pil.open(io.BytesIO(encode_png(a)))), a)
