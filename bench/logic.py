"""Logic-gate networks: the exported LogicNet in ORT (steport kernel) vs the same network as
generated C compiled with gcc -O3 -march=native (the difflogic approach: one bitwise
expression per gate over 64-sample words, called through ctypes; once with difflogic's
ripple counter for GroupSum, once with our carry-save counter) vs the PyTorch discrete op.

MNIST-sized nets (784 inputs, 4 x 8000 gates, 10 classes; --quick: 4 x 2000) on synthetic
binary inputs, at N = 1, 64 and 4096 (--quick: 1 and 1024). Every implementation takes
float [N, 784] and returns float [N, 10]; their outputs are checked equal before timing."""
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
    """One C statement per gate over uint64 words (64 samples), input packing, and GroupSum
    as a bit-sliced counter, in two entry points sharing the gates:
      logic_net      counts like difflogic's generated C (every unit ripples through all
                     count planes);
      logic_net_csa  counts with the carry-save (Harley-Seal) tree the steport kernel uses,
                     so a comparison against it isolates gate evaluation.
    Gates are emitted in functions of _C_CHUNK statements so gcc -O3 compiles a 32k-gate
    net in seconds rather than tens of minutes (one call per 500 gates costs nothing)."""
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
    planes = max(4, int(grp).bit_length())
    lines += [
        "static void ripple(uint64_t* p, int from, uint64_t carry) {",
        f"  for (int q = from; q < {planes}; ++q) {{ uint64_t t = p[q]; p[q] = t ^ carry; carry &= t; }}",
        "}",
        "#define CSA(h, l, a, b, c) do { uint64_t u_ = (a) ^ (b), c_ = (c); "
        "h = ((a) & (b)) | (u_ & c_); l = u_ ^ c_; } while (0)",
        "static void count_csa(const uint64_t* x, uint64_t* p) {",
        "  uint64_t ones = 0, twos = 0, fours = 0, eights = 0, ta, tb, fa, fb, ea, eb, sx;",
        f"  memset(p, 0, {planes} * sizeof(uint64_t));",
        "  int u = 0;",
        f"  for (; u + 16 <= {grp}; u += 16) {{",
        "    const uint64_t* y = x + u;",
        "    CSA(ta, ones, ones, y[0], y[1]); CSA(tb, ones, ones, y[2], y[3]); CSA(fa, twos, twos, ta, tb);",
        "    CSA(ta, ones, ones, y[4], y[5]); CSA(tb, ones, ones, y[6], y[7]); CSA(fb, twos, twos, ta, tb);",
        "    CSA(ea, fours, fours, fa, fb);",
        "    CSA(ta, ones, ones, y[8], y[9]); CSA(tb, ones, ones, y[10], y[11]); CSA(fa, twos, twos, ta, tb);",
        "    CSA(ta, ones, ones, y[12], y[13]); CSA(tb, ones, ones, y[14], y[15]); CSA(fb, twos, twos, ta, tb);",
        "    CSA(eb, fours, fours, fa, fb);",
        "    CSA(sx, eights, eights, ea, eb);",
        "    ripple(p, 4, sx);",
        "  }",
        "  p[0] = ones; p[1] = twos; p[2] = fours; p[3] = eights;",
        f"  for (; u < {grp}; ++u) ripple(p, 0, x[u]);",
        "}"]
    for fn, csa in (("logic_net", False), ("logic_net_csa", True)):
        lines += [
            f"void {fn}(const float* x, long n, float* y, float tau) {{",
            "  for (long r0 = 0; r0 < n; r0 += 64) {",
            "    long rows = n - r0 < 64 ? n - r0 : 64;",
            "    memset(v0, 0, sizeof v0);",
            "    for (long s = 0; s < rows; ++s) {",
            f"      const float* row = x + (r0 + s) * {n_in};",
            f"      for (int f = 0; f < {n_in}; ++f) v0[f] |= (uint64_t)(row[f] != 0.0f) << s;",
            "    }"]
        lines += [f"    {name}();" for name in chunks]
        lines += [f"    for (int c = 0; c < {k}; ++c) {{",
                  f"      uint64_t p[{planes}] = {{0}};"]
        if csa:
            lines.append(f"      count_csa(v{last} + c * {grp}, p);")
        else:
            lines.append(f"      for (int u = 0; u < {grp}; ++u) ripple(p, 0, v{last}[c * {grp} + u]);")
        lines += [
            "      for (long s = 0; s < rows; ++s) {",
            "        long cnt = 0;",
            f"        for (int q = 0; q < {planes}; ++q) cnt |= (long)((p[q] >> s) & 1) << q;",
            f"        y[(r0 + s) * {k} + c] = (float)cnt / tau;",
            "      }", "    }", "  }", "}"]
    return "\n".join(lines) + "\n"


