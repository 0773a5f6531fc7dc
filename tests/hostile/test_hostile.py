"""The hostile-model suite (docs/hardening.md §5): every case of tests/hostile/cases.py, for
every op, on every SIMD path this CPU has, each op and path in its own child process with
an address-space cap. A signal, a hang, a non-ORT exception, a silent acceptance or a
difference from the oracle fails the test and names the case."""
from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from steport.registry import OPS

from ..conftest import available_isas
from .cases import all_cases

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = float(os.environ.get("STEPORT_HOSTILE_TIMEOUT", 300))
MIN_CASES = 200


@pytest.fixture(scope="module")
def cases():
    return all_cases()


def test_suite_size_and_coverage(cases):
    total = sum(len(v) for v in cases.values())
    assert total >= MIN_CASES, f"only {total} hostile cases"
    assert sorted(cases) == sorted(op.name for op in OPS)
    for op, cs in cases.items():
        names = " ".join(c.name for c in cs)
        for what in ("in-if-branch", "shadowed-by-impostor-function", "inside-user-function",
                     "external-", "file-external-parent-dirs", "init-2^31-elements", "init-product-2^64", "declared-dim0",
                     "empty"):
            assert what in names, f"{op} has no {what!r} case"
        expects = Counter(c.expect for c in cs)
        assert expects["error"] >= 10 and expects["oracle"] >= 3, (op, expects)


def _child_env(isa: str) -> dict:
    env = dict(os.environ, STEPORT_ISA=isa)
    # under scripts/sanitize.sh an allocation beyond memory is a case under test: ASan must
    # return NULL (-> bad_alloc -> ORT error) instead of aborting
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":allocator_may_return_null=1"
    return env


@pytest.mark.parametrize("op", sorted(op.name for op in OPS))
def test_hostile_op_on_every_isa(op, cases, tmp_path):
    payload = [dict(label=c.label, model=c.model, feeds=c.feeds, expect=c.expect,
                    runner=c.runner, oracle=c.oracle, match=c.match,
                    expected=c.expected, files=c.files) for c in cases[op]]
    path = tmp_path / f"{op}.pkl"
    path.write_bytes(pickle.dumps(payload))
    # the ISA children run side by side: each is mostly session set-up, one core apiece
    procs = {isa: subprocess.Popen([sys.executable, "-m", "tests.hostile.run", str(path)],
                                   cwd=ROOT, env=_child_env(isa), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
             for isa in available_isas()}
    failures, counts = [], Counter()
    for isa, p in procs.items():
        try:
            out, err = p.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            pytest.fail(f"{op} on {isa}: hung for {TIMEOUT_S}s; last cases:\n{err[-2000:]}")
        tail = "\n".join(err.splitlines()[-5:])
        if p.returncode < 0:
            pytest.fail(f"{op} on {isa}: child CRASHED with {signal.Signals(-p.returncode).name}"
                        f" at:\n{tail}")
        assert p.returncode == 0, f"{op} on {isa}: child failed (rc {p.returncode}):\n{err[-3000:]}"
        results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert len(results) == len(payload), f"{op} on {isa}: {len(results)} of {len(payload)} ran"
        for r in results:
            counts[r["outcome"]] += 1
            if not r["outcome"].startswith("ok"):
                failures.append(f"[{isa}] {r['case']}: {r['outcome']} {r['detail']}")
    print(f"hostile {op}: {len(payload)} cases x {len(procs)} ISAs: {dict(counts)}")
    assert not failures, f"{len(failures)} hostile case(s) failed:\n" + "\n".join(failures[:40])
