"""Logic-gate networks: the exported LogicNet in ORT (steport kernel) vs the same network as
generated C compiled with gcc -O3 (the difflogic approach: one bitwise expression per gate
over 64-sample words, called through ctypes) vs the PyTorch discrete op.

MNIST-sized nets (784 inputs, 4 x 8000 gates, 10 classes; --quick: 4 x 2000) on synthetic
binary inputs. Every implementation takes float [N, 784] and returns float [N, 10]; their
outputs are checked equal before timing."""
from __future__ import annotations

import ctypes
import os
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

import steport.train  # noqa: F401  (registers steport::logic_net)
from steport.export import finalize
from steport.registry import IR_VERSION, ONNX_OPSET, get

from .common import Context, Row, session, time_session, timeit, torch_threads

SPEC = get("logic", "LogicNet")
_C_OPS = {0: "0", 1: "{a} & {b}", 2: "{a} & ~{b}", 3: "{a}", 4: "~{a} & {b}", 5: "{b}",
          6: "{a} ^ {b}", 7: "{a} | {b}", 8: "~({a} | {b})", 9: "~({a} ^ {b})", 10: "~{b}",
          11: "{a} | ~{b}", 12: "~{a}", 13: "~{a} | {b}", 14: "~({a} & {b})", 15: "~(uint64_t)0"}


def random_net(n_in: int, sizes: list[int], seed: int = 0):
    rng = np.random.default_rng(seed)
    widths = [n_in, *sizes[:-1]]
    ia = np.concatenate([rng.integers(0, w, s) for w, s in zip(widths, sizes)]).astype(np.int64)
    ib = np.concatenate([rng.integers(0, w, s) for w, s in zip(widths, sizes)]).astype(np.int64)
    g = rng.integers(0, 16, sum(sizes)).astype(np.uint8)
    return ia, ib, g


def onnx_model(n_in, sizes, ia, ib, g, k, tau) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, n_in])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, k])
    node = helper.make_node("LogicNet", ["X", "idx_a", "idx_b", "gate_ids"], ["Y"],
                            domain=SPEC.domain, layer_sizes=sizes, num_classes=k, tau=tau)
    inits = [numpy_helper.from_array(v, n) for n, v in
             (("idx_a", ia), ("idx_b", ib), ("gate_ids", g))]
    m = helper.make_model(helper.make_graph([node], "logic", [x], [y], inits),
                          opset_imports=[helper.make_opsetid("", ONNX_OPSET),
                                         helper.make_opsetid(SPEC.domain, 1)],
                          ir_version=IR_VERSION)
    return finalize(m, check=False)


_C_CHUNK = 500  # gates per generated function: gcc -O3 time grows fast with function size


def c_source(n_in, sizes, ia, ib, g, k) -> str:
    """One C statement per gate over uint64 words (64 samples), plus packing and a
    bit-sliced GroupSum counter (the same counting scheme as the steport kernel). Gates are
    emitted in functions of _C_CHUNK statements so gcc -O3 compiles a 32k-gate net in
    seconds rather than tens of minutes (one call per 500 gates costs nothing at run time)."""
    lines = ["#include <stdint.h>", "#include <string.h>",
             f"static __thread uint64_t v0[{n_in}];"]
    for li, s in enumerate(sizes):
        lines.append(f"static __thread uint64_t v{li + 1}[{s}];")
    chunks, off = [], 0
    for li, s in enumerate(sizes):
        for c0 in range(0, s, _C_CHUNK):
            name = f"gates_{li}_{c0}"
            chunks.append(name)
            lines.append(f"static __attribute__((noinline)) void {name}(void) {{")
            for j in range(c0, min(s, c0 + _C_CHUNK)):
                expr = _C_OPS[int(g[off + j])].format(a=f"v{li}[{ia[off + j]}]", b=f"v{li}[{ib[off + j]}]")
                lines.append(f"  v{li + 1}[{j}] = {expr};")
            lines.append("}")
        off += s
    last, width = len(sizes), sizes[-1]
    grp = width // k
    planes = max(1, int(grp).bit_length())
    lines += [
        "void logic_net(const float* x, long n, float* y, float tau) {",
        "  for (long r0 = 0; r0 < n; r0 += 64) {",
        "    long rows = n - r0 < 64 ? n - r0 : 64;",
        "    memset(v0, 0, sizeof v0);",
        "    for (long s = 0; s < rows; ++s) {",
        f"      const float* row = x + (r0 + s) * {n_in};",
        f"      for (int f = 0; f < {n_in}; ++f) v0[f] |= (uint64_t)(row[f] != 0.0f) << s;",
        "    }"]
    lines += [f"    {name}();" for name in chunks]
    lines += [
        f"    for (int c = 0; c < {k}; ++c) {{",
        f"      uint64_t p[{planes}] = {{0}};",
        f"      for (int u = 0; u < {grp}; ++u) {{",
        f"        uint64_t carry = v{last}[c * {grp} + u];",
        f"        for (int q = 0; q < {planes}; ++q) {{ uint64_t t = p[q]; p[q] = t ^ carry; carry &= t; }}",
        "      }",
        "      for (long s = 0; s < rows; ++s) {",
        "        long cnt = 0;",
        f"        for (int q = 0; q < {planes}; ++q) cnt |= (long)((p[q] >> s) & 1) << q;",
        f"        y[(r0 + s) * {k} + c] = (float)cnt / tau;",
        "      }", "    }", "  }", "}"]
    return "\n".join(lines) + "\n"


