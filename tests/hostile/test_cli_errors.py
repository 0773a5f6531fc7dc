"""Finding 4 (issue 19): every user mistake the outside probe tried on `steport verify`,
`steport export` and `steport bench` ends in ONE clear line on stderr and a non-zero exit,
never a traceback; impossible sizes are refused before they are allocated."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from steport.train.checkpoint import read_checkpoint, save_checkpoint  # noqa: E402
from steport.train.models import build_model  # noqa: E402

# a few GiB at most: a request past it must be refused, not attempted (the probe's sizes
# are terabytes; the limit keeps a regression from eating a shared machine's memory)
LIMIT_ENV = {"STEPORT_MAX_BYTES": str(4 << 30)}


def _steport(*args, env=None):
    e = {**os.environ, **LIMIT_ENV, **(env or {})}
    return subprocess.run([sys.executable, "-m", "steport", *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=e)


def _assert_one_line_error(p, *needles):
    err = p.stderr.strip()
    assert p.returncode != 0, f"exit 0; stdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    assert "Traceback" not in p.stderr, p.stderr
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"


def _assert_usage_error(p, option):
    """argparse's own refusal: the usage, then one `error: argument OPTION: ...` line."""
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert "error: argument " + option in last, p.stderr


def _save(path, arch, kwargs, input_shape=(1, 8, 8), state_from=None):
    model = build_model(arch, **(state_from or kwargs))
    save_checkpoint(path, model, arch=arch, kwargs=kwargs, input_shape=input_shape, dataset="")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    f = {}
    f["binary_pt"] = d / "binary_mlp.pt"
    _save(f["binary_pt"], "binary_mlp", {"hidden": 16, "depth": 1})
    f["logic_pt"] = d / "logic_net.pt"
    _save(f["logic_pt"], "logic_net", {"widths": [40, 40], "thresholds": 1})
    for name in ("binary", "logic"):
        f[f"{name}_onnx"] = d / f"{name}.onnx"
        p = _steport("export", f[f"{name}_pt"], "-o", f[f"{name}_onnx"], "--batch", 2)
        assert p.returncode == 0, p.stderr
    good = f["binary_onnx"].read_bytes()
    f["truncated"] = d / "truncated.onnx"
    f["truncated"].write_bytes(good[: len(good) // 3])
    f["flipped"] = d / "flipped.onnx"
    flipped = bytearray(good)
    for i in range(0, 64):  # the leading field tags and lengths: no longer a valid message
        flipped[i] ^= 0xFF
    f["flipped"].write_bytes(bytes(flipped))
    f["text"] = d / "notes.onnx"
    f["text"].write_text("this is not a model\n" * 20)
    f["empty"] = d / "empty.onnx"
    f["empty"].write_bytes(b"")
    f["dir"] = d / "a_directory"
    f["dir"].mkdir()
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Bar", ["X"], ["Y"], domain="com.unknown")], "g",
                          [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18),
                                            helper.make_opsetid("com.unknown", 1)])
    m.ir_version = 10
    f["unknown_domain"] = d / "unknown_domain.onnx"
    onnx.save(m, f["unknown_domain"])
    # checkpoints whose architecture arguments / input shape are impossible or wrong
    f["misfit_input"] = d / "misfit_input.pt"
    _save(f["misfit_input"], "binary_mlp", {"hidden": 16, "depth": 1}, input_shape=(1, 9, 9))
    f["hidden_2e6"] = d / "hidden_2e6.pt"
    _save(f["hidden_2e6"], "binary_mlp", {"hidden": 2_000_000, "depth": 1},
          state_from={"hidden": 16, "depth": 1})
    f["logic_1e9"] = d / "logic_1e9.pt"
    _save(f["logic_1e9"], "logic_net", {"widths": [1_000_000_000, 40], "thresholds": 1},
          state_from={"widths": [40, 40], "thresholds": 1})
    f["input_1e5"] = d / "input_1e5.pt"
    _save(f["input_1e5"], "binary_mlp", {"hidden": 16, "depth": 1},
          input_shape=(1, 100_000, 100_000))
    assert read_checkpoint(f["input_1e5"])["input_shape"] == [1, 100_000, 100_000]
    f["out"] = d / "out.onnx"
    return f


VERIFY_CASES = {
    "truncated": ("cannot parse", "truncated"),
    "flipped": ("flipped.onnx",),
    "text": ("notes.onnx",),
    "empty": ("is empty",),
    "dir": ("is a directory",),
    "unknown_domain": ("com.unknown",),
    "binary_pt": ("zip archive", "steport export"),
}


@pytest.mark.parametrize("case", sorted(VERIFY_CASES))
def test_verify_bad_model_path(files, case):
    p = _steport("verify", files[case])
    _assert_one_line_error(p, "steport verify: error:", *VERIFY_CASES[case])


def test_verify_missing_path(files):
    _assert_one_line_error(_steport("verify", files["dir"] / "nope.onnx"), "does not exist")


def test_verify_checkpoint_of_another_model(files):
    p = _steport("verify", files["logic_onnx"], "--checkpoint", files["binary_pt"])
    _assert_one_line_error(p, "'binary_mlp'", "'logic_net'")


def test_verify_good_model_passes(files):
    p = _steport("verify", files["logic_onnx"], "--checkpoint", files["logic_pt"], "--batch", 4)
    assert p.returncode == 0 and "PASS" in p.stdout, p.stdout + p.stderr


EXPORT_CASES = {
    "misfit_input": ("does not accept its input_shape [1, 9, 9]",),
    "hidden_2e6": ("refused before allocating",),
    "logic_1e9": ("refused before allocating",),
    "input_1e5": ("refused before allocating", "[2, 1, 100000, 100000]"),
}


@pytest.mark.parametrize("case", sorted(EXPORT_CASES))
def test_export_bad_checkpoint(files, case):
    p = _steport("export", files[case], "-o", files["out"])
    _assert_one_line_error(p, "steport export: error:", *EXPORT_CASES[case])


@pytest.mark.parametrize("batch", ["-1", "0", "x", str(1 << 40)])
def test_export_bad_batch(files, batch):
    p = _steport("export", files["binary_pt"], "-o", files["out"], "--batch", batch)
    _assert_usage_error(p, "--batch")


@pytest.mark.parametrize("threads", ["-1", "0", "1,-2", "two"])
def test_bench_bad_threads(threads):
    p = _steport("bench", "--quick", "--threads", threads, "--json", os.devnull)
    _assert_usage_error(p, "--threads")


def test_allocation_guard_counts_before_allocating():
    from steport.train.alloc_guard import AllocationRefused, allocation_budget

    with allocation_budget(limit=1 << 20) as budget:
        torch.zeros(1000)
        torch.empty((10, 10), dtype=torch.float64)
        assert budget.used == 4000 + 800
        with pytest.raises(AllocationRefused, match="refused before allocating"):
            torch.randn(1 << 40, 1 << 20)  # 2^60 floats: only the guard can stop this
        with pytest.raises(AllocationRefused):
            torch.empty(1 << 20, dtype=torch.uint8)  # 1 MiB + the 4.8 KB above
