"""Property-based fuzzing of every registry op through ORT + libsteport_ops (see
docs/hardening.md). Each op runs in a child process (tests/fuzz/run.py) so that a crash,
a sanitizer abort or a hang fails the test with the case that caused it, instead of taking
pytest down. Sizes: STEPORT_FUZZ_VALID / STEPORT_FUZZ_MALFORMED examples per op."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from steport.registry import OPS

from .cases import VALID

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = float(os.environ.get("STEPORT_FUZZ_TIMEOUT", 300))


def test_every_registry_op_has_a_fuzzer():
    assert sorted(VALID) == sorted(op.name for op in OPS)


@pytest.mark.parametrize("op", sorted(VALID))
def test_fuzz_op(op):
    env = dict(os.environ)
    # Under scripts/sanitize.sh: an allocation beyond memory is a case under test (it must
    # become an ORT error), so ASan returns NULL / throws bad_alloc instead of aborting.
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":allocator_may_return_null=1"
    if "libasan" in env.get("LD_PRELOAD", ""):  # sanitizer job: ~3x slower, fewer examples
        env.setdefault("STEPORT_FUZZ_VALID", "15")
        env.setdefault("STEPORT_FUZZ_MALFORMED", "60")
    try:
        p = subprocess.run([sys.executable, "-m", "tests.fuzz.run", op], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        tail = (e.stderr or b"")[-3000:]
        pytest.fail(f"{op}: fuzz run hung for {TIMEOUT_S}s; last output:\n{tail!r}")
    tail = "\n".join(p.stderr.splitlines()[-40:])
    if p.returncode < 0:
        pytest.fail(f"{op}: fuzz child CRASHED with {signal.Signals(-p.returncode).name}; "
                    f"last cases:\n{tail}")
    assert p.returncode == 0, f"{op}: fuzz child failed (rc {p.returncode}):\n{tail}"
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"fuzz {json.dumps(summary)}")  # counts for docs/hardening.md (pytest -s shows them)
    assert summary["valid"] > 0 and summary.get("rejected", 0) > 0, summary
