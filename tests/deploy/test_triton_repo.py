"""`steport deploy triton`: the written config.pbtxt parses with Triton's own ModelConfig
proto (shipped in tritonclient) and holds the fields Triton's onnxruntime backend needs."""
from __future__ import annotations

import importlib.util
import os

import onnx
import pytest

from steport.cli import main

tritonclient = pytest.importorskip("tritonclient")
text_format = pytest.importorskip("google.protobuf.text_format")


def model_config_pb2():
    # tritonclient.grpc's __init__ imports grpcio (not installed with the http extra);
    # the generated proto module itself needs only protobuf: load it by path.
    path = os.path.join(os.path.dirname(tritonclient.__file__), "grpc", "model_config_pb2.py")
    spec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def parse(path):
    pb = model_config_pb2()
    return pb, text_format.Parse(path.read_text(), pb.ModelConfig())


def test_pact_repository(model_dir, tmp_path):
    src = model_dir[1]["pact"][0]
    assert main(["deploy", "triton", str(src), str(tmp_path / "repo"), "--max-batch", "16",
                 "--max-delay-ms", "0.5", "--instances", "2"]) == 0
    root = tmp_path / "repo" / "pact"
    assert (root / "1" / "model.onnx").read_bytes() == src.read_bytes()
    assert (root / "libsteport_ops.so").is_file()
    pb, cfg = parse(root / "config.pbtxt")
    assert cfg.name == "pact" and cfg.platform == "onnxruntime_onnx"
    assert cfg.max_batch_size == 16
    assert list(cfg.model_operations.op_library_filename) == ["/models/pact/libsteport_ops.so"]
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 500
    assert cfg.dynamic_batching.default_queue_policy.max_queue_size == 256
    assert [(g.count, g.kind) for g in cfg.instance_group] == [(2, pb.ModelInstanceGroup.KIND_CPU)]
    m = onnx.load(root / "1" / "model.onnx")
    assert [i.name for i in cfg.input] == [i.name for i in m.graph.input if i.name not in
                                           {x.name for x in m.graph.initializer}]
    assert cfg.input[0].data_type == pb.TYPE_FP32
    assert list(cfg.input[0].dims) == [1, 6, 6], "batch dim left out when max_batch_size > 0"
    assert [o.name for o in cfg.output] == [o.name for o in m.graph.output]
    assert list(cfg.output[0].dims) == [3]


def test_fixed_shape_and_library_dir(model_dir, tmp_path):
    src = model_dir[0] / "fixed.onnx"
    assert main(["deploy", "triton", str(src), str(tmp_path), "--name", "sq",
                 "--library-dir", "/srv/triton/sq"]) == 0
    pb, cfg = parse(tmp_path / "sq" / "config.pbtxt")
    assert cfg.name == "sq" and cfg.max_batch_size == 0
    assert not cfg.HasField("dynamic_batching"), "no batch dim: no dynamic batching"
    assert list(cfg.input[0].dims) == [4] and cfg.input[0].data_type == pb.TYPE_INT32
    assert list(cfg.model_operations.op_library_filename) == ["/srv/triton/sq/libsteport_ops.so"]


def test_bad_input_is_a_clear_cli_error(tmp_path, capsys):
    assert main(["deploy", "triton", str(tmp_path / "missing.onnx"), str(tmp_path)]) == 2
    assert "no such model file" in capsys.readouterr().err
