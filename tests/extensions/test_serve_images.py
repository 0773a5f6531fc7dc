"""PNG bytes -> `steport serve` (BYTES input, Open Inference Protocol) -> the same labels as
PyTorch on the decoded, preprocessed tensors; corrupt image bytes -> a clear 4xx."""
from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
import torch

pytest.importorskip("tritonclient.http")
import tritonclient.http as tc  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

from steport.deploy.repository import Policy, Repository  # noqa: E402
from steport.deploy.server import JsonLog, Server, ServerConfig  # noqa: E402
from steport.export.preprocess import wrap_image_model  # noqa: E402

from .conftest import digit_png  # noqa: E402
from .test_preprocess import torch_preprocess  # noqa: E402

LABELS = [f"digit-{i}" for i in range(10)]


@pytest.fixture(scope="module")
def image_server(pact_onnx, tmp_path_factory):
    folder = tmp_path_factory.mktemp("img_models")
    onnx.save(wrap_image_model(pact_onnx, LABELS, top_k=2), folder / "digits_png.onnx")
    repo = Repository.load(folder, Policy().updated({"threads": 1}))
    srv = Server(repo, ServerConfig(host="127.0.0.1", port=0), JsonLog(io.StringIO())).start()
    yield srv
    srv.stop()


def _client(srv):
    return tc.InferenceServerClient(url=srv.url, connection_timeout=10, network_timeout=30)


def _infer(srv, images: list[bytes]):
    arr = np.empty(len(images), dtype=object)
    arr[:] = images
    inp = tc.InferInput("image", [len(images)], "BYTES")
    inp.set_data_from_numpy(arr, binary_data=True)
    outs = [tc.InferRequestedOutput(n, binary_data=True) for n in ("top_indices", "top_labels")]
    return _client(srv).infer("digits_png", [inp], outputs=outs)


def test_metadata_shows_a_bytes_image_input(image_server):
    meta = _client(image_server).get_model_metadata("digits_png")
    assert meta["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
    assert {o["name"] for o in meta["outputs"]} >= {"top_indices", "top_labels", "probabilities"}


def test_png_bytes_served_give_pytorch_labels(image_server, digits, trained_pact):
    n = 24
    pngs, bigs = zip(*(digit_png(img[0]) for img in digits.test.x[:n].numpy()))
    res = _infer(image_server, list(pngs))
    idx = res.as_numpy("top_indices")
    labels = res.as_numpy("top_labels")
    with torch.no_grad():
        ref = trained_pact(torch.cat([torch_preprocess(b) for b in bigs])).argmax(1).numpy()
    np.testing.assert_array_equal(idx[:, 0], ref)
    assert [v.decode() if isinstance(v, bytes) else v for v in labels[:, 0]] == \
        [LABELS[i] for i in ref]


@pytest.mark.parametrize("bad", [b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"GIF89a-not-an-image",
                                 b""])
def test_corrupt_images_are_a_4xx_and_the_server_keeps_serving(image_server, digits, bad):
    with pytest.raises(InferenceServerException) as e:
        _infer(image_server, [bad])
    assert e.value.status() in ("400", 400), e.value
    good, _ = digit_png(digits.test.x[0, 0].numpy())
    assert _infer(image_server, [good]).as_numpy("top_indices").shape == (1, 2)
