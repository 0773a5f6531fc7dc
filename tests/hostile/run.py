"""Run one op's hostile cases in THIS process: `python -m tests.hostile.run CASES.pkl`.

A child of tests/hostile/test_hostile.py, so that a crash (signal), a sanitizer abort or a
hang costs only the child and is attributed to the case printed last on stderr. The
address space is capped first (RLIMIT_AS, `--max-gib`), so a case that tries to allocate
far beyond its inputs fails instead of swapping a shared machine; ORT's CPU arena is
capped at 1 GiB as in tests/fuzz. One JSON line per case on stdout: {"case", "outcome",
"detail"}; outcome "ok:<how>" or "FAIL:<why>". Imports only numpy, onnxruntime, steport."""
from __future__ import annotations

import argparse
import faulthandler
import json
import os
import pickle
import resource
import shutil
import sys
import tempfile


def _cap_address_space(gib: float) -> None:
    if "libasan" in os.environ.get("LD_PRELOAD", ""):
        return  # ASan reserves terabytes of shadow memory up front; the arena cap remains
    limit = int(gib * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", help="pickle of a list of tests.hostile.cases.HostileCase fields")
    ap.add_argument("--max-gib", type=float, default=6.0, help="address-space cap (RLIMIT_AS)")
    ap.add_argument("--hang-after", type=float, default=240.0)
    args = ap.parse_args(argv)
    faulthandler.enable()
    faulthandler.dump_traceback_later(args.hang_after, exit=True)
    _cap_address_space(args.max_gib)

    import numpy as np
    import onnxruntime as ort

    import steport

    mem = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                            ort.OrtMemType.DEFAULT)
    ort.create_and_register_allocator(mem, ort.OrtArenaCfg({"max_mem": 1 << 30}))

    def options(with_lib: bool):
        so = ort.SessionOptions()
        so.add_session_config_entry("session.use_env_allocators", "1")
        so.intra_op_num_threads = 2 if with_lib else 1
        so.log_severity_level = 4  # these cases are meant to fail: keep ORT's log quiet
        if with_lib:
            so.register_custom_ops_library(steport.library_path())
        return so

    def model_source(c: dict):
        """The model's bytes, or the path of a file in a fresh folder beside its files."""
        if not c["files"]:
            return c["model"]
        folder = tempfile.mkdtemp(dir=scratch)
        for name, data in c["files"].items():
            with open(os.path.join(folder, name), "wb") as f:
                f.write(data)
        path = os.path.join(folder, "model.onnx")
        with open(path, "wb") as f:
            f.write(c["model"])
        return path

    def run_case(c: dict):
        """-> ("error", message) | ("refused", message) | ("ran", outputs)."""
        try:
            if c["runner"] == "steport":
                sess = steport.session(model_source(c), sess_options=options(False))
            else:
                sess = ort.InferenceSession(model_source(c), options(True),
                                            providers=["CPUExecutionProvider"])
            return "ran", sess.run(None, c["feeds"])
        except ValueError as e:
            if c["runner"] == "steport" and "steport registry" in str(e):
                return "refused", str(e)
            raise
        except Exception as e:  # noqa: BLE001 - only onnxruntime's own errors are clean
            if type(e).__module__.startswith("onnxruntime"):
                return "error", str(e)
            raise

    def oracle(c: dict):
        sess = ort.InferenceSession(c["oracle"], options(False), providers=["CPUExecutionProvider"])
        return sess.run(None, c["feeds"])

    def same(a, b) -> str:
        for x, y in zip(a, b):
            if x.shape != y.shape or x.dtype != y.dtype:
                return f"{x.dtype}{list(x.shape)} vs oracle {y.dtype}{list(y.shape)}"
            if not np.array_equal(x, y, equal_nan=True):
                return f"values differ (max |diff| {np.nanmax(np.abs(x.astype(float) - y)):g})"
        return ""

    def judge(c: dict) -> tuple[str, str]:
        got, detail = run_case(c)
        expect = c["expect"]
        if got in ("error", "refused"):
            first = detail.strip().splitlines()[0] if detail.strip() else ""
            if expect in ("error", "either", "runs") and got == "error" or \
                    expect == "refused" and got == "refused":
                if c["match"] and c["match"] not in detail:
                    return "FAIL:unclear-error", f"wanted {c['match']!r} in: {first[:300]}"
                return f"ok:{got}", first[:300]
            return f"FAIL:unexpected-{got}", first[:300]
        if expect in ("error", "refused"):
            return "FAIL:ran", "ran cleanly but must be refused (silent acceptance)"
        if expect == "runs":
            return "ok:ran", ""
        if c["expected"] is not None:
            diff = same(detail, c["expected"])
            return ("FAIL:mismatch-reference", diff) if diff else ("ok:matches-reference", "")
        try:
            want = oracle(c)
        except Exception as e:  # noqa: BLE001
            # the fallback body has no answer for some zero-size tensors (docs/hardening.md
            # §1): then only an empty result is acceptable
            if type(e).__module__.startswith("onnxruntime") and all(x.size == 0 for x in detail):
                return "ok:empty-no-oracle", ""
            return "FAIL:oracle-error", f"{type(e).__name__}: {e}"[:300]
        diff = same(detail, want)
        return ("FAIL:mismatch", diff) if diff else ("ok:matches-oracle", "")

    with open(args.cases, "rb") as f:
        cases = pickle.load(f)
    scratch = tempfile.mkdtemp(prefix="steport-hostile-")
    for i, c in enumerate(cases):
        print(f"case {i}: {c['label']}", file=sys.stderr, flush=True)
        try:
            outcome, detail = judge(c)
        except Exception as e:  # noqa: BLE001 - a non-ORT exception is itself a failure
            outcome, detail = "FAIL:non-ort-exception", f"{type(e).__name__}: {e}"[:300]
        print(json.dumps({"case": c["label"], "outcome": outcome, "detail": detail}), flush=True)
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
