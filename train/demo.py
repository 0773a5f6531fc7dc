"""The main job: train every recipe, export each to ONNX, verify PyTorch vs ORT (with
steport's kernels and with the fallback bodies), measure accuracy and latency in ORT, and
write a report (markdown table, JSON, PNG plots). A recipe that fails is reported with the
stage and the error; the others still run; the exit status is non-zero at the end."""
from __future__ import annotations

import json
import time
import traceback
from pathlib import Path

import numpy as np


def _ort_accuracy_and_latency(onnx_path: Path, data, runs: int = 50) -> dict:
    import steport

    sess = steport.session(str(onnx_path), threads=1)
    name = sess.get_inputs()[0].name
    x, y = data.test.x.numpy(), data.test.y.numpy()
    pred = np.concatenate([sess.run(None, {name: x[i:i + 256]})[0].argmax(1)
                           for i in range(0, len(x), 256)])

    def p50(batch: np.ndarray, n: int) -> float:
        for _ in range(3):
            sess.run(None, {name: batch})
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            sess.run(None, {name: batch})
            times.append(time.perf_counter() - t0)
        return float(np.median(times) * 1e3)

    return {"ort_accuracy": float((pred == y).mean()),
            "latency_ms_b1_p50": p50(x[:1], runs),
            "latency_ms_b64_p50": p50(x[:64], max(runs // 5, 5))}


def _multiplier_error(recipe: dict) -> tuple[str, float] | None:
    """("MRED%", value) of an approx recipe's multiplier (the exact product when it names
    none); None for other families."""
    if recipe.get("family") != "approx":
        return None
    from .multipliers import get_multiplier

    name = (recipe.get("model", {}).get("kwargs") or {}).get("multiplier") or "exact"
    if not isinstance(name, str):
        return None  # a LUT given inline: no name to report
    return "MRED%", float(get_multiplier(name).metrics()["MRED%"])


def _plots(rows: list[dict], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r.get("status") == "ok"]
    if not done:
        return []
    files = []
    names = [r["recipe"] for r in done]
    fams = sorted({r["family"] or "-" for r in done})
    colors = {f: plt.cm.tab10(i % 10) for i, f in enumerate(fams)}
    c = [colors[r["family"] or "-"] for r in done]
    xs = np.arange(len(done))

    def finish(fig, ax, fname, ylabel, title):
        ax.set_xticks(xs, names, rotation=30, ha="right")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        handles = [plt.Rectangle((0, 0), 1, 1, color=colors[f]) for f in fams]
        ax.legend(handles, fams, title="family", fontsize=8, loc="upper left",
                  bbox_to_anchor=(1.01, 1))
        fig.tight_layout()
        fig.savefig(out / fname, dpi=100)
        plt.close(fig)
        files.append(fname)

    fig, ax = plt.subplots(figsize=(max(5, len(done) * 0.9), 3.5))
    ax.bar(xs - 0.2, [r["torch_accuracy"] for r in done], 0.4, color=c, edgecolor="k")
    ax.bar(xs + 0.2, [r["ort_accuracy"] for r in done], 0.4, color=c, hatch="//", edgecolor="k")
    ax.set_ylim(0, 1)
    finish(fig, ax, "accuracy.png", "test accuracy",
           "accuracy (plain: PyTorch, hatched: ORT)")

    fig, ax = plt.subplots(figsize=(max(5, len(done) * 0.9), 3.5))
    ax.bar(xs, [r["onnx_bytes"] / 1024 for r in done], color=c)
    finish(fig, ax, "model_size.png", "ONNX file size (KiB)", "model size")

    fig, ax = plt.subplots(figsize=(max(5, len(done) * 0.9), 3.5))
    ax.bar(xs - 0.2, [r["latency_ms_b1_p50"] for r in done], 0.4, color=c, edgecolor="k")
    ax.bar(xs + 0.2, [r["latency_ms_b64_p50"] / 64 for r in done], 0.4, color=c, hatch="//",
           edgecolor="k")
    finish(fig, ax, "latency.png", "ms per sample (p50)",
           "ORT, 1 thread (plain: batch 1, hatched: batch 64)")

    pts = [r for r in done if r.get("multiplier_error") is not None]
    if pts:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for r in pts:
            ax.scatter(r["multiplier_error"], r["ort_accuracy"], color=colors[r["family"] or "-"])
            ax.annotate(r["multiplier"], (r["multiplier_error"], r["ort_accuracy"]), fontsize=7)
        ax.set_xlabel(f"multiplier error ({pts[0]['multiplier_metric']})")
        ax.set_ylabel("ORT test accuracy")
        ax.set_title("approximate multiplier error vs accuracy")
        fig.tight_layout()
        fig.savefig(out / "multiplier_error.png", dpi=100)
        plt.close(fig)
        files.append("multiplier_error.png")
    return files


def _markdown(rows: list[dict], plots: list[str]) -> str:
    md = ["# steport demo", "",
          "| recipe | family | data | PyTorch acc | ORT acc | verify | params | ONNX KiB | "
          "latency b=1 (ms) | latency b=64 (ms) | train (s) |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "ok":
            md.append(f"| {r['recipe']} | {r['family']} | {r.get('data', '')} | "
                      f"FAILED at {r['status']}: {r['error']} | | | | | | | |")
            continue
        md.append(f"| {r['recipe']} | {r['family']} | {r['data']} | {r['torch_accuracy']:.4f} | "
                  f"{r['ort_accuracy']:.4f} | {'pass' if r['verify'] else 'FAIL'} | "
                  f"{r['parameters']} | {r['onnx_bytes'] / 1024:.1f} | "
                  f"{r['latency_ms_b1_p50']:.3f} | {r['latency_ms_b64_p50']:.3f} | "
                  f"{r['train_seconds']:.1f} |")
    md += ["", "Accuracy on the data set's test split; ORT runs with libsteport_ops (1 thread); "
           "verify = PyTorch vs ORT+steport vs stock ORT (fallback bodies).", ""]
    md += [f"![{p[:-4]}]({p})" for p in plots]
    return "\n".join(md) + "\n"


def run_recipe(name: str, out: Path, epochs: int | None, progress: bool) -> dict:
    """Train, export, verify, measure one recipe. Never raises: failures land in the row."""
    from steport.export.cli import export_checkpoint
    from steport.export.verify import verify

    from .cli import train_recipe
    from .data import load_dataset
    from .recipes import load_recipe

    row: dict = {"recipe": Path(name).stem, "family": "", "status": "load"}
    try:
        recipe = load_recipe(name)
        row.update(recipe=recipe["name"], family=recipe.get("family", ""),
                   data=recipe["data"]["name"])
        row["status"] = "train"
        ckpt, metrics = train_recipe(recipe, out, epochs=epochs, progress=progress)
        row.update(torch_accuracy=metrics["test_accuracy"], parameters=metrics["parameters"],
                   train_seconds=metrics["train_seconds"], epochs=metrics["epochs"])
        row["status"] = "export"
        onnx_path = out / f"{recipe['name']}.onnx"
        export_checkpoint(str(ckpt), str(onnx_path))
        row["onnx_bytes"] = onnx_path.stat().st_size
        row["status"] = "verify"
        report = verify(onnx_path, ckpt, batch=128)
        print(report.table(), flush=True)
        row["verify"] = report.ok
        row["status"] = "measure"
        data = load_dataset(recipe["data"]["name"], **recipe["data"]["kwargs"])
        row.update(_ort_accuracy_and_latency(onnx_path, data))
        me = _multiplier_error(recipe)
        if me:
            row.update(multiplier=recipe["model"]["kwargs"].get("multiplier") or "exact",
                       multiplier_metric=me[0], multiplier_error=me[1])
        row["status"] = "ok"
    except Exception as e:  # noqa: BLE001 - reported, and the demo exits non-zero
        row["error"] = " ".join(f"{type(e).__name__}: {e}".split())[:300]
        row["traceback"] = traceback.format_exc()
        print(f"== {name}: FAILED at {row['status']}: {row['error']}", flush=True)
    return row


def run_demo(out_dir: str, recipes: list[str] | None = None, epochs: int | None = None,
             progress: bool = True) -> int:
    from .recipes import recipe_names

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = []
    for name in recipes or recipe_names():
        print(f"== {name}", flush=True)
        rows.append(run_recipe(name, out, epochs, progress))
    try:
        plots = _plots(rows, out)
    except Exception as e:  # noqa: BLE001 - a plotting problem must not hide the table
        print(f"plots failed: {type(e).__name__}: {e}", flush=True)
        plots = []
    (out / "report.json").write_text(json.dumps(rows, indent=2))
    md = _markdown(rows, plots)
    (out / "report.md").write_text(md)
    print(md)
    bad = [r["recipe"] for r in rows if r["status"] != "ok" or not r.get("verify")]
    print(f"report: {out / 'report.md'} ({time.perf_counter() - t0:.0f}s)")
    if bad:
        print(f"demo: {len(bad)} recipe(s) failed or did not verify: {', '.join(bad)}")
    return 1 if bad else 0