def compile_c(src: str, tmp: str) -> ctypes.CDLL:
    c, so = os.path.join(tmp, "net.c"), os.path.join(tmp, "net.so")
    with open(c, "w") as f:
        f.write(src)
    subprocess.run(["gcc", "-O3", "-shared", "-fPIC", "-o", so, c], check=True)
    lib = ctypes.CDLL(so)
    lib.logic_net.argtypes = [ctypes.c_void_p, ctypes.c_long, ctypes.c_void_p, ctypes.c_float]
    lib.logic_net.restype = None
    return lib


def c_runner(lib, x: np.ndarray, k: int, tau: float, threads: int):
    y = np.empty((x.shape[0], k), np.float32)
    # split on 64-sample boundaries; ctypes releases the GIL during the call
    step = -(-x.shape[0] // threads // 64) * 64 or 64
    parts = [(i, min(i + step, x.shape[0])) for i in range(0, x.shape[0], step)]
    pool = ThreadPoolExecutor(threads) if threads > 1 else None

    def one(p):
        b, e = p
        lib.logic_net(x[b:].ctypes.data, e - b, y[b:].ctypes.data, tau)

    def run():
        if pool is None:
            one(parts[0]) if len(parts) == 1 else [one(p) for p in parts]
        else:
            list(pool.map(one, parts))
        return y
    return run


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    n_in, k, tau = 784, 10, 10.0
    sizes = [2000] * 4 if ctx.quick else [8000] * 4
    batch = 1024 if ctx.quick else 4096
    ia, ib, g = random_net(n_in, sizes)
    x = (np.random.default_rng(1).random((batch, n_in)) > 0.5).astype(np.float32)
    model = onnx_model(n_in, sizes, ia, ib, g, k, tau)
    tx, tia, tib, tg = map(torch.from_numpy, (x, ia, ib, g))
    ref = torch.ops.steport.logic_net(tx, tia, tib, tg, sizes, k, tau).numpy()
    case = f"784-{len(sizes)}x{sizes[0]}-10 N={batch}"
    with tempfile.TemporaryDirectory() as tmp:
        lib = compile_c(c_source(n_in, sizes, ia, ib, g, k), tmp)
        for t in ctx.threads:
            c_run = c_runner(lib, x, k, tau, t)
            assert np.array_equal(c_run(), ref), "generated C disagrees with the PyTorch op"
            rows.append(Row("logic", case, "c-gcc-O3", t, timeit(c_run, ctx), items=batch))
            sess = session(model, t)
            assert np.array_equal(sess.run(None, {"X": x})[0], ref), "ORT disagrees"
            rows.append(Row("logic", case, "steport-ort", t, time_session(sess, {"X": x}, ctx),
                            baseline="c-gcc-O3", items=batch))
            with torch_threads(t):
                sec = timeit(lambda: torch.ops.steport.logic_net(tx, tia, tib, tg, sizes, k, tau),
                             ctx)
            rows.append(Row("logic", case, "torch-discrete", t, sec, baseline="c-gcc-O3",
                            items=batch))
    return rows
