"""The main job: train each recipe on digits, export to ONNX, verify PyTorch vs ORT (with
steport's kernels and with the fallback bodies), measure accuracy and latency in ORT, and
write a markdown report."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np


def _ort_accuracy_and_latency(onnx_path: Path, data) -> dict:
    import steport

    sess = steport.session(str(onnx_path))
    name = sess.get_inputs()[0].name
    x, y = data.test.x.numpy(), data.test.y.numpy()
    pred = sess.run(None, {name: x})[0].argmax(1)
    one = x[:1]
    for _ in range(5):
        sess.run(None, {name: one})
    times = []
    for _ in range(50):
        t0 = time.perf_counter()
        sess.run(None, {name: one})
        times.append(time.perf_counter() - t0)
    return {"ort_accuracy": float((pred == y).mean()),
            "latency_ms_b1_p50": float(np.median(times) * 1e3)}


def run_demo(out_dir: str, recipes: list[str] | None = None, epochs: int | None = None,
             progress: bool = True) -> int:
    from steport.export.cli import export_checkpoint
    from steport.export.verify import verify

    from .cli import train_recipe
    from .data import load_dataset
    from .recipes import load_recipe, recipe_names

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, ok = [], True
    for name in recipes or recipe_names():
        recipe = load_recipe(name)
        print(f"== {name}: training", flush=True)
        ckpt, metrics = train_recipe(recipe, out, epochs=epochs, progress=progress)
        onnx_path = out / f"{name}.onnx"
        export_checkpoint(str(ckpt), str(onnx_path))
        report = verify(onnx_path, ckpt, batch=128)
        print(report.table(), flush=True)
        data = load_dataset(recipe["data"]["name"], **recipe["data"]["kwargs"])
        row = {"recipe": name, "family": recipe.get("family", ""),
               "torch_accuracy": metrics["test_accuracy"],
               **_ort_accuracy_and_latency(onnx_path, data),
               "onnx_bytes": onnx_path.stat().st_size, "verify": report.ok,
               "train_seconds": metrics["train_seconds"]}
        rows.append(row)
        ok &= report.ok
    (out / "report.json").write_text(json.dumps(rows, indent=2))
    md = ["| recipe | family | PyTorch acc | ORT acc | verify | ONNX bytes | latency b=1 (ms) | train (s) |",
          "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['recipe']} | {r['family']} | {r['torch_accuracy']:.4f} | "
                  f"{r['ort_accuracy']:.4f} | {'pass' if r['verify'] else 'FAIL'} | "
                  f"{r['onnx_bytes']} | {r['latency_ms_b1_p50']:.3f} | {r['train_seconds']:.1f} |")
    (out / "report.md").write_text("# steport demo\n\n" + "\n".join(md) + "\n")
    print("\n".join(md))
    print(f"report: {out / 'report.md'}")
    return 0 if ok else 1
