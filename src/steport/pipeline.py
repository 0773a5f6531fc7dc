"""The main job: train every recipe of a data set, export each to ONNX, verify PyTorch vs
ORT (with steport's kernels and with the fallback bodies), measure accuracy and latency in
ORT, and write a report (markdown table, JSON, PNG plots). A recipe that fails is reported
with the stage and the error; the others still run; the exit status is non-zero at the end.

Each recipe's result row is persisted as OUT/results/<recipe>.json the moment it is
measured, and the report is rebuilt from every row present: running a subset of recipes
(``--recipes``) later, or on another day, merges into the same table. Each row records
when, on which CPU and with which versions it was measured.

Speed relative to float: when the data set's float baseline recipe (family ``float``) has
been exported into OUT, every other recipe is timed side by side with it and with ORT's own
int8 quantization of it (``quantize_static``), in one process, interleaved, so the ratios
compare like with like even on a busy machine."""
from __future__ import annotations

import datetime
import json
import platform
import time
import traceback
from pathlib import Path

import numpy as np

DEFAULT_DATA = "digits"
RESULTS = "results"  # OUT/results/<recipe>.json: one row per recipe


def _ort_accuracy(sess, x: np.ndarray, y: np.ndarray) -> float:
    name = sess.get_inputs()[0].name
    pred = np.concatenate([sess.run(None, {name: x[i:i + 256]})[0].argmax(1)
                           for i in range(0, len(x), 256)])
    return float((pred == y).mean())


def _p50_side_by_side(sessions: dict, batch: np.ndarray, runs: int) -> dict[str, float]:
    """Median ms per run of each session on ``batch``, the sessions interleaved run by run
    (load from other processes then hits all of them alike; ratios stay meaningful)."""
    feeds = {k: {s.get_inputs()[0].name: batch} for k, s in sessions.items()}
    for k, s in sessions.items():
        for _ in range(3):
            s.run(None, feeds[k])
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(runs):
        for k, s in sessions.items():
            t0 = time.perf_counter()
            s.run(None, feeds[k])
            times[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v) * 1e3) for k, v in times.items()}


