"""CLI: export --preprocess image, verify --backend python, verify --per-node."""
from __future__ import annotations

import numpy as np
import onnx

import steport
from steport.cli import main
from steport.export.preprocess import labels_of, pack_images

from .conftest import digit_png


def test_cli_export_image_and_verify_python(tmp_path, trained_pact, capsys):
    from steport.train.checkpoint import save_checkpoint

    ckpt = tmp_path / "c.pt"
    save_checkpoint(ckpt, trained_pact, arch="pact_cnn",
                    kwargs={"width": 8, "bits": 4, "alpha_init": 4.0}, input_shape=(1, 8, 8),
                    dataset="digits")
    img = tmp_path / "img.onnx"
    assert main(["export", str(ckpt), "-o", str(img), "--preprocess", "image",
                 "--labels", ",".join("abcdefghij")]) == 0
    model = onnx.load(str(img))
    assert labels_of(model) == list("abcdefghij")
    out = steport.session(str(img)).run(["top_labels"], pack_images([digit_png(np.eye(8))[0]]))
    assert out[0].shape == (1, 3)

    plain = tmp_path / "m.onnx"
    assert main(["export", str(ckpt), "-o", str(plain)]) == 0
    assert main(["verify", str(plain), "--backend", "steport", "--backend", "python",
                 "--batch", "8"]) == 0
    assert "ort+steport vs ort+python" in capsys.readouterr().out
    assert main(["verify", str(plain), "--per-node", "--batch", "8"]) == 0
    assert "all custom nodes agree" in capsys.readouterr().out
