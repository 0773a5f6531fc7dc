"""Run benchmarks side by side and report ratios.

    steport bench [--all | --only quant,binary] [--quick] [--threads 1,2] [--json out.json]
    (or: python -m steport.bench ...)

Each bench module (bench/<name>.py with ``run(ctx)``) times all implementations of a case in
this one process; ratios are baseline_seconds / impl_seconds (> 1 means faster than the
baseline). Prints a table, writes JSON with the machine description."""
from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import json
import os
import platform
import sys
from pathlib import Path


from .common import Context, Row

MODULES = ["quant", "binary", "approx", "logic", "models", "serving"]


def machine() -> dict:
    import onnxruntime as ort

    import steport
    from steport.ort_ops import build_info

    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "onnxruntime": ort.__version__, "steport": steport.__version__,
            "steport_build": build_info(), "isa_override": os.environ.get("STEPORT_ISA"),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def with_ratios(rows: list[Row]) -> list[dict]:
    out = []
    base = {(r.bench, r.case, r.threads): r.seconds for r in rows if r.baseline is None}
    for r in rows:
        d = r.to_dict()
        if r.baseline is not None:
            b = next((x.seconds for x in rows if (x.bench, x.case, x.threads, x.impl) ==
                      (r.bench, r.case, r.threads, r.baseline)), None)
            d["speedup_vs_baseline"] = (b / r.seconds) if b else None
        else:
            d["speedup_vs_baseline"] = 1.0 if (r.bench, r.case, r.threads) in base else None
        out.append(d)
    return out


def table(rows: list[dict]) -> str:
    lines = [f"{'bench':12s} {'case':34s} {'thr':>3s} {'impl':26s} {'time':>11s} {'vs baseline':>12s}"
             f" {'vs ORT int8':>12s}"]
    for d in rows:
        t = d["seconds"]
        ts = f"{t * 1e3:8.3f} ms" if t >= 1e-4 else f"{t * 1e6:8.2f} us"
        sp = d.get("speedup_vs_baseline")
        sps = "baseline" if d.get("baseline") is None else (f"{sp:9.2f}x" if sp else "-")
        v8 = d.get("extra", {}).get("vs_ort_int8")
        lines.append(f"{d['bench']:12s} {d['case'][:34]:34s} {d['threads']:3d} {d['impl'][:26]:26s} "
                     f"{ts:>11s} {sps:>12s} {f'{v8:9.2f}x' if v8 else '':>12s}")
    return "\n".join(lines)


def markdown(rows: list[dict], mach: dict) -> str:
    """One table per bench: case, threads, impl, time, speedup vs the case's baseline."""
    out = [f"Machine: {mach['cpu']} ({mach['cores']} cores), onnxruntime {mach['onnxruntime']}, "
           f"steport {mach['steport']} (best ISA {mach['steport_build']['best_isa']}), "
           f"{mach['date']}.", ""]
    for bench in dict.fromkeys(d["bench"] for d in rows):
        v8col = any("vs_ort_int8" in r.get("extra", {}) for r in rows if r["bench"] == bench)
        out += [f"### {bench}", "", "| case | threads | impl | time per call | vs baseline |"
                + (" vs ORT int8 |" if v8col else ""), "|---|---|---|---|---|" + ("---|" if v8col else "")]
        for d in (r for r in rows if r["bench"] == bench):
            t = d["seconds"]
            ts = f"{t * 1e3:.3f} ms" if t >= 1e-4 else f"{t * 1e6:.2f} µs"
            sp = d.get("speedup_vs_baseline")
            sps = f"baseline ({d['impl']})" if d.get("baseline") is None else \
                (f"**{sp:.2f}×**" if d["impl"] == "steport" and sp else (f"{sp:.2f}×" if sp else "-"))
            v8 = d.get("extra", {}).get("vs_ort_int8")
            out.append(f"| {d['case']} | {d['threads']} | {d['impl']} | {ts} | {sps} |"
                       + ((f" {v8:.2f}× |" if v8 else " - |") if v8col else ""))
        out.append("")
    return "\n".join(out)


def plot(rows: list[dict], path: Path) -> None:
    """Speedup of steport over each case's baseline (log scale), one bar per case/threads."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [d for d in rows if d["impl"] == "steport" and d.get("speedup_vs_baseline")]
    if not pts:
        return
    fig, ax = plt.subplots(figsize=(max(6, 0.32 * len(pts)), 4))
    labels = [f"{d['bench']} {d['case']} t{d['threads']}" for d in pts]
    ax.bar(range(len(pts)), [d["speedup_vs_baseline"] for d in pts],
           color=["tab:green" if d["speedup_vs_baseline"] >= 1 else "tab:red" for d in pts])
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_yscale("log")
    ax.set_ylabel("speedup vs baseline (x)")
    ax.set_xticks(range(len(pts)), labels, rotation=90, fontsize=6)
    ax.set_title("steport kernels vs baselines (same run)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _thread_counts(text: str) -> str:
    """argparse check of --threads: a comma-separated list of counts in [1, 1024]."""
    try:
        counts = [int(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not all(1 <= c <= 1024 for c in counts):
        raise argparse.ArgumentTypeError(f"thread counts must be in [1, 1024], got {text}")
    return text


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--all", action="store_true", help="every bench module (the default)")
    ap.add_argument("--quick", action="store_true", help="small cases, few repeats (smoke)")
    ap.add_argument("--only", help=f"comma-separated bench modules from {MODULES}")
    ap.add_argument("--threads", default="1,2", type=_thread_counts,
                    help="intra-op thread counts, e.g. 1,2")
    ap.add_argument("--json", default="reports/bench.json", help="where to write results")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    return run_from_args(ap.parse_args(argv))


def run_from_args(args) -> int:
    if args.only:
        unknown = set(args.only.split(",")) - set(MODULES)
        if unknown:
            raise ValueError(f"unknown bench module(s) {sorted(unknown)}; known: {MODULES}")
    ctx = Context(quick=args.quick, threads=tuple(int(t) for t in args.threads.split(",")))
    names = args.only.split(",") if args.only else MODULES
    rows: list[Row] = []
    for name in names:
        try:
            mod = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"{__package__}.{name}" and not args.only:
                continue  # not written yet
            raise
        print(f"# {name}", file=sys.stderr, flush=True)
        rows.extend(mod.run(ctx))
    result = with_ratios(rows)
    print(table(result))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    mach = machine()
    out.write_text(json.dumps({"machine": mach, "quick": args.quick, "rows": result}, indent=2))
    out.with_suffix(".md").write_text(markdown(result, mach))
    plot(result, out.with_suffix(".png"))
    print(f"wrote {out}, {out.with_suffix('.md')}, {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