def _ort_accuracy_and_latency(onnx_path: Path, data, runs: int = 50,
                              baseline: dict | None = None) -> dict:
    """ORT accuracy on the test split and p50 latency (1 thread) at batch 1 and 64; with
    ``baseline`` ({"fp32": path, "int8": path} of the float baseline), the baseline's two
    models are timed in the same loop and the speed ratios added (> 1: this model is
    faster)."""
    import steport

    sess = steport.session(str(onnx_path), threads=1)
    x, y = data.test.x.numpy(), data.test.y.numpy()
    row: dict = {"ort_accuracy": _ort_accuracy(sess, x, y)}
    sessions = {"self": sess}
    for k, path in (baseline or {}).items():
        sessions[k] = _stock_session(path)
    for b, n in ((1, runs), (64, max(runs // 5, 5))):
        t = _p50_side_by_side(sessions, np.ascontiguousarray(x[:b]), n)
        row[f"latency_ms_b{b}_p50"] = t["self"]
        for k in (baseline or {}):
            row[f"{k}_baseline_ms_b{b}_p50"] = t[k]
            row[f"speedup_vs_{k}_b{b}"] = t[k] / t["self"]
    return row


def _multiplier_error(recipe: dict) -> tuple[str, float] | None:
    """("MRED%", value) of an approx recipe's multiplier (the exact product when it names
    none); None for other families."""
    if recipe.get("family") != "approx":
        return None
    from steport.train.multipliers import get_multiplier

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


def _fmt(v, spec: str) -> str:
    return format(v, spec) if isinstance(v, (int, float)) else ""


def _markdown(rows: list[dict], plots: list[str], title: str = "steport demo",
              published: list[dict] | None = None) -> str:
    speed = any("speedup_vs_fp32_b1" in r or r.get("int8_accuracy") is not None for r in rows)
    head = ("| recipe | family | data | PyTorch acc | ORT acc | verify | params | ONNX KiB | "
            "latency b=1 (ms) | latency b=64 (ms) |")
    sep = "|---|---|---|---|---|---|---|---|---|---|"
    if speed:
        head += " × float b=1 | × float b=64 | × ORT int8 b=1 | × ORT int8 b=64 |"
        sep += "---|---|---|---|"
    head += " train (s) |"
    sep += "---|"
    dated = any(r.get("measured_at") for r in rows)
    if dated:
        head += " measured |"
        sep += "---|"
    md = [f"# {title}", "", head, sep]
    cpus: list[str] = []
    for r in rows:
        ncols = head.count("|") - 1
        if r["status"] != "ok":
            md.append(f"| {r['recipe']} | {r['family']} | {r.get('data', '')} | "
                      f"FAILED at {r['status']}: {r['error']} |" + " |" * (ncols - 4))
            continue
        acc = f"{r['torch_accuracy']:.4f}"
        if r.get("init_accuracy") is not None:
            acc += f" ({r['init_accuracy']:.4f} before retraining)"
        cells = [r["recipe"], r["family"], r["data"], acc,
                 f"{r['ort_accuracy']:.4f}", "pass" if r["verify"] else "FAIL",
                 str(r["parameters"]), f"{r['onnx_bytes'] / 1024:.1f}",
                 f"{r['latency_ms_b1_p50']:.3f}", f"{r['latency_ms_b64_p50']:.3f}"]
        if speed:
            cells += [_fmt(r.get(f"speedup_vs_{k}_b{b}"), ".2f")
                      for k in ("fp32", "int8") for b in (1, 64)]
        t = _fmt(r.get("train_seconds"), ".1f")
        if isinstance(r.get("train_cpu_seconds"), (int, float)):
            t += f" ({r['train_cpu_seconds']:.0f} CPU, {r.get('torch_threads', '?')} thr)"
        cells.append(t)
        if dated:
            cpu = r.get("cpu") or "?"
            if cpu not in cpus:
                cpus.append(cpu)
            cells.append(f"{r.get('measured_at', '')} (CPU {cpus.index(cpu) + 1})")
        md.append("| " + " | ".join(cells) + " |")
        if r.get("int8_accuracy") is not None:
            cells = [f"{r['recipe']} → ORT int8", "float (int8)", r["data"], "",
                     f"{r['int8_accuracy']:.4f}", "", "", f"{r['int8_bytes'] / 1024:.1f}",
                     _fmt(r.get("int8_ms_b1_p50"), ".3f"), _fmt(r.get("int8_ms_b64_p50"), ".3f")]
            if speed:
                cells += [_fmt(r.get(f"int8_speedup_vs_fp32_b{b}"), ".2f") for b in (1, 64)]
                cells += ["1.00", "1.00"]
            cells.append("")
            if dated:
                cells.append(f"{r.get('measured_at', '')} (CPU {cpus.index(cpu) + 1})")
            md.append("| " + " | ".join(cells) + " |")
    md += ["", "Accuracy on the data set's test split; ORT runs with libsteport_ops (1 thread); "
           "verify = PyTorch vs ORT+steport vs stock ORT (fallback bodies). train: wall "
           "seconds (and, where recorded, CPU seconds of the training process and its torch "
           "threads: the cost on an idle machine)."]
    if speed:
        md += ["× float / × ORT int8: the float baseline's p50 latency (fp32, and ORT's "
               "`quantize_static` int8 of it) divided by this model's, timed side by side in "
               "the same process (> 1: faster than the baseline)."]
    for i, cpu in enumerate(cpus):
        md.append(f"CPU {i + 1}: {cpu}.")
    md.append("")
    if published:
        md += ["## Published results on this data set", "",
               "| family | model | test accuracy | source |", "|---|---|---|---|"]
        md += [f"| {p['family']} | {p['model']} | {p['accuracy']} | {p['source']} |"
               for p in published]
        md.append("")
    md += [f"![{p[:-4]}]({p})" for p in plots]
    return "\n".join(md) + "\n"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _provenance() -> dict:
    import os

    import torch

    import steport

    return {"measured_at": datetime.datetime.now(datetime.timezone.utc).strftime(
                "%Y-%m-%d %H:%M UTC"),
            "cpu": f"{_cpu_name()}, {os.cpu_count()} logical cores",
            "steport_version": steport.__version__, "torch_version": torch.__version__}


def _reusable(ckpt_path: Path, recipe: dict, epochs: int | None) -> dict | None:
    """The checkpoint OUT/<name>.pt when it is a finished run of exactly this recipe (same
    model, data, train settings, init_from and epochs), else None."""
    from steport.train.checkpoint import CheckpointError, read_checkpoint

    if not ckpt_path.is_file():
        return None
    try:
        ck = read_checkpoint(ckpt_path)
    except CheckpointError:
        return None
    old = ck.get("recipe") or {}
    want_epochs = epochs if epochs is not None else (recipe.get("train") or {}).get("epochs", 10)
    same = all(old.get(k) == recipe.get(k) for k in ("model", "data", "train", "init_from"))
    done = (ck.get("train_state") or {}).get("epoch") == want_epochs
    if not (same and done and "train_seconds" in (ck.get("metrics") or {})):
        return None
    return ck


def _family_order(recipe_family: str) -> int:
    # the float baseline first: the other rows are timed against its exported model
    return 0 if recipe_family == "float" else 1


def select_recipes(data: str = DEFAULT_DATA) -> list[str]:
    """Built-in recipes training on ``data``, float baseline first. A recipe that does not
    load is kept, so the report shows its error."""
    from steport.train.data import canonical_dataset_name
    from steport.train.recipes import RecipeError, load_recipe, recipe_names

    want = canonical_dataset_name(data)
    picked = []
    for name in recipe_names():
        try:
            r = load_recipe(name)
        except RecipeError:
            picked.append((1, name))
            continue
        if r["data"]["name"] == want:
            # a recipe that starts from another one's weights (init_from) runs after it
            picked.append((_family_order(r.get("family", "")) + (2 if r.get("init_from") else 0),
                           name))
    return [n for _, n in sorted(picked)]


def baseline_models(out: Path, data_name: str) -> dict | None:
    """{"fp32": path, "int8": path} of the float baseline exported into OUT for this data
    set (written when the float recipe runs), or None."""
    for row in load_rows(out):
        if (row.get("family") == "float" and row.get("data") == data_name
                and row.get("status") == "ok" and row.get("int8_path")):
            fp32, int8 = out / f"{row['recipe']}.onnx", Path(row["int8_path"])
            if fp32.is_file() and int8.is_file():
                return {"fp32": fp32, "int8": int8}
    return None


def _int8_twin(onnx_path: Path, data, out_path: Path) -> Path:
    """ORT's own static int8 quantization of the float model (what a user would pick instead
    of a custom format; bench/models.py's recipe), calibrated on 4 x 64 training images."""
    from steport.bench.models import ort_int8

    x = data.train.x.numpy()
    ort_int8(onnx_path, out_path, [np.ascontiguousarray(x[i:i + 64]) for i in range(0, 256, 64)])
    return out_path


def _stock_session(path: Path):
    """The baselines run as a user would run them: stock ORT, 1 thread, no steport library
    (the int8 twin's QDQ graph is ORT's own format)."""
    import onnx

    from steport.bench.common import session

    return session(onnx.load(str(path)), 1, steport_ops=False)


def _float_extras(onnx_path: Path, data, out: Path, runs: int = 50) -> dict:
    """For the float baseline: its ORT int8 twin's accuracy, size and latency, timed side
    by side with the fp32 model (both in stock ORT)."""
    int8 = _int8_twin(onnx_path, data, out / f"{onnx_path.stem}.int8.onnx")
    sessions = {"fp32": _stock_session(onnx_path), "int8": _stock_session(int8)}
    x, y = data.test.x.numpy(), data.test.y.numpy()
    row = {"int8_path": str(int8), "int8_bytes": int8.stat().st_size,
           "int8_accuracy": _ort_accuracy(sessions["int8"], x, y)}
    for b, n in ((1, runs), (64, max(runs // 5, 5))):
        t = _p50_side_by_side(sessions, np.ascontiguousarray(x[:b]), n)
        row[f"int8_ms_b{b}_p50"] = t["int8"]
        row[f"int8_speedup_vs_fp32_b{b}"] = t["fp32"] / t["int8"]
        row[f"speedup_vs_fp32_b{b}"] = 1.0
        row[f"speedup_vs_int8_b{b}"] = t["int8"] / t["fp32"]
    return row


def run_recipe(name: str, out: Path, epochs: int | None, progress: bool,
               reuse: bool = False) -> dict:
    """Train (or, with ``reuse``, take OUT/<name>.pt when it is a finished run of the same
    recipe), export, verify, measure one recipe. Never raises: failures land in the row."""
    from steport.export.checkpoint import export_checkpoint
    from steport.export.verify import verify
    from steport.train.data import load_dataset
    from steport.train.recipes import load_recipe
    from steport.train.runner import train_recipe

    row: dict = {"recipe": Path(name).stem, "family": "", "status": "load"}
    try:
        recipe = load_recipe(name)
        row.update(recipe=recipe["name"], family=recipe.get("family", ""),
                   data=recipe["data"]["name"])
        if recipe.get("description"):
            row["description"] = recipe["description"]
        row["status"] = "train"
        ck = _reusable(out / f"{recipe['name']}.pt", recipe, epochs) if reuse else None
        if ck is not None:
            print(f"== {recipe['name']}: reusing the finished run {out / recipe['name']}.pt",
                  flush=True)
            ckpt, metrics = out / f"{recipe['name']}.pt", ck["metrics"]
        else:
            ckpt, metrics = train_recipe(recipe, out, epochs=epochs, progress=progress)
        row.update(torch_accuracy=metrics["test_accuracy"], parameters=metrics["parameters"],
                   train_seconds=metrics["train_seconds"], epochs=metrics["epochs"])
        for k in ("train_cpu_seconds", "torch_threads"):
            if k in metrics:
                row[k] = metrics[k]
        if metrics.get("init_accuracy") is not None:
            row.update(init_from=recipe["init_from"], init_accuracy=metrics["init_accuracy"])
        row["status"] = "export"
        onnx_path = out / f"{recipe['name']}.onnx"
        export_checkpoint(str(ckpt), str(onnx_path),
                          integer=bool(recipe.get("export", {}).get("integer")))
        row["onnx_bytes"] = onnx_path.stat().st_size
        row["status"] = "verify"
        report = verify(onnx_path, ckpt, batch=128)
        print(report.table(), flush=True)
        row["verify"] = report.ok
        row["status"] = "measure"
        data = load_dataset(recipe["data"]["name"], **recipe["data"]["kwargs"])
        base = None if row["family"] == "float" else baseline_models(out, data.name)
        row.update(_ort_accuracy_and_latency(onnx_path, data, baseline=base))
        if row["family"] == "float" and data.name != DEFAULT_DATA:
            row.update(_float_extras(onnx_path, data, out))
        me = _multiplier_error(recipe)
        if me:
            row.update(multiplier=recipe["model"]["kwargs"].get("multiplier") or "exact",
                       multiplier_metric=me[0], multiplier_error=me[1])
        row.update(_provenance())
        row["status"] = "ok"
    except Exception as e:  # noqa: BLE001 - reported, and the demo exits non-zero
        row["error"] = " ".join(f"{type(e).__name__}: {e}".split())[:300]
        row["traceback"] = traceback.format_exc()
        print(f"== {name}: FAILED at {row['status']}: {row['error']}", flush=True)
    return row


def save_row(out: Path, row: dict) -> Path:
    d = out / RESULTS
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{row['recipe']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(row, indent=2))
    tmp.replace(path)
    return path


def load_rows(out: Path) -> list[dict]:
    """Every persisted row in OUT/results, float baselines first, then by family and name
    (a file that does not parse is skipped with a warning)."""
    rows = []
    for p in sorted((out / RESULTS).glob("*.json")):
        try:
            r = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            print(f"skipping {p}: {e}", flush=True)
            continue
        if isinstance(r, dict) and "recipe" in r and "status" in r:
            rows.append(r)
    return sorted(rows, key=lambda r: (_family_order(r.get("family", "")),
                                       r.get("family", ""), r["recipe"]))


def write_report(out: Path, data: str | None = None) -> list[dict]:
    """Rebuild report.md / report.json / plots from all rows in OUT/results."""
    from steport.train.published import published_results

    rows = load_rows(out)
    try:
        plots = _plots(rows, out)
    except Exception as e:  # noqa: BLE001 - a plotting problem must not hide the table
        print(f"plots failed: {type(e).__name__}: {e}", flush=True)
        plots = []
    (out / "report.json").write_text(json.dumps(rows, indent=2))
    data_names = sorted({r.get("data") for r in rows if r.get("data")})
    title = "steport demo" + (f" — {', '.join(data_names)}" if data_names else "")
    pub = [p for d in data_names for p in published_results(d)]
    md = _markdown(rows, plots, title, pub)
    (out / "report.md").write_text(md)
    print(md)
    return rows


def default_out(data: str) -> str:
    """reports/demo for digits, reports/fashion for Fashion-MNIST, else reports/<data>."""
    return {DEFAULT_DATA: "reports/demo", "fashion_mnist": "reports/fashion"}.get(
        data, f"reports/{data}")


def run_demo(out_dir: str | None = None, recipes: list[str] | None = None,
             epochs: int | None = None, progress: bool = True, data: str = DEFAULT_DATA,
             reuse: bool = False, fresh: bool | None = None) -> int:
    """Run ``recipes`` (default: every built-in recipe for ``data``) into OUT and rebuild
    the report from all rows in OUT/results. ``fresh`` drops rows of earlier runs first;
    by default it does when no subset is named, and a subset's rows merge with the rest."""
    from steport.train.data import canonical_dataset_name

    data = canonical_dataset_name(data)
    out = Path(out_dir or default_out(data))
    out.mkdir(parents=True, exist_ok=True)
    if fresh if fresh is not None else not recipes:
        for p in (out / RESULTS).glob("*.json"):
            p.unlink()
    t0 = time.perf_counter()
    names = recipes or select_recipes(data)
    if not names:
        raise ValueError(f"no built-in recipe trains on {data!r}")
    ran = []
    for name in names:
        print(f"== {name}", flush=True)
        row = run_recipe(name, out, epochs, progress, reuse=reuse)
        save_row(out, row)
        ran.append(row)
    write_report(out)
    bad = [r["recipe"] for r in ran if r["status"] != "ok" or not r.get("verify")]
    print(f"report: {out / 'report.md'} ({time.perf_counter() - t0:.0f}s)")
    if bad:
        print(f"demo: {len(bad)} recipe(s) failed or did not verify: {', '.join(bad)}")
    return 1 if bad else 0
