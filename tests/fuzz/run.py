"""Fuzz one op in THIS process: `python -m tests.fuzz.run OP [--valid N] [--malformed N]`.

Meant to run as a child of tests/fuzz/test_fuzz.py, so that a segfault, an abort (ASan) or a
hang kills only the child and fails the test with the last case printed. Each case is echoed
to stderr before it runs; the last stdout line is a JSON summary of what happened:
  valid:     cases where ORT+library == fallback body == PyTorch/numpy reference (bit-exact)
  rejected:  malformed cases that gave a clean onnxruntime exception
  accepted:  malformed cases that ran and gave the fallback body's result
  lib_only:  malformed cases the library ran but the fallback body could not (or was not
             run: huge declared dims), output shape still checked."""
from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
from collections import Counter

import numpy as np
import onnxruntime as ort
from hypothesis import HealthCheck, Phase, given, settings

from steport.ort_ops import build_info, library_path

from .cases import (HUGE, REFERENCE, VALID, Case, build_model, explicit_cases, has_empty,
                    malformed_case)

_ALL_ISAS = ["portable", "avx2", "avx512"]
ISAS = _ALL_ISAS[: _ALL_ISAS.index(build_info()["best_isa"]) + 1]
COUNTS: Counter = Counter()
_N = [0]


ARENA_MAX_BYTES = 1 << 30


def _cap_ort_memory() -> None:
    """One shared CPU arena capped at 1 GiB for every session here: an output far beyond
    memory then fails inside ORT's allocator as a clean error, before any malloc (ASan's
    operator new aborts on such a request instead of throwing, and a 14 GB output that
    the OS would grant must not be written on a shared machine)."""
    mem = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
    ort.create_and_register_allocator(mem, ort.OrtArenaCfg({"max_mem": ARENA_MAX_BYTES}))


def _session(model, with_lib: bool):
    so = ort.SessionOptions()
    so.add_session_config_entry("session.use_env_allocators", "1")
    so.intra_op_num_threads = 2 if with_lib else 1
    so.log_severity_level = 4  # our cases are meant to fail; keep ORT's own log quiet
    if with_lib:
        # cycle through the CPU's SIMD paths (STEPORT_ISA is read at kernel creation)
        os.environ["STEPORT_ISA"] = ISAS[_N[0] % len(ISAS)]
        so.register_custom_ops_library(library_path())
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _announce(case: Case) -> None:
    _N[0] += 1
    print(f"case {_N[0]}: {case.describe()}", file=sys.stderr, flush=True)


def _is_ort_error(e: BaseException) -> bool:
    return type(e).__module__.startswith("onnxruntime")


def _same(a: np.ndarray, b: np.ndarray, what: str) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype, f"{what}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
    np.testing.assert_array_equal(a, b, err_msg=what)


def check_valid(case: Case) -> None:
    _announce(case)
    model = build_model(case, check=case.fallback_ok)
    got = _session(model, True).run(None, case.feeds)[0]
    _same(got, case.expected, f"library vs reference: {case.describe()}")
    if not case.fallback_ok:
        COUNTS["valid_lib_only"] += 1
        return
    fb = _session(model, False).run(None, case.feeds)[0]
    _same(fb, case.expected, f"fallback vs reference: {case.describe()}")
    COUNTS["valid"] += 1


def _small(case: Case) -> bool:
    arrays = list(case.feeds.values()) + [v for v in case.inits.values() if isinstance(v, np.ndarray)]
    return not case.declared and all(HUGE not in a.shape for a in arrays)


def check_malformed(case: Case) -> None:
    _announce(case)
    try:
        model = build_model(case, check=False)
    except Exception:  # the mutation made something onnx itself cannot express
        COUNTS["unbuildable"] += 1
        return
    try:
        got = _session(model, True).run(None, case.feeds)[0]
    except Exception as e:  # noqa: BLE001 - anything but an ORT error is a failure
        assert _is_ort_error(e), f"non-ORT exception {type(e)!r}: {e} for {case.describe()}"
        COUNTS["rejected"] += 1
        return
    if not _small(case) or got.size > 1 << 20:
        COUNTS["lib_only"] += 1  # huge declared dims: no oracle runs these; it ran cleanly
        return
    if has_empty(case):  # the fallback body is no oracle on empty tensors: PyTorch is
        try:
            ref = REFERENCE[case.spec.name](case)
        except (ValueError, RuntimeError, TypeError, IndexError):
            COUNTS["lib_only"] += 1  # the torch op validates more strictly; ran cleanly
            return
        _same(got, ref, f"library vs PyTorch on accepted malformed case {case.describe()}")
        COUNTS["accepted"] += 1
        return
    try:
        fb = _session(model, False).run(None, case.feeds)[0]
    except Exception as e:  # noqa: BLE001
        assert _is_ort_error(e), f"fallback raised {type(e)!r}: {e}"
        raise AssertionError(f"library accepted what the fallback rejects ({e}): {case.describe()}")
    _same(got, fb, f"library vs fallback on accepted malformed case {case.describe()}")
    COUNTS["accepted"] += 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("op", choices=sorted(VALID))
    p.add_argument("--valid", type=int, default=int(os.environ.get("STEPORT_FUZZ_VALID", 40)))
    p.add_argument("--malformed", type=int, default=int(os.environ.get("STEPORT_FUZZ_MALFORMED", 120)))
    p.add_argument("--seed", type=int, default=None, help="default: derandomized (CI)")
    p.add_argument("--hang-after", type=float, default=240.0,
                   help="dump every thread's stack and exit after this many seconds")
    args = p.parse_args(argv)
    faulthandler.enable()
    _cap_ort_memory()
    faulthandler.dump_traceback_later(args.hang_after, exit=True)
    common = dict(deadline=None, database=None, derandomize=args.seed is None,
                  phases=[Phase.explicit, Phase.generate, Phase.shrink],
                  suppress_health_check=list(HealthCheck), print_blob=True)

    @settings(max_examples=max(1, args.valid), **common)
    @given(VALID[args.op]())
    def valid(case):
        check_valid(case)

    @settings(max_examples=max(1, args.malformed), **common)
    @given(malformed_case(args.op))
    def malformed(case):
        check_malformed(case)

    if args.seed is not None:
        valid = __import__("hypothesis").seed(args.seed)(valid)
        malformed = __import__("hypothesis").seed(args.seed)(malformed)
    for case in explicit_cases(args.op):
        check_malformed(case)
    if args.valid:
        valid()
    if args.malformed:
        malformed()
    print(json.dumps({"op": args.op, "cases": _N[0], **COUNTS}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