# difflogic compiles its generated C with -march=native; so do we (for both entry points).
C_FLAGS = ["-O3", "-march=native"]


def compile_c(src: str, tmp: str) -> ctypes.CDLL:
    c, so = os.path.join(tmp, "net.c"), os.path.join(tmp, "net.so")
    with open(c, "w") as f:
        f.write(src)
    subprocess.run(["gcc", *C_FLAGS, "-shared", "-fPIC", "-o", so, c], check=True)
    lib = ctypes.CDLL(so)
    for fn in (lib.logic_net, lib.logic_net_csa):
        fn.argtypes = [ctypes.c_void_p, ctypes.c_long, ctypes.c_void_p, ctypes.c_float]
        fn.restype = None
    return lib


def c_runner(fn, x: np.ndarray, k: int, tau: float, threads: int):
    y = np.empty((x.shape[0], k), np.float32)
    # split on 64-sample boundaries; ctypes releases the GIL during the call
    step = -(-x.shape[0] // threads // 64) * 64 or 64
    parts = [(i, min(i + step, x.shape[0])) for i in range(0, x.shape[0], step)]
    pool = ThreadPoolExecutor(threads) if len(parts) > 1 else None  # one part: call directly

    def one(p):
        b, e = p
        fn(x[b:].ctypes.data, e - b, y[b:].ctypes.data, tau)

    def run():
        if pool is None:
            for p in parts:
                one(p)
        else:
            list(pool.map(one, parts))
        return y
    return run


def run(ctx: Context) -> list[Row]:
    """The large batch is the throughput goal; batches of 1 and 64 show serving latency."""
    rows: list[Row] = []
    n_in, k, tau = 784, 10, 10.0
    sizes = [2000] * 4 if ctx.quick else [8000] * 4
    batches = [1, 1024] if ctx.quick else [1, 64, 4096]
    ia, ib, g = random_net(n_in, sizes)
    model = onnx_model(n_in, sizes, ia, ib, g, k, tau)
    tia, tib, tg = map(torch.from_numpy, (ia, ib, g))
    with tempfile.TemporaryDirectory() as tmp:
        lib = compile_c(c_source(n_in, sizes, ia, ib, g, k), tmp)
        for batch in batches:
            x = (np.random.default_rng(1).random((batch, n_in)) > 0.5).astype(np.float32)
            tx = torch.from_numpy(x)
            ref = torch.ops.steport.logic_net(tx, tia, tib, tg, sizes, k, tau).numpy()
            case = f"784-{len(sizes)}x{sizes[0]}-10 N={batch}"
            for t in ctx.threads:
                rows += _run_case(ctx, case, t, lib, model, x, ref, k, tau,
                                  lambda: torch.ops.steport.logic_net(tx, tia, tib, tg, sizes, k, tau))
    return rows


def _run_case(ctx, case, t, lib, model, x, ref, k, tau, torch_fn) -> list[Row]:
    rows, batch = [], x.shape[0]
    for impl, fn in (("c-gcc-O3", lib.logic_net), ("c-gcc-O3-csa", lib.logic_net_csa)):
        c_run = c_runner(fn, x, k, tau, t)
        assert np.array_equal(c_run(), ref), f"{impl} disagrees with the PyTorch op"
        rows.append(Row("logic", case, impl, t, timeit(c_run, ctx), items=batch,
                        baseline=None if impl == "c-gcc-O3" else "c-gcc-O3"))
    sess = session(model, t)
    assert np.array_equal(sess.run(None, {"X": x})[0], ref), "ORT disagrees"
    rows.append(Row("logic", case, "steport-ort", t, time_session(sess, {"X": x}, ctx),
                    baseline="c-gcc-O3", items=batch))
    with torch_threads(t):
        sec = timeit(torch_fn, ctx)
    rows.append(Row("logic", case, "torch-discrete", t, sec, baseline="c-gcc-O3", items=batch))
    return rows
