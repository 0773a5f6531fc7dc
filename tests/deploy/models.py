"""Registry of 'a model of each family' for the serving tests. Each builder writes one
exported .onnx into a folder and returns (path, example input of batch 2, a reference
function x -> expected output: the PyTorch model in eval mode)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

Builder = Callable[[Path], tuple[Path, np.ndarray, Callable[[np.ndarray], np.ndarray]]]
FAMILY_MODELS: dict[str, Builder] = {}


def family_model(name: str):
    def deco(fn: Builder) -> Builder:
        FAMILY_MODELS[name] = fn
        return fn
    return deco


@family_model("pact")
def pact(folder: Path):
    import torch

    from steport.export import export_model
    from steport.train import PACT

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), PACT(4, 2.0), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 4 * 4, 3)).eval()
    x = torch.randn(2, 1, 6, 6)
    path = folder / "pact.onnx"
    export_model(model, x, path)

    def ref(a: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(a)).numpy()
    return path, x.numpy(), ref


def _zoo_model(folder: Path, family: str, arch: str, **kwargs):
    """A zoo model for 8x8 digits-shaped input, ranges calibrated on a few batches, exported;
    the reference is the PyTorch model in eval mode."""
    import torch

    from steport.export import export_model
    from steport.train.models import build_model

    torch.manual_seed(0)
    model = build_model(arch, in_channels=1, num_classes=10, **kwargs)
    gen = torch.Generator().manual_seed(1)
    model.train()
    with torch.no_grad():  # observe activation ranges / BatchNorm statistics
        for _ in range(3):
            model(torch.rand(16, 1, 8, 8, generator=gen))
    model.eval()
    x = torch.rand(2, 1, 8, 8, generator=gen)
    path = folder / f"{family}.onnx"
    export_model(model, x, path)

    def ref(a: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(a)).numpy()
    return path, x.numpy(), ref


@family_model("binary")
def binary(folder: Path):
    return _zoo_model(folder, "binary", "binary_cnn", width=16)


@family_model("approx")
def approx(folder: Path):
    return _zoo_model(folder, "approx", "approx_cnn", width=8, multiplier="drum_k4")


@family_model("logic")
def logic(folder: Path):
    return _zoo_model(folder, "logic", "logic_net", widths=(300, 300), thresholds=2)


@family_model("float")
def float_mlp(folder: Path):
    """A standard-ONNX model (no steport ops): y = relu(x @ W + b), dynamic batch."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from steport.registry import IR_VERSION, ONNX_OPSET

    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "B"], ["a"]),
         helper.make_node("Relu", ["a"], ["y"])], "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], ir_version=IR_VERSION)
    onnx.checker.check_model(m)
    path = folder / "float.onnx"
    onnx.save(m, path)
    x = rng.standard_normal((2, 5)).astype(np.float32)
    return path, x, lambda a: np.maximum(a @ w + b, 0)


def fixed_shape_model(folder: Path) -> Path:
    """No batch dim (fixed [4] int32 input): served without batching, dims checked exactly."""
    import onnx
    from onnx import TensorProto, helper

    from steport.registry import IR_VERSION, ONNX_OPSET

    g = helper.make_graph([helper.make_node("Mul", ["a", "a"], ["sq"])], "sq",
                          [helper.make_tensor_value_info("a", TensorProto.INT32, [4])],
                          [helper.make_tensor_value_info("sq", TensorProto.INT32, [4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], ir_version=IR_VERSION)
    path = folder / "fixed.onnx"
    onnx.save(m, path)
    return path
